from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode
from octo_ros.control.kinematics import IK_POSITION_TOLERANCE, forward_kinematics, solve_ik
from octo_ros.control.safety import ControlStatus, SafetyConfig
from octo_ros.robots.interbotix.driver_standin import InterbotixSimConfig, InterbotixSimDriver
from octo_ros.robots.interbotix.kinematics import WX250S
from octo_ros.robots.widowx.adapter import (
    BRIDGE_START_STATE,
    WidowXAdapter,
    WidowXConfig,
    bridge_state_from_pose,
    interbotix_pwm,
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


def run(adapter, chunks, steps, period=PERIOD, latency=0.05, extra=None, follow=False):
    """Feed chunk k at t = k·0.2 (stamped latency earlier), tick every period; yield outputs.
    The measured arm stays at START_Q, is ``extra(t)``, or (``follow``) is the last target sent."""
    t, outs, q = 0.0, [], START_Q
    n_ticks = int(round(steps * 0.2 / period))
    for i in range(n_ticks):
        k = i * period / 0.2
        if abs(k - round(k)) < 1e-9 and int(round(k)) < len(chunks):
            adapter.add_chunk(chunks[int(round(k))], t - latency, t)
        adapter.update_joint_state(extra(t) if extra else q, t, now=t)
        outs.append(adapter.step(t))
        if follow and outs[-1].send:
            q = outs[-1].target
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
    outs = run(a, [chunk] * 40, steps=40, follow=True)
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


def test_lost_chunk_source_drops_the_plan_and_holds_until_its_next_chunk():
    a = make_adapter()
    chunk = np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (4, 1))  # plans 0.8 s ahead
    a.add_chunk(chunk, 0.0, 0.0)
    a.update_joint_state(START_Q, 0.0)
    assert a.step(0.0).status is ControlStatus.MOVE
    a.chunk_source_lost("teleop", "teleop gone")  # not the executed source: nothing changes
    a.update_joint_state(START_Q, 0.2)
    assert a.step(0.2).status is ControlStatus.MOVE
    a.chunk_source_lost("policy", "policy chunk publisher lost")
    for t in (0.4, 0.6):  # the plan still had steps: dropped
        a.update_joint_state(START_Q, t)
        o = a.step(t)
        assert o.status is ControlStatus.HOLD and o.reason == "policy chunk publisher lost" and not o.send
    a.add_chunk(chunk, 0.8, 0.8)
    a.update_joint_state(START_Q, 0.8)
    assert a.step(0.8).status is ControlStatus.MOVE


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


FORWARD = np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (4, 1))
# In the workspace box, 0.93 rad (waist) from START_Q: more than one control period's velocity limit away.
MOVED_Q = solve_ik(WX250S, pose_from_bridge_state((0.15, 0.2, 0.05, 0, 0, 0.9))).q
MAX_STEP = np.pi * PERIOD


def tick(adapter, t, q, chunk=FORWARD, **state):
    adapter.add_chunk(chunk, t, t)
    adapter.update_joint_state(q, t, now=t, **state)
    return adapter.step(t)


@pytest.mark.parametrize("moved, expect", [(WX250S.sleep, ""), (MOVED_Q, ""), (np.zeros(6), "outside the workspace box")])
@pytest.mark.parametrize("ticks_during_outage", [True, False])
def test_state_outage_with_arm_moved_reanchors_to_measured(moved, expect, ticks_during_outage):
    a = make_adapter()
    for t in (0.0, 0.2):
        assert tick(a, t, START_Q).status is ControlStatus.MOVE
    # joint states stop for 2 s; the driver comes back with the arm elsewhere
    if ticks_during_outage:
        for t in (0.6, 1.0, 1.4):
            a.add_chunk(FORWARD, t, t)
            o = a.step(t)
            assert o.status is ControlStatus.HOLD and "state stale" in o.reason and not o.send
    moved = np.asarray(moved, float)
    for t in (2.4, 2.6):
        o = tick(a, t, moved)
        assert np.max(np.abs(o.target - moved)) <= MAX_STEP + 1e-9, "commanded far from the measured arm"
        if expect:
            assert o.status is ControlStatus.HOLD and expect in o.reason and not o.send
        else:
            assert o.status is ControlStatus.MOVE and o.send
        moved = o.target if o.send else moved  # the arm follows what is sent


