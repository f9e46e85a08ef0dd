"""The recorder adapts its subscription QoS to what the publishers offer, as rosbag2 does (issue #12
item 9): a best-effort JointState publisher is recorded, and a configured topic that delivers
nothing is named in the diagnostics and in the episode's metadata."""
import time
from pathlib import Path

from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState

from octo_ros.recording.reading import load_episode
from octo_ros.ros.messages import ns_to_stamp
from octo_ros_msgs.srv import StartEpisode, StopEpisode


def test_best_effort_publisher_is_recorded_and_a_silent_topic_reported(ros, tmp_path):
    node = ros.node("qos_probe")
    pub = node.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)  # best effort
    node.create_publisher(JointState, "/silent_states", 10)  # configured, never publishes
    rec = ros.spawn_module("recorder", "octo_ros.ros.nodes.recorder", params={
        "topics": ["/joint_states", "/silent_states"], "output_dir": str(tmp_path), "robot": "widowx"})
    ros.wait_for(lambda: pub.get_subscription_count() >= 1, 30, "the recorder subscribing to /joint_states")
    start = node.create_client(StartEpisode, "/recorder/start_episode")
    stop = node.create_client(StopEpisode, "/recorder/stop_episode")
    assert ros.call(start, StartEpisode.Request(instruction="pick"), timeout=20).success
    for i in range(20):
        msg = JointState(name=["waist"], position=[0.01 * i])
        msg.header.stamp = ns_to_stamp(node.get_clock().now().nanoseconds)
        pub.publish(msg)
        time.sleep(0.02)
    time.sleep(0.5)
    response = ros.call(stop, StopEpisode.Request(outcome="success"), timeout=20)
    assert response.success, response.message
    assert "no messages on /silent_states" in rec.output()
    bag = Path(response.bag_path)
    episode = load_episode(bag)
    assert episode.metadata["message_counts"]["/joint_states"] >= 10, episode.metadata
    assert "/silent_states" in str(episode.metadata.get("notes", episode.metadata))
