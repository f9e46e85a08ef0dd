"""The evidence recorded with every episode comes from the running graph: the policy's
checkpoint hash, the adapter's effective parameters and gripper mapping (their /diagnostics)."""
import json
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from octo_ros.recording.bag import read_episode_metadata
from octo_ros_msgs.srv import StartEpisode, StopEpisode


def _status(name, **values):
    return DiagnosticStatus(name=name, values=[KeyValue(key=k, value=v) for k, v in values.items()])


def test_recorder_takes_the_evidence_from_its_graph(ros, tmp_path):
    recorder = ros.spawn("recorder", ["-m", "octo_ros.ros.nodes.recorder", "--ros-args", "-r", "__ns:=/cell1",
                                      "-p", f"output_dir:={tmp_path}", "-p", "robot:=widowx"])
    node = ros.node("evidence_test")
    diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
    config = json.dumps({"max_step_translation": 0.05, "dry_run": True})
    graph = DiagnosticArray(status=[
        _status("cell1/policy", checkpoint_hash="sha256:0123"),
        _status("cell1/widowx_adapter", adapter_config=config, gripper_convention="model 1 → gripper OPEN (PWM 250)"),
        _status("cell2/policy", checkpoint_hash="sha256:another-graph")])  # /diagnostics is shared
    node.create_timer(0.2, lambda: diagnostics.publish(graph))
    start = node.create_client(StartEpisode, "/cell1/recorder/start_episode")
    stop = node.create_client(StopEpisode, "/cell1/recorder/stop_episode")
    ros.wait_for(start.service_is_ready, 60, "the recorder's services")
    assert ros.call(start, StartEpisode.Request(instruction="reach"), timeout=30).success
    time.sleep(1.0)
    stopped = ros.call(stop, StopEpisode.Request(outcome="success"), timeout=30)
    assert stopped.success, stopped.message
    meta = read_episode_metadata(stopped.bag_path)
    assert meta["checkpoint_hash"] == "sha256:0123"
    assert json.loads(meta["adapter_config"]) == {"max_step_translation": 0.05, "dry_run": True}
    assert meta["gripper_convention"] == "model 1 → gripper OPEN (PWM 250)"
    assert recorder.alive()
