import numpy as np
import pytest

from octo_ros.control.interbotix_sim import GRIPPERS, InterbotixSimConfig, InterbotixSimDriver
from octo_ros.control.kinematics import WX250S
from octo_ros.control.safety import ControlStatus, JointLimits, SafetyConfig, SafetySupervisor, Watchdog, WorkspaceBox


def test_dry_run_is_default_and_estop_latches():
    s = SafetySupervisor(SafetyConfig())
    s.watchdog.feed("chunk", 0.0)
    s.watchdog.feed("state", 0.0)
    g = s.gate(0.1)
    assert g.may_move and not g.may_send  # dry-run by default
    s.dry_run = False
    s.trigger_estop("button")
    for t in (0.1, 0.2):
        s.watchdog.feed("chunk", t)
        s.watchdog.feed("state", t)
        g = s.gate(t)
        assert g.status is ControlStatus.ESTOP and not g.may_move and not g.may_send
    s.reset_estop()
    assert s.gate(0.2).may_send


def test_watchdog_never_fed_is_stale_and_times_out():
    w = Watchdog({"chunk": 0.5})
    assert w.stale(0.0) == ["no chunk received yet"]
    w.feed("chunk", 1.0)
    assert w.stale(1.5) == [] and w.stale(1.6)
    w.feed("chunk", float("nan"))  # ignored
    assert w.stale(1.6)


def test_box_and_limits():
    box = WorkspaceBox((0, 0, 0), (1, 1, 1))
    p, clipped = box.clip(np.array([2.0, 0.5, -1.0]))
    assert clipped and box.contains(p)
    with pytest.raises(ValueError):
        WorkspaceBox((0, 0, 0), (0, 1, 1))
    lim = JointLimits(("a",), (-1.0,), (1.0,), (2.0,))
    q, limited = lim.rate_limit(np.array([0.0]), np.array([1.0]), 0.1)
    assert limited and q[0] == pytest.approx(0.2)
    assert not lim.within_position(np.array([np.nan]))


def test_sim_driver_time_profile_limits_and_fingers():
    sim = InterbotixSimDriver(InterbotixSimConfig(arm_profile_velocity=500.0), initial_q=np.zeros(6))
    sim.command_joint_group("arm", [0.5, 0, 0, 0, 0, 0])
    sim.update(0.25)
    assert sim.joint_states().position[0] == pytest.approx(0.25, abs=0.02)  # halfway through 500 ms
    sim.update(0.6)
    assert sim.joint_states().position[0] == pytest.approx(0.5)
    sim.command_joint_group("arm", [0, 5.0, 0, 0, 0, 0])  # beyond the shoulder limit
    sim.update(3.0)
    assert sim.joint_states().position[1] == pytest.approx(WX250S.limits.upper[1])
    assert any("outside" in v for v in sim.violations)
    assert not sim.command_joint_group("arm", [float("nan")] * 6)
    sim.command_joint_single("gripper", -250.0)  # pwm grasp
    sim.update(5.0)
    js = sim.joint_states()
    assert js.name[-3:] == ("gripper", "left_finger", "right_finger")
    assert js.position[-2] == pytest.approx(GRIPPERS["wx250s"].finger_lower) and js.position[-1] == -js.position[-2]


def test_sim_driver_velocity_limit():
    sim = InterbotixSimDriver(InterbotixSimConfig(arm_profile_type="velocity", arm_profile_velocity=0), initial_q=np.zeros(6))
    sim.command_joint_group("arm", [3.0, 0, 0, 0, 0, 0])
    sim.update(0.5)
    assert sim.joint_states().position[0] == pytest.approx(np.pi * 0.5, abs=0.04)
