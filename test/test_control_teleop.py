"""Teleoperation mapping cores (no ROS): twist → Bridge delta, gripper and episode buttons, ALOHA
leaders → 14-D joint action, and the adapters' one-source-at-a-time rule."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from transforms3d.euler import euler2mat

from octo_ros.control.kinematics import apply_delta, rotation_exp
from octo_ros.control.safety import ControlStatus, SafetyConfig
from octo_ros.control.teleop import (
    ButtonPresses,
    EpisodeButtons,
    TeleopChunks,
    TwistTeleop,
    TwistTeleopConfig,
    episode_reply,
    episode_request,
    rotation_delta_rpy,
)
from octo_ros.datatypes import TELEOP_SOURCE
from octo_ros.robots.bimanual.adapter import ACTION_NAMES
from octo_ros.robots.bimanual.teleop import LeaderTeleop, LeaderTeleopConfig
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS
from octo_ros.robots.widowx.adapter import BRIDGE_START_STATE, WidowXAdapter, WidowXConfig, pose_from_bridge_state


def test_constant_twist_gives_speed_times_step():
    core = TwistTeleop(TwistTeleopConfig(step_period_s=0.2, linear_scale=0.1, angular_scale=0.5, deadband=0.05))
    core.on_twist(0.0, (0.5, -0.25, 1.0), (0.0, 0.0, 0.4))
    a = core.action(0.3)
    np.testing.assert_allclose(a[:3], [0.5 * 0.1 * 0.2, -0.25 * 0.1 * 0.2, 1.0 * 0.1 * 0.2], atol=1e-12)
    np.testing.assert_allclose(a[3:6], [0.0, 0.0, 0.4 * 0.5 * 0.2], atol=1e-12)  # yaw about base z
    assert a[6] == 1.0  # open until told otherwise


def test_twist_is_integrated_over_the_step_with_deadband_and_timeout():
    core = TwistTeleop(TwistTeleopConfig(step_period_s=0.2, linear_scale=1.0, deadband=0.1, twist_timeout_s=0.5))
    core.on_twist(1.00, (0.05, 0.0, 0.0), (0.0, 0.0, 0.0))  # inside the deadband: no motion
    core.on_twist(1.05, (0.4, 0.0, 0.0), (0.0, 0.0, 0.0))
    core.on_twist(1.10, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))  # a 50 ms pulse of 0.4 m/s
    np.testing.assert_allclose(core.action(1.2)[:3], [0.4 * 0.05, 0, 0], atol=1e-12)
    core.on_twist(2.0, (1.0, 0.0, 0.0), (0.0, 0.0, 0.0))  # then the device goes silent
    np.testing.assert_allclose(core.action(2.2)[0], 0.2, atol=1e-12)
    np.testing.assert_allclose(core.action(2.6)[0], 0.1, atol=1e-12)  # held 0.5 s, then no motion
    assert core.action(3.0)[0] == 0.0
    with pytest.raises(ValueError, match="non-finite"):
        core.on_twist(3.0, (math.nan, 0, 0), (0, 0, 0))


def test_rotation_delta_is_the_twist_rotation_about_base_axes():
    """The adapters apply R_new = euler(rpy) · R (base-aligned axes about the gripper); the delta the
    teleop computes from ω·dt must make that exactly exp([ω]·dt) · R, for any ω."""
    rotvec = np.array([0.05, -0.12, 0.3])
    T = pose_from_bridge_state(BRIDGE_START_STATE)
    moved = apply_delta(T, [0.0, 0.0, 0.0], rotation_delta_rpy(rotvec))
    np.testing.assert_allclose(moved[:3, :3], rotation_exp(rotvec) @ T[:3, :3], atol=1e-12)
    np.testing.assert_allclose(moved[:3, 3], T[:3, 3])
    np.testing.assert_allclose(euler2mat(*rotation_delta_rpy([0, 0, 0.2]), axes="sxyz"), rotation_exp([0, 0, 0.2]),
                               atol=1e-12)


def test_gripper_buttons_and_topic_in_the_model_convention():
    core = TwistTeleop(TwistTeleopConfig(gripper_open_button=1, gripper_close_button=0))
    presses = ButtonPresses()
    core.on_buttons(presses.update([1, 0]))
    assert core.action(1.0)[6] == 0.0  # closed
    core.on_buttons(presses.update([1, 0]))  # still held: no new press
    core.on_buttons(presses.update([0, 1]))
    assert core.action(1.0)[6] == 1.0  # open
    core.on_gripper(0.3)
    assert core.action(1.0)[6] == pytest.approx(0.3)
    core.on_gripper(7.0)
    assert core.action(1.0)[6] == 1.0
    with pytest.raises(ValueError):
        core.on_gripper(math.inf)


def test_episode_buttons():
    buttons = EpisodeButtons(start=2, success=3, failure=4, discard=5)
    presses = ButtonPresses()
    assert buttons.events(presses.update([0, 0, 1, 0, 0, 0])) == ["start"]
    assert buttons.events(presses.update([0, 0, 1, 0, 0, 0])) == []
    assert buttons.events(presses.update([0, 0, 0, 0, 0, 1])) == ["discard"]
    assert EpisodeButtons().events({0, 1, 2}) == []  # nothing mapped by default


def test_episode_requests_and_the_recorders_replies():
    assert episode_request("start", "wave") == (
        "start_episode", {"instruction": "wave", "metadata": {"started_by": "teleop joy button"}})
    assert episode_request("failure", "wave") == (
        "stop_episode", {"outcome": "failure", "metadata": {"stopped_by": "teleop joy button"}})
    assert episode_reply("success", None) == (False, "success: no response from the recorder")
    assert episode_reply("start", SimpleNamespace(success=True, message="episode 3")) == (True, "start: episode 3")
    assert episode_reply("discard", SimpleNamespace(success=False, message="no episode")) == (
        False, "discard refused: no episode")


def test_every_mapping_samples_an_action_or_says_why_not():
    twist = TwistTeleop(TwistTeleopConfig())
    action, reason = twist.sample(1.0)
    assert reason == "" and action.tolist() == [0.0] * 6 + [1.0]  # no twist yet: no motion, gripper open
    assert LeaderTeleop(LeaderTeleopConfig()).sample(1.0) == (None, "no left leader joint state yet")


def _leader_state(q6, gripper):
    names = [*ARM_JOINTS, "gripper", "left_finger", "right_finger"]
    return names, [*q6, gripper, 0.02, -0.02]


def test_leader_joint_states_map_to_the_aloha_action():
    core = LeaderTeleop(LeaderTeleopConfig(left_gripper_open_rad=0.8, left_gripper_close_rad=-0.2,
                                           right_gripper_open_rad=0.8, right_gripper_close_rad=-0.2))
    left, right = [0.1, -0.9, 1.1, 0.0, -0.3, 0.2], [-0.1, -0.8, 1.0, 0.05, -0.2, -0.2]
    core.update("left", *_leader_state(left, 0.8), stamp=10.0)
    assert core.action(10.0) == (None, "no right leader joint state yet")
    core.update("right", *_leader_state(right, 0.3), stamp=10.01)
    action, reason = core.action(10.02)
    assert reason == "" and len(ACTION_NAMES) == 14 and ACTION_NAMES[6] == "left_gripper"
    np.testing.assert_allclose(action, [*left, 1.0, *right, 0.5])
    action, reason = core.action(10.2)
    assert action is None and "left leader joint state is 0.200 s old" in reason
    with pytest.raises(ValueError, match="lacks"):
        core.update("left", ["waist"], [0.0], stamp=10.3)


def _widowx_at_start(source: str | None = None) -> WidowXAdapter:
    from octo_ros.control.kinematics import solve_ik
    from octo_ros.robots.interbotix.kinematics import ARMS

    adapter = WidowXAdapter(WidowXConfig(safety=SafetyConfig(dry_run=False)))
    if source:
        adapter.set_source(source)
    q = solve_ik(ARMS["wx250s"], pose_from_bridge_state(BRIDGE_START_STATE)).q
    adapter.update_joint_state(q, 0.0, gripper_open=True, now=0.0)
    return adapter


def test_adapter_executes_one_source_and_holds_on_a_switch():
    adapter = _widowx_at_start()
    step = np.array([0.01, 0, 0, 0, 0, 0, 1.0])
    assert adapter.add_chunk(np.tile(step, (4, 1)), 0.0, 0.0).accepted
    refused = adapter.add_chunk(step[None], 0.0, 0.0, TELEOP_SOURCE)
    assert not refused.accepted and "source 'teleop'" in refused.reason
    assert adapter.step(0.0).status is ControlStatus.MOVE

    adapter.update_joint_state(adapter._commanded_q, 0.2, now=0.2)
    adapter.set_source(TELEOP_SOURCE)
    out = adapter.step(0.2)
    assert out.status is ControlStatus.HOLD and "no chunk received yet" in out.reason  # the policy's chunks are gone
    assert not adapter.add_chunk(np.tile(step, (4, 1)), 0.2, 0.2).accepted  # policy refused now
    assert adapter.add_chunk(step[None], 0.25, 0.25, TELEOP_SOURCE).accepted
    adapter.update_joint_state(adapter._commanded_q, 0.3, now=0.3)
    out = adapter.step(0.3)
    assert out.status is ControlStatus.HOLD and "switched to teleop: holding first" in out.reason
    assert adapter.add_chunk(step[None], 0.35, 0.35, TELEOP_SOURCE).accepted
    adapter.update_joint_state(adapter._commanded_q, 0.4, now=0.4)
    assert adapter.step(0.4).status is ControlStatus.MOVE
    with pytest.raises(ValueError, match="unknown chunk source"):
        adapter.set_source("joystick")


def test_a_source_chosen_before_any_state_is_not_a_switch():
    adapter = _widowx_at_start(source=TELEOP_SOURCE)  # the node's `source` parameter at start-up
    assert adapter.add_chunk(np.array([[0.01, 0, 0, 0, 0, 0, 1.0]]), 0.0, 0.0, TELEOP_SOURCE).accepted
    assert adapter.step(0.0).status is ControlStatus.MOVE


def test_teleop_chunks_are_horizon_one_teleop_chunks_twice_per_step():
    with pytest.raises(ValueError, match="action_dimension_names has 6 names; widowx actions have 7"):
        TeleopChunks("widowx", 0.2, ("x",) * 6, 7)
    chunks = TeleopChunks("widowx", 0.2, ("x", "y", "z", "roll", "pitch", "yaw", "gripper"), 7, instruction="wave")
    assert chunks.publish_period_s == pytest.approx(0.1) and chunks.due(0.0)
    assert chunks.status() == (False, "starting", {"chunks_published": 0, "bad_inputs": 0})
    chunk = chunks.chunk(1.5, [0.01, 0, 0, 0, 0, 0, 1.0])
    assert (chunk.source, chunk.actions.shape, chunk.stamp_ns, chunk.sequence, chunk.task) == (
        TELEOP_SOURCE, (1, 7), 1_500_000_000, 0, "wave")
    assert np.isnan(chunk.normalized).all() and chunk.step_period_s == 0.2
    assert not chunks.due(1.5 + 0.05) and chunks.due(1.5 + 0.095)  # 0.9 of the period: timer jitter
    assert chunks.chunk(1.6, None, "no leader state yet") is None
    assert chunks.status() == (False, "no leader state yet", {"chunks_published": 1, "bad_inputs": 0})
    assert chunks.chunk(1.7, [0.0] * 7).sequence == 1 and chunks.status()[:2] == (True, "publishing")
