"""Cameras + joint states → observation_buffer → policy → action chunks, over real DDS,
with tiny untrained checkpoints in the official layout written by the tests."""
import time

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
from support.streams import SensorStreams

from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.ros.messages import chunk_from_msg, image_to_msg
from octo_ros.ros.support import LATCHED_QOS
from octo_ros_msgs.msg import ActionChunk, ObservationWindow, PolicyStatus
from octo_ros_msgs.srv import SetInstruction

NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
BUFFER_PARAMS = {
    "camera_inputs": ["image_primary"],
    "cameras.image_primary.topic": "/cam/image_raw",
    "cameras.image_primary.height": 64,
    "cameras.image_primary.width": 64,
    "joint_state_topic": "/joint_states",
    "proprio_joints": ["j1", "j2", "j3"],
    "rate_hz": 5.0,
    "max_image_age_s": 0.5,
}


@pytest.fixture(scope="module")
def diffusion_checkpoint(tmp_path_factory):
    return make_untrained_checkpoint(tmp_path_factory.mktemp("diffusion"), head="diffusion")


@pytest.fixture(scope="module")
def l1_checkpoint(tmp_path_factory):
    """A deterministic head: equal windows and tasks give equal actions."""
    return make_untrained_checkpoint(tmp_path_factory.mktemp("l1"), head="l1")


class Pipeline:
    def __init__(self, ros, checkpoint, **policy_params):
        self.ros = ros
        ros.spawn_module("observation_buffer", "octo_ros.ros.nodes.observation_buffer", params=BUFFER_PARAMS)
        ros.spawn_module("policy", "octo_ros.ros.nodes.policy", params={
            "checkpoint": str(checkpoint), "action_dimension_names": NAMES, "step_period": 0.2, **policy_params})
        self.node = ros.node("pipeline_test")
        self.streams = SensorStreams(self.node)
        self.chunks: list[ActionChunk] = []
        self.windows: list[ObservationWindow] = []
        self.statuses: list[PolicyStatus] = []
        self.node.create_subscription(ActionChunk, "/action_chunk", self.chunks.append, 10)
        self.node.create_subscription(ObservationWindow, "/observation_window", self.windows.append, 10)
        self.node.create_subscription(PolicyStatus, "/policy/status", self.statuses.append, 10)
        self.set_instruction = self.node.create_client(SetInstruction, "/policy/set_instruction")
        self.clear_task = self.node.create_client(Trigger, "/policy/clear_task")

    def instruct(self, text, timeout=60):
        return self.ros.call(self.set_instruction, SetInstruction.Request(instruction=text), timeout=timeout)

    def next_chunks(self, n, timeout=30.0):
        start = len(self.chunks)
        self.ros.wait_for(lambda: len(self.chunks) >= start + n, timeout, f"{n} more action chunks")
        return self.chunks[start:start + n]


def test_chunks_have_shape_names_and_observation_stamps(ros, diffusion_checkpoint):
    p = Pipeline(ros, diffusion_checkpoint)
    p.ros.wait_for(lambda: len(p.windows) >= 2, 60, "observation windows")
    assert not p.chunks, "no task yet: the policy must not invent actions"
    # the policy loads its checkpoint meanwhile: tens of seconds on a loaded machine
    p.ros.wait_for(lambda: any(s.state == PolicyStatus.WAITING_FOR_TASK for s in p.statuses), 120, "'waiting for task'")

    assert p.instruct("pick up the spoon").success
    chunks = p.next_chunks(3)
    for msg in chunks:
        chunk = chunk_from_msg(msg)
        assert chunk.actions.shape == (4, 7) and chunk.normalized.shape == (4, 7)
        assert chunk.dimension_names == tuple(NAMES)
        assert chunk.task == "language: pick up the spoon"
        assert chunk.model_id.endswith("@0")
        assert msg.source == chunk.source == "policy"
        assert chunk.step_period_s == 0.2 and chunk.inference_latency_s > 0
        assert np.all(np.isfinite(chunk.actions))
        # stamped with the observation time: a camera frame the test published
        assert chunk.stamp_ns in p.streams.sent_stamps
    assert [m.sequence for m in chunks] == sorted(m.sequence for m in chunks)
    window = p.windows[-1]
    assert len(window.step_stamps) == 2 and window.cameras[0].frames[0].width == 64
    assert list(window.proprio_names) == ["j1", "j2", "j3"]
    np.testing.assert_allclose(np.asarray(window.proprio).reshape(2, 3)[-1], [0.0, 0.1, 0.2], atol=1e-6)
    p.ros.wait_for(lambda: p.statuses[-1].state == PolicyStatus.RUNNING and p.statuses[-1].chunks_published >= 3,
                   5, "a RUNNING status counting the chunks")
    status = p.statuses[-1]
    assert status.task_kind == "language" and status.instruction == "pick up the spoon"
    assert 0 < status.latency_p50 <= status.latency_p95


def test_instruction_and_goal_image_change_the_actions(ros, l1_checkpoint):
    p = Pipeline(ros, l1_checkpoint)

    def steady_actions():
        p.next_chunks(3)  # let the window fill with the new task in effect
        return chunk_from_msg(p.next_chunks(1)[0]).actions

    assert p.instruct("pick up the spoon").success
    spoon = steady_actions()
    np.testing.assert_allclose(steady_actions(), spoon, atol=1e-5)  # deterministic head, static scene

    assert p.instruct("open the drawer").success
    drawer = steady_actions()
    assert np.abs(drawer - spoon).max() > 1e-4

    goal_pub = p.node.create_publisher(Image, "/goal_image", LATCHED_QOS)
    goal = np.full((64, 64, 3), 200, np.uint8)
    goal_pub.publish(image_to_msg(goal, p.node.get_clock().now().nanoseconds))
    p.ros.wait_for(lambda: p.chunks and "goal image" in p.chunks[-1].task, 30, "a chunk for the goal task")
    with_goal = steady_actions()
    assert p.chunks[-1].task == "language: open the drawer + goal image (image_primary)"
    assert np.abs(with_goal - drawer).max() > 1e-4

    clear = p.ros.call(p.clear_task, Trigger.Request())
    assert clear.success
    time.sleep(1.0)
    count = len(p.chunks)
    time.sleep(1.5)
    assert len(p.chunks) == count, "no task: no actions"

    # the plain instruction topic, for scripting
    text_pub = p.node.create_publisher(String, "/instruction", LATCHED_QOS)
    text_pub.publish(String(data="pick up the spoon"))
    np.testing.assert_allclose(steady_actions(), spoon, atol=1e-5)


def test_stale_camera_stops_chunks_and_they_resume(ros, diffusion_checkpoint):
    p = Pipeline(ros, diffusion_checkpoint)
    assert p.instruct("wipe the table").success
    p.next_chunks(2, timeout=60)
    p.streams.paused.set()
    paused_at_ns = time.time_ns()
    time.sleep(0.5 + 1.0)  # freshness limit + inference of the last window in flight
    count = len(p.chunks)
    last_stamp = chunk_from_msg(p.chunks[-1]).stamp_ns
    assert last_stamp <= paused_at_ns, "no chunk may come from an observation after the camera stopped"
    time.sleep(1.5)
    assert len(p.chunks) == count, "a stale camera must stop the chunks"
    p.streams.paused.clear()
    resumed = p.next_chunks(1, timeout=20)[0]
    assert chunk_from_msg(resumed).stamp_ns > last_stamp
    assert list(p.windows[-1].timestep_pad_mask) in ([False, True], [True, True])
