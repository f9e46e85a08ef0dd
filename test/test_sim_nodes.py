"""The simulator nodes over real DDS: commands in, joint states and camera frames out."""
import threading

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from octo_ros.perception.image_codec import decode_image_msg


class Latest:
    """Collects messages of one topic; thread-safe."""

    def __init__(self, node, msg_type, topic, qos=10):
        self.msgs = []
        self._lock = threading.Lock()
        node.create_subscription(msg_type, topic, self._cb, qos)

    def _cb(self, msg):
        with self._lock:
            self.msgs.append(msg)

    def __len__(self):
        with self._lock:
            return len(self.msgs)

    def last(self):
        with self._lock:
            return self.msgs[-1]


def _positions(js: JointState, names):
    idx = {n: i for i, n in enumerate(js.name)}
    return np.array([js.position[idx[n]] for n in names])


ARM = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]


def _image_diff(a: Image, b: Image) -> float:
    return float(np.abs(decode_image_msg(a).astype(np.int16) - decode_image_msg(b).astype(np.int16)).mean())


def test_aloha_sim_node_closes_the_loop(ros):
    pytest.importorskip("gym_aloha")
    proc = ros.spawn_module("aloha_sim", "octo_ros.ros.nodes.aloha_sim", params={
        "image_width": 160, "image_height": 120, "render_rate": 5.0, "sim_time": True})
    node = ros.node("aloha_probe")
    left = Latest(node, JointState, "/follower_left/joint_states")
    right = Latest(node, JointState, "/follower_right/joint_states")
    cam = Latest(node, Image, "/cam_high/image_raw", qos_profile_sensor_data)
    clock = Latest(node, Clock, "/clock")
    group = node.create_publisher(JointGroupCommand, "/follower_left/commands/joint_group", 10)
    single = node.create_publisher(JointSingleCommand, "/follower_left/commands/joint_single", 10)
    ros.wait_for(lambda: len(left) > 0 and len(right) > 0 and len(cam) > 0, 30.0, "first joint states and frame")
    first_frame = cam.last()
    assert (first_frame.encoding, first_frame.width, first_frame.height) == ("rgb8", 160, 120)
    start = left.last()
    assert list(start.name) == ARM + ["gripper", "left_finger", "right_finger"]
    assert len(clock) > 0
    goal = np.array([0.5, -0.4, 0.7, 0.0, 0.4, 0.0])
    ros.wait_for(lambda: group.get_subscription_count() > 0 and single.get_subscription_count() > 0, 10.0, "command subscribers")
    group.publish(JointGroupCommand(name="arm", cmd=goal.tolist()))
    single.publish(JointSingleCommand(name="gripper", cmd=1.4))
    ros.wait_for(lambda: np.abs(_positions(left.last(), ARM) - goal).max() < 0.05, 15.0, "left arm at the goal")
    ros.wait_for(lambda: left.last().position[7] > 0.045, 10.0, "left gripper open")
    n = len(cam)
    ros.wait_for(lambda: len(cam) > n + 1, 10.0, "fresh frames")
    assert _image_diff(first_frame, cam.last()) > 1.0
    # The right arm did not move; stamps follow the sim clock.
    np.testing.assert_allclose(_positions(right.last(), ARM), _positions(right.msgs[0], ARM), atol=0.02)

    def ns(m):
        return m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec

    assert 0 < ns(start) < ns(left.last()) < 120 * 1_000_000_000  # sim time: seconds since start
    assert proc.stop() == 0


def test_widowx_sim_node_tracks_commands_and_renders(ros):
    proc = ros.spawn_module("widowx_sim", "octo_ros.ros.nodes.widowx_sim", params={
        "image_width": 160, "image_height": 120, "render_rate": 10.0})
    node = ros.node("widowx_probe")
    js = Latest(node, JointState, "/wx250s/joint_states")
    cam = Latest(node, Image, "/camera/image_raw", qos_profile_sensor_data)
    group = node.create_publisher(JointGroupCommand, "/wx250s/commands/joint_group", 10)
    single = node.create_publisher(JointSingleCommand, "/wx250s/commands/joint_single", 10)
    ros.wait_for(lambda: len(js) > 0 and len(cam) > 0 and group.get_subscription_count() > 0, 20.0, "widowx sim up")
    first = cam.last()
    assert list(js.last().name)[-3:] == ["gripper", "left_finger", "right_finger"]
    goal = np.array([0.4, -0.2, 0.3, 0.0, 0.6, 0.0])
    group.publish(JointGroupCommand(name="arm", cmd=goal.tolist()))
    single.publish(JointSingleCommand(name="gripper", cmd=-250.0))
    ros.wait_for(lambda: np.abs(_positions(js.last(), ARM) - goal).max() < 1e-3, 10.0, "widowx at the goal")
    n = len(cam)
    ros.wait_for(lambda: len(cam) > n + 1, 5.0, "fresh frames")
    assert _image_diff(first, cam.last()) > 1.0
    assert proc.stop() == 0


def test_ur5_sim_node_draws_the_published_tcp_pose(ros):
    proc = ros.spawn_module("ur5_sim", "octo_ros.ros.nodes.ur5_sim", params={
        "image_width": 160, "image_height": 120, "render_rate": 10.0})
    node = ros.node("ur5_probe")
    cam = Latest(node, Image, "/camera/image_raw", qos_profile_sensor_data)
    pose_pub = node.create_publisher(PoseStamped, "tcp_pose", 10)
    ros.wait_for(lambda: len(cam) > 0 and pose_pub.get_subscription_count() > 0, 20.0, "ur5 sim up")
    first = cam.last()
    msg = PoseStamped()
    msg.header.stamp.sec = 42
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = 0.45, 0.1, 0.15
    msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = 0.0, 1.0, 0.0, 0.0
    pose_pub.publish(msg)
    ros.wait_for(lambda: cam.last().header.stamp.sec == 42, 5.0, "a frame of the published pose")
    assert _image_diff(first, cam.last()) > 1.0
    js_pub = node.create_publisher(JointState, "joint_states", 10)
    ros.wait_for(lambda: js_pub.get_subscription_count() > 0, 5.0, "joint_states subscriber")
    before = cam.last()
    js_pub.publish(JointState(name=["gripper"], position=[255.0]))
    ros.wait_for(lambda: len(cam) > 0 and (decode_image_msg(cam.last()) != decode_image_msg(before)).any(), 5.0,
                 "gripper closing drawn")
    assert proc.stop() == 0
