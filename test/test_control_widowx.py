import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode
from octo_ros.control.interbotix_sim import InterbotixSimConfig, InterbotixSimDriver
from octo_ros.control.kinematics import IK_POSITION_TOLERANCE, WX250S, forward_kinematics, solve_ik
from octo_ros.control.safety import ControlStatus, SafetyConfig
from octo_ros.control.widowx import (
    BRIDGE_START_STATE,
    WidowXAdapter,
    WidowXConfig,
    bridge_state_from_pose,
    pose_from_bridge_state,
)

START_Q = solve_ik(WX250S, pose_from_bridge_state(BRIDGE_START_STATE)).q
PERIOD = 0.2


def make_adapter(armed=True, **kw):
    a = WidowXAdapter(WidowXConfig(**kw))
    a.update_joint_state(START_Q, 0.0, gripper_open=True)
    if armed:
        a.set_dry_run(False)
    return a


def run(adapter, chunks, steps, period=PERIOD, latency=0.05, extra=None):
    """Feed chunk k at t = k·0.2 (stamped latency earlier), tick every period; yield outputs."""
    t, outs = 0.0, []
    n_ticks = int(round(steps * 0.2 / period))
    for i in range(n_ticks):
        k = i * period / 0.2
        if abs(k - round(k)) < 1e-9 and int(round(k)) < len(chunks):
            adapter.add_chunk(chunks[int(round(k))], t - latency, t)
        adapter.update_joint_state(extra(t) if extra else START_Q, t)
        outs.append(adapter.step(t))
        t += period
    return outs


def test_describe_states_gripper_mapping():
    lines = make_adapter().describe()
    assert any("model 1 → gripper OPEN" in line for line in lines)


def test_deltas_integrate_on_commanded_target_not_measured():
    a = make_adapter()
    chunks = [np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (4, 1)) for _ in range(3)]
    outs = run(a, chunks, steps=3)  # measured joints never move (robot "stuck")
    assert all(o.status is ControlStatus.MOVE and o.send for o in outs)
    x = bridge_state_from_pose(a.commanded_pose)[0]
    assert x == pytest.approx(0.3 + 3 * 0.01, abs=1e-6)  # 3 steps of the ensemble mean 0.01


def test_rotation_is_about_gripper_position_with_world_axes():
    a = make_adapter(execution=ChunkExecutionConfig(mode=ExecutionMode.RECEDING_HORIZON, exec_horizon=1))
    run(a, [np.array([[0, 0, 0, 0, 0, 0.2, 1.0]])], steps=1)
    T = a.commanded_pose
    np.testing.assert_allclose(T[:3, 3], BRIDGE_START_STATE[:3], atol=1e-5)  # position unchanged
    np.testing.assert_allclose(bridge_state_from_pose(T)[3:], [0, 0, 0.2], atol=1e-5)  # yaw about world z


def test_gripper_close_is_sent_once_on_change():
    a = make_adapter()
    chunks = [np.tile([0, 0, 0, 0, 0, 0, 0.0], (4, 1)) for _ in range(3)]
    outs = run(a, chunks, steps=3)
    assert [o.send_gripper for o in outs] == [True, False, False]
    assert outs[0].gripper == -250.0


def test_dry_run_is_default_and_never_sends():
    a = make_adapter(armed=False)
    outs = run(a, [np.tile([0.01, 0, 0, 0, 0, 0, 0.0], (4, 1))] * 3, steps=3)
    assert all(o.status is ControlStatus.MOVE for o in outs)  # commands are computed ...
    assert not any(o.send or o.send_gripper for o in outs)  # ... never sent


def test_unreachable_target_holds_and_reports():
    # Tilt the gripper far away step after step: IK eventually fails → hold, target unchanged.
    a = make_adapter(workspace_low=(0.1, -0.15, -0.01), workspace_high=(0.45, 0.25, 0.25))
    chunk = np.tile([0.05, 0, -0.05, 0, 0.25, 0, 1.0], (4, 1))
    outs = run(a, [chunk] * 40, steps=40)
    held = [o for o in outs if o.status is ControlStatus.HOLD]
    assert held and all(("IK failed" in o.reason) or ("velocity" in o.reason) for o in held)
    for o in held:
        assert WX250S.limits.within_position(o.target) and not o.send


def test_stale_chunks_hold_within_two_control_periods():
    period = 0.02
    a = make_adapter(control_period_s=period, safety=SafetyConfig(chunk_timeout_s=0.3))
    a.add_chunk(np.tile([0.001, 0, 0, 0, 0, 0, 1.0], (4, 1)), 0.0, 0.0)
    t = 0.0
    first_hold = None
    while t < 1.0:
        a.update_joint_state(START_Q, t)
        o = a.step(t)
        if o.status is ControlStatus.HOLD and "stale" in o.reason and first_hold is None:
            first_hold = t
        t = round(t + period, 10)
    assert first_hold is not None and first_hold - 0.3 <= 2 * period


