"""Bad input to the observation buffer and the policy: a clear warning naming the
topic and the problem, the input dropped, the node still working afterwards."""
import time

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from support.streams import SensorStreams
from test_nodes_policy_pipeline import BUFFER_PARAMS, NAMES

from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.ros.messages import image_to_msg, ns_to_stamp
from octo_ros.ros.support import LATCHED_QOS, SENSOR_QOS
from octo_ros_msgs.msg import ActionChunk, ObservationWindow
from octo_ros_msgs.srv import SetInstruction

THROTTLE_S = 2.1  # warnings of one kind on one topic are throttled to one per 2 s


def _raw(encoding, data, width=8, height=4, step=None, stamp_ns=None):
    msg = Image(encoding=encoding, width=width, height=height, step=step if step is not None else width * 3)
    msg.data = data
    msg.header.stamp = ns_to_stamp(stamp_ns if stamp_ns is not None else time.time_ns())
    return msg


def test_observation_buffer_drops_bad_frames_and_keeps_publishing(ros):
    buffer = ros.spawn_module("observation_buffer", "octo_ros.ros.nodes.observation_buffer", params=BUFFER_PARAMS)
    node = ros.node("bad_input_test")
    windows = []
    node.create_subscription(ObservationWindow, "/observation_window", windows.append, 10)
    streams = SensorStreams(node)
    bad_camera = node.create_publisher(Image, "/cam/image_raw", SENSOR_QOS)
    bad_joints = node.create_publisher(JointState, "/joint_states", SENSOR_QOS)
    ros.wait_for(lambda: len(windows) >= 2, 30, "windows from good streams")

    def expect(text, what):
        ros.wait_for(lambda: text in buffer.output(), 10, f"a warning about {what}")

    bad_camera.publish(_raw("yuv422", bytes(64)))
    expect("unsupported image encoding 'yuv422'", "an unknown encoding")
    assert "/cam/image_raw" in buffer.output() and "frame dropped" in buffer.output()

    bad_camera.publish(_raw("rgb8", bytes(50)))  # 4 rows of 24 bytes need 96
    expect("50", "truncated data")
    time.sleep(THROTTLE_S)
    bad_camera.publish(_raw("rgb8", b""))
    expect("0 bytes", "empty data")
    time.sleep(THROTTLE_S)
    bad_camera.publish(_raw("rgb8", bytes(4 * 20), step=20))  # step shorter than a row of pixels
    expect("step", "a wrong size")

    bad_camera.publish(image_to_msg(streams.image, time.time_ns() - 5_000_000_000))
    expect("out-of-order", "an out-of-order stamp")

    missing = JointState(name=["j1"], position=[0.0])
    missing.header.stamp = ns_to_stamp(time.time_ns())
    bad_joints.publish(missing)
    expect("missing joints ['j2', 'j3']", "missing joints")
    assert "/joint_states" in buffer.output() and "joint state dropped" in buffer.output()

    count = len(windows)
    ros.wait_for(lambda: len(windows) >= count + 3, 10, "windows after the bad input")
    assert buffer.alive()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_untrained_checkpoint(tmp_path_factory.mktemp("policy_bad_input"))


def test_policy_rejects_bad_tasks_and_keeps_its_task(ros, checkpoint):
    ros.spawn_module("observation_buffer", "octo_ros.ros.nodes.observation_buffer", params=BUFFER_PARAMS)
    policy = ros.spawn_module("policy", "octo_ros.ros.nodes.policy", params={
        "checkpoint": str(checkpoint), "action_dimension_names": NAMES})
    node = ros.node("bad_task_test")
    SensorStreams(node)
    chunks = []
    node.create_subscription(ActionChunk, "/action_chunk", chunks.append, 10)
    client = node.create_client(SetInstruction, "/policy/set_instruction")
    goal = node.create_publisher(Image, "/goal_image", LATCHED_QOS)

    def instruct(text):
        return ros.call(client, SetInstruction.Request(instruction=text), timeout=60)

    empty = instruct("   ")
    assert not empty.success and "instruction is empty" in empty.message

    assert instruct("put the spoon in the bowl").success
    ros.wait_for(lambda: len(chunks) >= 1, 30, "chunks for the first task")

    too_long = instruct("pick up the spoon and put it in the bowl then open the drawer and close it again")
    assert not too_long.success
    assert "tokens long" in too_long.message and "at most 16" in too_long.message and "task unchanged" in too_long.message

    goal.publish(image_to_msg(np.zeros((32, 48, 3), np.uint8), time.time_ns()))
    ros.wait_for(lambda: "goal_image rejected" in policy.output() and "48x32" in policy.output(), 10,
                 "a warning about the goal image size")
    goal.publish(_raw("yuv422", bytes(64)))
    ros.wait_for(lambda: "unsupported image encoding 'yuv422'" in policy.output(), 10,
                 "a warning about the goal image encoding")

    count = len(chunks)
    ros.wait_for(lambda: len(chunks) >= count + 2, 20, "chunks after the bad input")
    assert chunks[-1].task == "language: put the spoon in the bowl", "rejected input must leave the task as it was"
    assert instruct("open the drawer").success, "the service still answers"
