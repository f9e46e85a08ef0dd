"""Pure core of the ALOHA simulator: gym-aloha's MuJoCo model driven like two xs_sdk followers."""
import math

import numpy as np
import pytest

pytest.importorskip("gym_aloha")

from octo_ros.robots.bimanual.sim import ARMS, START_ARM_POSE, AlohaRenderer, AlohaSim, AlohaSimConfig, load_model  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return load_model("transfer_cube")


@pytest.fixture(scope="module")
def renderer(model):
    r = AlohaRenderer(model, width=160, height=120)
    yield r
    r.close()


def _diff(a, b) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_start_pose_and_joint_state_layout(model):
    sim = AlohaSim(model=model)
    assert sim.control_dt == pytest.approx(0.02)
    for arm in ARMS:
        js = sim.joint_states(arm)
        assert js.name == ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate",
                           "gripper", "left_finger", "right_finger")
        np.testing.assert_allclose(js.position[:6], START_ARM_POSE, atol=1e-9)
        assert js.position[8] == pytest.approx(-js.position[7])
    assert sim.qpos14().shape == (14,) and sim.qvel14().shape == (14,)


def test_group_command_moves_one_arm_toward_goal(model):
    sim = AlohaSim(model=model)
    goal = np.array([0.4, -0.5, 0.8, 0.0, 0.3, 0.2])
    assert sim.command_joint_group("left", "arm", goal)
    sim.step(5)  # 0.1 s: set point slews at π rad/s, so not there yet
    q_mid = np.array(sim.joint_states("left").position[:6])
    assert np.abs(q_mid - goal).max() > 0.05
    sim.advance_to(1.5)
    q = np.array(sim.joint_states("left").position[:6])
    np.testing.assert_allclose(q, goal, atol=0.03)
    np.testing.assert_allclose(sim.joint_states("right").position[:6], START_ARM_POSE, atol=0.03)
    assert sim.time == pytest.approx(1.5)
    assert not sim.violations


def test_limits_and_bad_commands(model):
    sim = AlohaSim(model=model)
    assert sim.command_joint_group("right", "arm", [0.0, -3.0, 0.5, 0.0, 0.0, 0.0])  # shoulder below −106°
    np.testing.assert_allclose(sim.arm_goal("right")[1], math.radians(-106))
    assert any("shoulder" in v for v in sim.violations)
    n = len(sim.violations)
    assert not sim.command_joint_group("right", "arm", [0.0] * 5)
    assert not sim.command_joint_group("right", "arm", [math.nan] * 6)
    assert not sim.command_joint_group("right", "wheels", [0.0] * 6)
    assert not sim.command_joint_single("right", "nose", 0.0)
    assert len(sim.violations) == n + 4


def test_gripper_joint_command_opens_and_closes_fingers(model):
    sim = AlohaSim(model=model)
    c = sim.config
    sim.command_joint_single("left", "gripper", c.gripper_joint_open)
    sim.advance_to(1.0)
    opened = sim.joint_states("left")
    assert opened.position[7] > 0.05  # finger near the open position (m)
    assert opened.position[6] == pytest.approx(sim.gripper_joint_from_finger(opened.position[7]))
    assert sim.qpos14()[6] > 0.8  # normalized: ~1 = open
    sim.command_joint_single("left", "gripper", c.gripper_joint_close)
    sim.advance_to(2.0)
    assert sim.joint_states("left").position[7] < 0.03
    assert sim.qpos14()[6] < 0.3


def test_action14_drives_both_arms(model):
    sim = AlohaSim(model=model)
    a = np.array([0.2, -0.7, 0.9, 0.0, -0.2, 0.0, 1.0, -0.2, -0.7, 0.9, 0.0, -0.2, 0.0, 1.0])
    assert sim.set_action14(a)
    sim.advance_to(1.0)
    np.testing.assert_allclose(sim.qpos14()[[0, 1, 2, 7, 8, 9]], a[[0, 1, 2, 7, 8, 9]], atol=0.03)


def test_camera_changes_when_arm_moves_and_reset(model, renderer):
    sim = AlohaSim(model=model)
    top0 = renderer.render(sim.snapshot(), "top")
    assert top0.shape == (120, 160, 3) and top0.dtype == np.uint8
    np.testing.assert_array_equal(top0, renderer.render(sim.snapshot(), "top"))  # same state, same image
    sim.command_joint_group("left", "arm", [0.6, -0.2, 0.5, 0.0, 0.5, 0.0])
    sim.advance_to(1.0)
    top1 = renderer.render(sim.snapshot(), "top")
    assert _diff(top0, top1) > 1.0
    assert _diff(renderer.render(sim.snapshot(), "left_wrist"), renderer.render(sim.snapshot(), "top")) > 1.0
    with pytest.raises(KeyError):
        renderer.render(sim.snapshot(), "cam_nowhere")
    sim.reset()
    assert sim.time == 0.0
    np.testing.assert_allclose(sim.joint_states("left").position[:6], START_ARM_POSE, atol=1e-12)
    np.testing.assert_array_equal(renderer.render(sim.snapshot(), "top"), top0)


def test_config_validation():
    with pytest.raises(ValueError):
        AlohaSimConfig(task="juggling")
    with pytest.raises(ValueError):
        AlohaSimConfig(gripper_joint_open=1.0, gripper_joint_close=1.0)
