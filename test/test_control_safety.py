import numpy as np
import pytest

from octo_ros.control.safety import (
    ControlStatus,
    JointLimits,
    SafetyConfig,
    SafetySupervisor,
    Watchdog,
    WorkspaceBox,
    tracking_error,
)
from octo_ros.robots.interbotix.driver_standin import GRIPPERS, InterbotixSimConfig, InterbotixSimDriver
from octo_ros.robots.interbotix.kinematics import WX250S


def test_dry_run_is_default_and_estop_latches():
    s = SafetySupervisor(SafetyConfig())
    s.watchdog.feed("chunk", 0.0, 0.0)
    s.watchdog.feed("state", 0.0, 0.0)
    g = s.gate(0.1)
    assert g.may_move and not g.may_send  # dry-run by default
    s.dry_run = False
    s.trigger_estop("button")
    for t in (0.1, 0.2):
        s.watchdog.feed("chunk", t, t)
        s.watchdog.feed("state", t, t)
        g = s.gate(t)
        assert g.status is ControlStatus.ESTOP and not g.may_move and not g.may_send
    s.reset_estop()
    assert s.gate(0.2).may_send


def test_watchdog_never_fed_is_stale_and_times_out():
    w = Watchdog({"chunk": 0.5})
    assert w.stale(0.0) == ["no chunk received yet"]
    w.feed("chunk", 1.0, 1.0)
    assert w.stale(1.5) == [] and w.stale(1.6)
    w.feed("chunk", float("nan"), 1.6)  # ignored
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


def test_watchdog_rejects_future_stamps_and_keeps_the_last_received():
    w = Watchdog({"state": 0.25}, max_future_s=0.05)
    assert w.feed("state", 0.0, 0.0)
    assert not w.feed("state", 3600.0, 0.1)  # an hour ahead: rejected, it does not refresh the channel
    assert w.stale(10.0) == ["state stale (10.000 s > 0.250 s)"]
    assert w.feed("state", 10.04, 10.0)  # within the tolerance: accepted, counted as received now
    assert not w.stale(10.25) and w.stale(10.26)
    w.feed("state", 20.0, 20.0)
    w.feed("state", 19.9, 20.1)  # an older stamp after a newer one: the last received counts
    assert w.stale(20.16)
    assert not w.feed("state", float("nan"), 20.2) and not w.feed("state", 20.2, float("nan"))
    w.feed("state", 30.0, 30.0)
    assert w.stale(29.0) == ["state stamped 1.000 s in the future"]  # evaluated on an earlier clock


def test_supervisor_future_tolerance_and_tracking_error():
    s = SafetySupervisor(SafetyConfig(), max_future_stamp_s=0.2)
    assert s.watchdog.feed("state", 1.15, 1.0) and not s.watchdog.feed("state", 1.25, 1.0)
    names = ("a", "b")
    assert tracking_error(np.array([0.0, 1.0]), np.array([0.05, 1.0]), np.array([0.1, 0.1]), names) == ""
    reason = tracking_error(np.array([0.0, 1.0]), np.array([0.05, 1.5]), np.array([0.1, 0.1]), names)
    assert reason.startswith("tracking error") and "b" in reason and "0.500" in reason