def test_stale_joint_states_hold():
    a = make_adapter()
    a.add_chunk(np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (4, 1)), 0.5, 0.5)
    o = a.step(0.5)  # last joint state at t = 0
    assert o.status is ControlStatus.HOLD and "state stale" in o.reason and not o.send


def test_estop_latches_until_reset():
    a = make_adapter()
    chunk = np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (4, 1))
    a.estop("operator")
    for t in (0.0, 0.2, 0.4):
        a.add_chunk(chunk, t, t)
        a.update_joint_state(START_Q, t)
        o = a.step(t)
        assert o.status is ControlStatus.ESTOP and not o.send
    a.reset_estop()
    a.add_chunk(chunk, 0.6, 0.6)
    a.update_joint_state(START_Q, 0.6)
    assert a.step(0.6).status is ControlStatus.MOVE


def test_arm_outside_box_holds():
    a = WidowXAdapter(WidowXConfig())
    a.update_joint_state(np.zeros(6), 0.0, True)  # home pose: x 0.458 m, z 0.361 m, above the box
    a.set_dry_run(False)
    a.add_chunk(np.zeros((4, 7)), 0.0, 0.0)
    o = a.step(0.0)
    assert o.status is ControlStatus.HOLD and "outside the workspace box" in o.reason


def test_adapter_drives_simulated_driver_without_violations():
    sim = InterbotixSimDriver(InterbotixSimConfig(arm_profile_velocity=250.0), initial_q=START_Q)
    a = make_adapter(control_period_s=0.05)
    rng = np.random.default_rng(3)
    t = 0.0
    for step in range(60):
        for sub in range(4):
            if sub == 0:
                a.add_chunk(rng.uniform(-0.03, 0.03, (4, 7)) + [0, 0, 0, 0, 0, 0, 0.5], t - 0.05, t)
            sim.update(t)
            js = sim.joint_states()
            a.update_joint_state(js.position[:6], js.stamp, gripper_open=js.position[7] > 0.025)
            o = a.step(t)
            if o.send:
                assert sim.command_joint_group("arm", list(o.target))
            if o.send_gripper:
                assert sim.command_joint_single("gripper", o.gripper)
            t = round(t + 0.05, 10)
    assert sim.violations == []
    js = sim.joint_states()
    assert js.name[-2:] == ("left_finger", "right_finger") and js.position[-1] == -js.position[-2]
    p = forward_kinematics(WX250S, js.position[:6])[:3, 3]
    assert a.box.contains(p, tol=0.01)


# ---- property: ≥10,000 generated chunks, nothing unsafe ever leaves the adapter ----------------
# Chunks arrive twice per policy step (inference faster than 5 Hz), stamped `latency` earlier.
CHUNKS_PER_EXAMPLE = 4
EXAMPLES = 2550  # × 4 chunks = 10,200 chunks

sane = arrays(np.float64, (4, 7), elements=st.floats(-0.08, 0.08))
extreme = arrays(np.float64, (4, 7), elements=st.floats(allow_nan=False, allow_infinity=False))
poisoned = arrays(np.float64, (4, 7), elements=st.floats(allow_nan=True, allow_infinity=True))
any_chunk = st.one_of(sane, sane, extreme, poisoned)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunks=st.lists(any_chunk, min_size=CHUNKS_PER_EXAMPLE, max_size=CHUNKS_PER_EXAMPLE),
       dry_run=st.booleans(), latency=st.floats(0.0, 0.5))
def test_property_widowx_commands_stay_safe(chunks, dry_run, latency):
    a = make_adapter(armed=not dry_run)
    prev = START_Q.copy()
    for i in range(CHUNKS_PER_EXAMPLE + 1):
        t = 0.1 * i
        if i < CHUNKS_PER_EXAMPLE:
            a.add_chunk(chunks[i], t - latency, t)
        a.update_joint_state(START_Q, t)
        if i % 2:
            continue
        o = a.step(t)  # ticks at 0, 0.2, 0.4 s
        assert np.all(np.isfinite(o.target))
        assert WX250S.limits.within_position(o.target)
        assert WX250S.limits.within_velocity(prev, o.target, PERIOD)
        assert a.box.contains(forward_kinematics(WX250S, o.target)[:3, 3], tol=IK_POSITION_TOLERANCE)
        if dry_run:
            assert not o.send and not o.send_gripper
        prev = o.target
