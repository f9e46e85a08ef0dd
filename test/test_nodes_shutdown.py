"""Nodes stop cleanly: no traceback on a normal shutdown, and a second signal (ros2 launch
escalates SIGINT to SIGTERM) never interrupts what a node does while stopping."""
import os
import signal
import time

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from octo_ros.recording.bag import is_complete, read_episode_metadata
from octo_ros.ros.messages import image_to_msg
from octo_ros.ros.support import SENSOR_QOS
from octo_ros_msgs.srv import StartEpisode


def _signal_storm(proc, seconds=3.0):
    """SIGINT, then SIGINT and SIGTERM in turns every 10 ms until the process exits."""
    deadline = time.monotonic() + seconds
    signals = [signal.SIGINT, signal.SIGTERM]
    i = 0
    while proc.proc.poll() is None and time.monotonic() < deadline:
        try:
            os.kill(proc.proc.pid, signals[i % 2])
        except ProcessLookupError:
            break
        i += 1
        time.sleep(0.01)
    return proc.stop(timeout=20)


def test_recorder_closes_its_episode_through_repeated_signals(ros, tmp_path):
    out = tmp_path / "bags"
    recorder = ros.spawn_module("recorder", "octo_ros.ros.nodes.recorder", params={
        "topics": ["/chatter"], "topic_types": ["std_msgs/msg/String"], "output_dir": str(out), "robot": "test"})
    node = ros.node("storm_test")
    chatter = node.create_publisher(String, "/chatter", 100)
    node.create_timer(0.005, lambda: chatter.publish(String(data="x" * 1000)))
    client = node.create_client(StartEpisode, "/recorder/start_episode")
    ros.wait_for(client.service_is_ready, 60, "the recorder's services")
    started = ros.call(client, StartEpisode.Request(instruction="storm"), timeout=30)
    assert started.success, started.message
    time.sleep(1.0)
    code = _signal_storm(recorder)
    output = recorder.log_path.read_text()
    assert "Traceback" not in output, output
    assert code == 0, output
    assert is_complete(started.bag_path), "the episode must be closed, not left unfinished"
    assert read_episode_metadata(started.bag_path)["outcome"] == "interrupted"


def test_buffer_with_a_fast_camera_stops_without_a_traceback(ros):
    """SIGINT while the executor takes large images off the wire."""
    node = ros.node("fast_camera")
    camera = node.create_publisher(Image, "/cam/image_raw", SENSOR_QOS)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    node.create_timer(0.01, lambda: camera.publish(image_to_msg(frame, node.get_clock().now().nanoseconds)))
    for attempt in range(3):
        buffer = ros.spawn_module(f"observation_buffer_{attempt}", "octo_ros.ros.nodes.observation_buffer", params={
            "camera_inputs": ["image_primary"], "cameras.image_primary.topic": "/cam/image_raw"})
        client = node.create_client(Trigger, f"/observation_buffer_{attempt}/reset")
        ros.wait_for(client.service_is_ready, 60, "the buffer to be up")
        time.sleep(1.0 + attempt)
        code = buffer.stop()
        ros.processes.remove(buffer)  # stopped: the harness need not watch it
        output = buffer.log_path.read_text()
        assert "Traceback" not in output, output
        assert code == 0, output