def test_tracking_error_holds_and_names_the_discrepancy():
    a = make_adapter()
    assert tick(a, 0.0, START_Q).send
    # the states stay fresh, but the arm is elsewhere (pushed, or the driver restarted within the timeout)
    for t in (0.2, 0.4):
        o = tick(a, t, MOVED_Q)
        assert o.status is ControlStatus.HOLD and not o.send
        assert o.reason.startswith("tracking error") and "waist" in o.reason, o.reason
    # a preview is not tracked (the robot does not follow it); arming again re-anchors to the arm
    a.set_dry_run(True)
    assert tick(a, 0.6, MOVED_Q).status is ControlStatus.MOVE
    a.set_dry_run(False)
    o = tick(a, 0.8, MOVED_Q)
    assert o.status is ControlStatus.MOVE and o.send and np.max(np.abs(o.target - MOVED_Q)) <= MAX_STEP


def test_future_stamped_state_does_not_keep_the_state_fresh():
    a = make_adapter()
    accepted = a.update_joint_state(START_Q, 3600.0, now=0.1)  # then no more states
    for t in np.arange(0.2, 10.01, 0.2):
        a.add_chunk(FORWARD, t, t)
        o = a.step(t)
        if t > 0.25 + 1e-9:
            assert o.status is ControlStatus.HOLD and "state stale" in o.reason and not o.send
    assert not accepted and "in the future" in a.last_state_error


def test_future_stamped_state_without_now_holds_until_a_sane_state():
    a = make_adapter()
    assert a.update_joint_state(START_Q, 3600.0)  # a caller that cannot tell "now": the gate checks it
    a.add_chunk(FORWARD, 0.2, 0.2)
    o = a.step(0.2)
    assert o.status is ControlStatus.HOLD and "in the future" in o.reason and not o.send
    assert tick(a, 0.4, START_Q).status is ControlStatus.MOVE


CLOSE = np.tile([0, 0, 0, 0, 0, 0, 0.0], (4, 1))


def test_gripper_chosen_in_dry_run_is_sent_once_armed():
    a = WidowXAdapter(WidowXConfig())
    a.update_joint_state(START_Q, 0.0, now=0.0)  # no gripper state
    outs = []
    for k in range(6):
        if k == 3:
            a.set_dry_run(False)
        outs.append(tick(a, 0.2 * k, START_Q, chunk=CLOSE))
    assert not any(o.send_gripper for o in outs[:3])
    assert [o.send_gripper for o in outs[3:]] == [True, False, False] and outs[3].gripper == -250.0


@pytest.mark.parametrize("event", ["estop", "outage"])
def test_gripper_is_resent_after_estop_reset_and_outage(event):
    a = make_adapter()
    sent = [tick(a, 0.2 * k, START_Q, chunk=CLOSE).send_gripper for k in range(3)]
    assert sent == [True, False, False]
    if event == "estop":
        a.estop("operator")
        a.reset_estop()
        t = 0.6
    else:
        t = 2.0  # 1.6 s without joint states
    outs = [tick(a, t + 0.2 * k, START_Q, chunk=CLOSE) for k in range(3)]
    assert [o.send_gripper for o in outs] == [True, False, False] and outs[0].gripper == -250.0


def test_measured_gripper_state_resets_the_mapper_on_arming():
    # sticky debounce over 2 steps: the mapper starts from the measured gripper, not the dry-run preview
    a = WidowXAdapter(WidowXConfig(gripper=replace(interbotix_pwm(), sticky_steps=2)))
    a.update_joint_state(START_Q, 0.0, gripper_open=False, now=0.0)
    for k in range(3):
        tick(a, 0.2 * k, START_Q, chunk=np.tile([0, 0, 0, 0, 0, 0, 1.0], (4, 1)), gripper_open=False)
    assert a.gripper.command == 250.0  # the preview opened it
    a.set_dry_run(False)  # the measured gripper is closed: the mapper restarts from closed
    o = tick(a, 0.6, START_Q, chunk=np.tile([0, 0, 0, 0, 0, 0, 1.0], (4, 1)), gripper_open=False)
    assert o.send_gripper and o.gripper == -250.0  # still closed (1 of 2 debounce steps), re-synced
    o = tick(a, 0.8, START_Q, chunk=np.tile([0, 0, 0, 0, 0, 0, 1.0], (4, 1)), gripper_open=False)
    assert o.send_gripper and o.gripper == 250.0


