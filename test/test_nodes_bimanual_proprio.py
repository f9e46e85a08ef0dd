"""observation_buffer over real DDS with two ALOHA followers' joint states (equal joint names,
prefixed per arm) → a 14-D proprio with normalized finger positions."""
import numpy as np
from sensor_msgs.msg import Image, JointState

from octo_ros.ros.messages import image_to_msg, ns_to_stamp
from octo_ros.ros.support import SENSOR_QOS
from octo_ros_msgs.msg import ObservationWindow

ARM = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
XS_NAMES = [*ARM, "gripper", "left_finger", "right_finger"]
PROPRIO = [f"left_{j}" for j in ARM] + ["left_left_finger"] + [f"right_{j}" for j in ARM] + ["right_left_finger"]
CLOSE, OPEN = 0.0440, 0.0579  # ALOHA 2 follower finger position (m)
# per arm: 6 joints (rad), gripper joint angle (rad), left/right finger (m)
STATES = {
    "/follower_left/joint_states": [0.1, -0.9, 1.1, 0.05, -0.3, 0.2, 1.5, 0.0579, -0.0579],
    "/follower_right/joint_states": [-0.1, -0.8, 1.2, -0.05, -0.2, -0.2, 0.7, 0.05095, -0.05095],
}
PARAMS = {
    "camera_inputs": ["image_primary"],
    "cameras.image_primary.topic": "/cam_high/image_raw",
    "cameras.image_primary.height": 32,
    "cameras.image_primary.width": 32,
    "joint_state_topics": list(STATES),
    "joint_state_prefixes": ["left_", "right_"],
    "proprio_joints": PROPRIO,
    "proprio_normalization.left_left_finger": [CLOSE, OPEN],
    "proprio_normalization.right_left_finger": [CLOSE, OPEN],
    "rate_hz": 5.0,
}


def start_streams(node, states):
    camera = node.create_publisher(Image, "/cam_high/image_raw", SENSOR_QOS)
    joints = {topic: node.create_publisher(JointState, topic, SENSOR_QOS) for topic in states}
    frame = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)

    def publish_joints():
        stamp = ns_to_stamp(node.get_clock().now().nanoseconds)
        for topic, pub in joints.items():
            msg = JointState(name=XS_NAMES, position=list(states[topic]))
            msg.header.stamp = stamp
            pub.publish(msg)

    node.create_timer(0.1, lambda: camera.publish(image_to_msg(frame, node.get_clock().now().nanoseconds)))
    node.create_timer(0.02, publish_joints)


def test_two_followers_give_the_14d_normalized_proprio(ros):
    buffer = ros.spawn_module("observation_buffer", "octo_ros.ros.nodes.observation_buffer", params=PARAMS)
    node = ros.node("bimanual_proprio_test")
    windows: list[ObservationWindow] = []
    node.create_subscription(ObservationWindow, "/observation_window", windows.append, 10)
    start_streams(node, STATES)
    ros.wait_for(lambda: len(windows) >= 2, 30, "observation windows")

    window = windows[-1]
    assert list(window.proprio_names) == PROPRIO
    proprio = np.asarray(window.proprio, np.float32).reshape(len(window.timestep_pad_mask), 14)
    left, right = STATES["/follower_left/joint_states"], STATES["/follower_right/joint_states"]
    expected = np.array(left[:6] + [(left[7] - CLOSE) / (OPEN - CLOSE)]
                        + right[:6] + [(right[7] - CLOSE) / (OPEN - CLOSE)], np.float32)
    np.testing.assert_array_equal(proprio[-1], expected)
    assert proprio[-1, 6] == 1.0 and abs(proprio[-1, 13] - 0.5) < 1e-6  # left open, right half open
    assert "/follower_left/joint_states (as left_*), /follower_right/joint_states (as right_*)" in buffer.output()


def test_bad_source_parameters_stop_the_node_with_a_reason(ros):
    mismatched = ros.spawn_module("obs_mismatched", "octo_ros.ros.nodes.observation_buffer",
                                  params={**PARAMS, "joint_state_prefixes": ["left_"]})
    typo = ros.spawn_module("obs_typo", "octo_ros.ros.nodes.observation_buffer",
                            params={**PARAMS, "proprio_normalization.left_gripper": [0.0, 1.0]})
    both = ros.spawn_module("obs_both", "octo_ros.ros.nodes.observation_buffer",
                            params={**PARAMS, "joint_state_topic": "/joint_states"})
    for proc in (mismatched, typo, both):
        proc.proc.wait(timeout=30)
        assert proc.proc.returncode == 1, proc.output()
    assert "must match joint_state_topics" in mismatched.output()
    assert "proprio_normalization.left_gripper" in typo.output() and "not joints of proprio_joints" in typo.output()
    assert "not both" in both.output()
