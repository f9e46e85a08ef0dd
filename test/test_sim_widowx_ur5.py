"""Pure cores of the WidowX and UR5 simulators (no ROS)."""
import math

import numpy as np
import pytest

from octo_ros.control.kinematics import forward_kinematics
from octo_ros.robots.ur5.kinematics import UR5, UR5_READY, dh_forward
from octo_ros.robots.ur5.sim import UR5Scene, UR5SceneConfig
from octo_ros.robots.widowx.sim import WidowXSim, WidowXSimConfig
from octo_ros.sim.render import Capsule, PinholeCamera, TableScene, render_scene

SMALL = dict(image_width=160, image_height=120)


def _diff(a, b) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_widowx_tracks_group_command_within_limits():
    sim = WidowXSim(WidowXSimConfig(**SMALL))
    goal = [0.3, -0.3, 0.4, 0.0, 0.9, 0.0]
    assert sim.command_joint_group("arm", goal)
    sim.update(1.0)  # 2 s time profile: about half way
    mid = sim.arm_positions()
    start = np.array(sim.kin.sleep)
    assert np.all(np.abs(mid - np.array(goal)) < np.abs(start - np.array(goal)) + 1e-9)
    assert np.abs(mid - np.array(goal)).max() > 0.05
    sim.update(3.0)
    np.testing.assert_allclose(sim.arm_positions(), goal, atol=1e-6)
    # Out-of-range goal: clipped to the URDF limit and recorded.
    sim.command_joint_group("arm", [0.0, 3.0, 0.0, 0.0, 0.0, 0.0])
    sim.update(20.0)
    assert sim.arm_positions()[1] == pytest.approx(sim.kin.limits.upper[1])
    assert any("shoulder" in v for v in sim.driver.violations)


def test_widowx_gripper_and_joint_states_layout():
    sim = WidowXSim(WidowXSimConfig(**SMALL))
    sim.command_joint_single("gripper", -250.0)  # pwm: close
    sim.update(3.0)
    js = sim.joint_states()
    assert js.name[-3:] == ("gripper", "left_finger", "right_finger")
    assert js.position[-2] == pytest.approx(sim.geometry.finger_lower, abs=1e-6)
    assert js.position[-1] == pytest.approx(-js.position[-2])


def test_widowx_image_depends_on_state_and_is_deterministic():
    sim = WidowXSim(WidowXSimConfig(**SMALL))
    a = sim.render()
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, sim.render())
    sim.command_joint_group("arm", [0.5, 0.0, 0.0, 0.0, 0.5, 0.0])
    sim.update(3.0)
    b = sim.render()
    assert _diff(a, b) > 1.0
    # Gripper alone changes the picture too (fingers are visible).
    closed = sim.render(finger=sim.geometry.finger_lower)
    opened = sim.render(finger=sim.geometry.finger_upper)
    assert (closed != opened).any()


def test_widowx_reset_returns_to_initial_pose():
    sim = WidowXSim(WidowXSimConfig(initial_q=(0.0,) * 6, **SMALL))
    home_img = sim.render()
    sim.command_joint_group("arm", [0.4, 0.2, -0.2, 0.1, 0.3, 0.2])
    sim.update(5.0)
    sim.reset()
    np.testing.assert_allclose(sim.arm_positions(), 0.0, atol=1e-12)
    assert sim.time == pytest.approx(5.0)  # the driver clock keeps running across a reset
    np.testing.assert_array_equal(sim.render(), home_img)


def test_ur5_screw_axes_match_dh():
    rng = np.random.default_rng(1)
    for q in rng.uniform(-math.pi, math.pi, (10, 6)):
        np.testing.assert_allclose(forward_kinematics(UR5, q), dh_forward(q), atol=1e-9)


def test_ur5_scene_follows_tcp_pose_and_renders_it():
    scene = UR5Scene(UR5SceneConfig(**SMALL))
    a = scene.render()
    np.testing.assert_array_equal(a, scene.render())
    target = [0.45, 0.05, 0.2, 0.0, math.pi, 0.0]
    assert scene.set_tcp_pose(target)
    T = scene.tcp_pose_matrix()
    np.testing.assert_allclose(T[:3, 3], target[:3], atol=1e-4)
    assert T[2, 2] == pytest.approx(-1.0, abs=1e-4)  # tool pointing down
    b = scene.render()
    assert _diff(a, b) > 1.0
    # Small moves give small joint changes (continuous IK branch).
    q_before = scene.q.copy()
    assert scene.set_tcp_pose([0.46, 0.05, 0.2, 0.0, math.pi, 0.0])
    assert np.abs(scene.q - q_before).max() < 0.1
    opened = scene.render()
    scene.set_gripper(1.0)
    assert (scene.render() != opened).any()
    # Unreachable pose: keeps the last configuration.
    q_before = scene.q.copy()
    assert not scene.set_tcp_pose([3.0, 0.0, 0.2, 0.0, math.pi, 0.0])
    np.testing.assert_array_equal(scene.q, q_before)
    scene.reset()
    np.testing.assert_array_equal(scene.q, UR5_READY)
    np.testing.assert_array_equal(scene.render(), a)


def test_ur5_scene_renders_fake_controller_motion():
    from octo_ros.robots.ur5.controller_standin import FakeURController

    now = [0.0]
    robot = FakeURController(clock=lambda: now[0])
    scene = UR5Scene(UR5SceneConfig(**SMALL))
    assert scene.set_tcp_pose(robot.pose())
    a = scene.render()
    ctrl, _ = robot.connect("sim", 500.0)
    pose = robot.pose()
    pose[0] += 0.1
    pose[2] -= 0.1
    for _ in range(300):
        ctrl.servoL(pose, 0.0, 0.0, 0.002, 0.1, 300)
        now[0] += 0.002
        robot.advance()
    assert scene.set_tcp_pose(robot.pose())
    assert _diff(a, scene.render()) > 0.5


def test_renderer_draws_nearer_links_on_top():
    cam = PinholeCamera((1.0, 0.0, 0.5), (0.0, 0.0, 0.0), 60.0, 80, 60)
    scene = TableScene(x_range=(-0.5, 0.5), y_range=(-0.5, 0.5))
    far = Capsule((-0.2, -0.3, 0.1), (-0.2, 0.3, 0.1), 0.03, (255, 0, 0))
    near = Capsule((0.3, -0.3, 0.1), (0.3, 0.3, 0.1), 0.03, (0, 0, 255))
    img1 = render_scene(cam, scene, [far, near])
    img2 = render_scene(cam, scene, [near, far])
    np.testing.assert_array_equal(img1, img2)  # order of the list does not matter