# ---- property: ≥10,000 generated chunks, nothing unsafe ever leaves the adapter ----------------
# Chunks arrive twice per policy step (inference faster than 5 Hz), stamped `latency` earlier; joint
# states every 0.1 s, ticks every 0.2 s. The simulated arm follows what is sent. Each example may
# carry one disturbance: a state outage after which the driver reports the arm elsewhere, a state
# stamped in the future (then silence, or normal states), or the arm pushed elsewhere with the
# states staying fresh.
CHUNKS_PER_EXAMPLE = 4
EXAMPLES = 2550  # × 4 chunks = 10,200 chunks
STATES = 9  # t = 0 … 0.8 s
STATE_TIMEOUT = SafetyConfig().state_timeout_s
TRACKING_TOL = np.pi * SafetyConfig().tracking_tolerance_s
ELSEWHERE = [START_Q, MOVED_Q, np.array(WX250S.sleep), np.zeros(6),
             solve_ik(WX250S, pose_from_bridge_state((0.35, -0.1, 0.2, 0.2, -0.2, -0.3))).q]

sane = arrays(np.float64, (4, 7), elements=st.floats(-0.08, 0.08))
extreme = arrays(np.float64, (4, 7), elements=st.floats(allow_nan=False, allow_infinity=False))
poisoned = arrays(np.float64, (4, 7), elements=st.floats(allow_nan=True, allow_infinity=True))
any_chunk = st.one_of(sane, sane, extreme, poisoned)
where = st.sampled_from(range(len(ELSEWHERE)))
disturbance = st.one_of(
    st.none(),
    st.tuples(st.just("outage"), st.integers(1, 4), st.integers(3, 6), where),  # from state i, n states missing
    st.tuples(st.just("future"), st.integers(1, 6), st.floats(0.06, 1e4), st.booleans()),  # ahead by s, then silent?
    st.tuples(st.just("pushed"), st.integers(1, 6), where),
)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunks=st.lists(any_chunk, min_size=CHUNKS_PER_EXAMPLE, max_size=CHUNKS_PER_EXAMPLE),
       dry_run=st.booleans(), latency=st.floats(0.0, 0.5), disturbance=disturbance)
def test_property_widowx_commands_stay_safe(chunks, dry_run, latency, disturbance):
    a = make_adapter(armed=not dry_run)
    kind, at = (disturbance or (None, None))[:2]
    prev = arm = reported = START_Q.copy()  # the output before, where the arm is, what the adapter last got
    last_state = 0.0  # arrival of the last state the adapter could accept
    silent = driver_down = pushed = unreported = False  # unreported: the arm moved, no state said so yet
    for i in range(STATES):
        t = round(0.1 * i, 9)
        if i < CHUNKS_PER_EXAMPLE:
            a.add_chunk(chunks[i], t - latency, t)
        stamp = t
        driver_down = kind == "outage" and at <= i < at + disturbance[2]
        if driver_down:
            stamp = None
            arm, unreported = ELSEWHERE[disturbance[3]].copy(), True  # the driver comes back with the arm there
        elif kind == "future" and i == at:
            stamp, silent = t + disturbance[2], disturbance[3]
        elif kind == "pushed" and i == at:
            arm = ELSEWHERE[disturbance[2]].copy()
            pushed = True  # until a target is sent, the arm may be anywhere within the tracking tolerance
        elif silent:
            stamp = None
        if stamp is not None:
            accepted = a.update_joint_state(arm, stamp, now=t)
            assert accepted == (stamp <= t)
            if accepted:
                last_state, reported, unreported = t, arm, False
        if i % 2:
            continue
        o = a.step(t)  # ticks at 0, 0.2, … 0.8 s
        assert np.all(np.isfinite(o.target))
        assert WX250S.limits.within_position(o.target)
        assert (WX250S.limits.within_velocity(prev, o.target, PERIOD)
                or WX250S.limits.within_velocity(reported, o.target, PERIOD))
        if o.status is ControlStatus.MOVE:
            assert a.box.contains(forward_kinematics(WX250S, o.target)[:3, 3], tol=IK_POSITION_TOLERANCE)
        if t - last_state > STATE_TIMEOUT:
            assert o.status is not ControlStatus.MOVE and not o.send and not o.send_gripper
        if o.send:  # never far from the measured arm; one step from it when the adapter knows where it is
            assert np.all(np.abs(o.target - reported) <= TRACKING_TOL + np.pi * PERIOD + 1e-9)
            if not (unreported or pushed):  # the adapter knows where the arm is: e.g. the first target after an outage
                assert WX250S.limits.within_velocity(arm, o.target, PERIOD)
            if not driver_down:
                arm, pushed = o.target, False  # the arm follows
        if dry_run:
            assert not o.send and not o.send_gripper
        prev = o.target
