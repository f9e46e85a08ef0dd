import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from octo_ros.control.kinematics import apply_delta, rotation_log
from octo_ros.control.safety import ControlStatus
from octo_ros.robots.ur5.adapter import URAdapter, URConfig, URRTDEBackend, matrix_to_pose, pose_to_matrix
from octo_ros.robots.ur5.controller_standin import FakeURController

START = (0.4, -0.1, 0.3, 0.0, math.pi, 0.0)  # TCP pointing down
BOX = dict(workspace_low=(0.2, -0.4, 0.1), workspace_high=(0.7, 0.2, 0.5))


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def make_backend(**kw):
    clock = Clock()
    fake = FakeURController(initial_pose=START, clock=clock)
    backend = URRTDEBackend(URConfig(**BOX, **kw), "127.0.0.1", connect=fake.connect)
    return clock, fake, backend


def drive(clock, fake, backend, seconds, chunk_every=0.2, chunk=None, latency=0.05):
    dt = backend.config.control_period_s
    cycles = []
    next_chunk = 0.0
    for _ in range(int(round(seconds / dt))):
        if chunk is not None and clock.t >= next_chunk - 1e-9:
            backend.adapter.add_chunk(chunk, clock.t - latency, clock.t)
            next_chunk += chunk_every
        cycles.append(backend.cycle(clock.t))
        clock.t = round(clock.t + dt, 9)
    return cycles


def test_rotvec_round_trip_and_delta_composition():
    T = pose_to_matrix(START)
    np.testing.assert_allclose(pose_to_matrix(matrix_to_pose(T)), T, atol=1e-12)
    T2 = apply_delta(T, [0.01, 0, 0], [0, 0, 0.1])  # yaw about base z, about the TCP
    np.testing.assert_allclose(T2[:3, 3], [0.41, -0.1, 0.3])
    np.testing.assert_allclose(rotation_log(T2[:3, :3] @ T[:3, :3].T), [0, 0, 0.1], atol=1e-12)


def test_real_ur_rtde_factory_is_importable():
    import rtde_control  # noqa: F401  (ur-rtde==1.6.5 is installed)
    import rtde_receive  # noqa: F401


def test_dry_run_never_calls_servo():
    clock, fake, backend = make_backend()
    chunk = np.tile([0.02, 0, 0, 0, 0, 0, 0.0], (4, 1))
    cycles = drive(clock, fake, backend, 1.0, chunk=chunk)
    assert all(c.output.status is ControlStatus.MOVE for c in cycles[1:])
    assert fake.servo_calls == 0 and not any(c.servo_sent for c in cycles)
    np.testing.assert_allclose(fake.pose()[:3], START[:3], atol=1e-12)


def test_armed_servo_moves_robot_within_speed_caps():
    clock, fake, backend = make_backend()
    assert backend.arm(clock.t) == ""
    chunk = np.tile([0.02, 0.0, 0.0, 0, 0, 0, 1.0], (4, 1))
    cycles = drive(clock, fake, backend, 1.0, chunk=chunk)
    assert fake.servo_calls == len(cycles)
    poses = [c.output.target for c in cycles]
    dt = backend.config.control_period_s
    for a, b in zip(poses, poses[1:]):
        assert np.linalg.norm(b[:3] - a[:3]) <= 0.25 * dt + 1e-12
    commanded = backend.adapter.commanded_pose[0] - START[0]
    assert commanded == pytest.approx(0.1, abs=1e-6)  # 5 steps × 0.02 m, last step fully interpolated
    moved = fake.pose()[0] - START[0]
    assert 0.06 < moved <= commanded + 1e-6  # the arm tracks with latency + lookahead lag


def test_preflight_refuses_protective_stop_and_servo_failure_latches():
    clock, fake, backend = make_backend()
    fake.trigger_protective_stop()
    assert "protective" in backend.arm(clock.t)
    clock2, fake2, backend2 = make_backend()
    assert backend2.arm(0.0) == ""
    chunk = np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (4, 1))
    drive(clock2, fake2, backend2, 0.2, chunk=chunk)
    fake2.trigger_protective_stop()
    cycles = drive(clock2, fake2, backend2, 0.2, chunk=chunk)
    assert all(c.output.status is ControlStatus.ESTOP and not c.servo_sent for c in cycles)
    assert not fake2.unlock_protective_stop()  # < 5 s


def test_estop_reset_is_refused_while_armed_on_a_robot_that_is_not_ready():
    clock, fake, backend = make_backend()
    assert backend.set_dry_run(False, clock.t) == "" and not backend.adapter.supervisor.dry_run
    backend.adapter.estop("operator e-stop")
    fake.trigger_protective_stop()
    assert backend.reset_estop() == ("robot not ready (robot is protective-stopped); fix it or switch to "
                                     "dry-run first")
    assert backend.adapter.supervisor.estopped
    assert backend.set_dry_run(True, clock.t) == "" and backend.adapter.supervisor.dry_run
    assert backend.reset_estop() == "" and not backend.adapter.supervisor.estopped  # dry-run: nothing moves
    assert "protective" in backend.set_dry_run(False, clock.t)


def test_rtde_watchdog_stops_robot_when_not_kicked():
    clock, fake, backend = make_backend()
    backend.arm(0.0)
    chunk = np.tile([0.02, 0, 0, 0, 0, 0, 1.0], (4, 1))
    drive(clock, fake, backend, 0.4, chunk=chunk)
    clock.t += 0.5  # our process stalls for longer than 1/10 Hz
    assert not fake.control.isProgramRunning()
    assert not backend.cycle(clock.t).servo_sent  # servoL refused → latched stop


def test_stale_chunk_holds_within_two_control_periods():
    clock, fake, backend = make_backend()
    backend.arm(0.0)
    backend.adapter.add_chunk(np.tile([0.001, 0, 0, 0, 0, 0, 1.0], (4, 1)), 0.0, 0.0)
    dt = backend.config.control_period_s
    first_hold = None
    while clock.t < 1.2:
        c = backend.cycle(clock.t)
        if "stale" in c.output.reason and first_hold is None:
            first_hold = clock.t
            assert c.servo_sent  # holding = streaming the held pose
        clock.t = round(clock.t + dt, 9)
    assert first_hold is not None and first_hold - 1.0 <= 2 * dt


def test_shutdown_stops_servo_and_script():
    clock, fake, backend = make_backend()
    backend.arm(0.0)
    drive(clock, fake, backend, 0.1, chunk=np.zeros((4, 7)))
    backend.shutdown()
    assert not fake.servo_active and not fake.program_running and not fake.connected


def armed_adapter(**kw):
    a = URAdapter(URConfig(**BOX, **kw))
    a.update_tcp_pose(START, 0.0, now=0.0)
    a.set_dry_run(False)
    return a


FORWARD = np.tile([0.02, 0, 0, 0, 0, 0, 1.0], (4, 1))
MOVED = (0.6, 0.1, 0.2, 0.0, math.pi, 0.0)  # in the box, 0.3 m from START


@pytest.mark.parametrize("ticks_during_outage", [True, False])
def test_state_outage_with_tcp_moved_reanchors_to_measured(ticks_during_outage):
    a = armed_adapter()
    dt = a.config.control_period_s
    for k in range(50):
        t = k * dt
        if k % 25 == 0:
            a.add_chunk(FORWARD, t, t)
        a.update_tcp_pose(START, t, now=t)
        assert a.step(t).status is ControlStatus.MOVE
    if ticks_during_outage:  # 1.6 s without TCP poses
        for t in (0.8, 1.2, 1.6):
            a.add_chunk(FORWARD, t, t)
            assert "state stale" in a.step(t).reason
    measured = pose_to_matrix(MOVED)
    a.add_chunk(FORWARD, 2.0, 2.0)
    for k in range(5):
        t = 2.0 + k * dt
        a.update_tcp_pose(matrix_to_pose(measured), t, now=t)
        o = a.step(t)
        assert o.status is ControlStatus.MOVE and o.send
        T = pose_to_matrix(o.target)
        assert np.linalg.norm(T[:3, 3] - measured[:3, 3]) <= a.config.max_linear_speed_m_s * dt + 1e-9
        measured = T


def test_tracking_error_stops_servo_instead_of_streaming_the_held_pose():
    clock, fake, backend = make_backend()
    assert backend.arm(0.0) == ""
    drive(clock, fake, backend, 0.2, chunk=FORWARD)
    assert fake.servo_active
    fake.position = fake.position + np.array([0.0, 0.2, 0.0])  # the TCP is pushed 0.2 m away
    for _ in range(3):
        c = backend.cycle(clock.t)
        assert c.output.status is ControlStatus.HOLD and not c.servo_sent
        assert c.output.reason.startswith("tracking error") and "TCP position" in c.output.reason
        clock.t = round(clock.t + backend.config.control_period_s, 9)
    assert not fake.servo_active
    backend.disarm()  # re-arming re-anchors at the measured TCP
    assert backend.arm(clock.t) == ""
    assert drive(clock, fake, backend, 0.1, chunk=FORWARD)[-1].servo_sent


def test_future_stamped_tcp_pose_does_not_keep_the_state_fresh():
    a = armed_adapter()
    accepted = a.update_tcp_pose(START, 3600.0, now=0.1)  # then no more poses
    for t in np.arange(0.3, 5.0, 0.2):
        a.add_chunk(FORWARD, t, t)
        o = a.step(t)
        assert o.status is ControlStatus.HOLD and "state stale" in o.reason and not o.send
    assert not accepted and "in the future" in a.last_state_error


def test_gripper_chosen_in_dry_run_is_sent_once_armed():
    a = URAdapter(URConfig(**BOX))
    a.update_tcp_pose(START, 0.0, now=0.0)
    close = np.tile([0, 0, 0, 0, 0, 0, 0.0], (4, 1))
    outs = []
    for k in range(6):
        t = 0.2 * k
        if k == 3:
            a.set_dry_run(False)
        a.add_chunk(close, t, t)
        a.update_tcp_pose(START, t, now=t)
        outs.append(a.step(t))
    assert not any(o.send_gripper for o in outs[:3]) and outs[2].gripper == 255.0
    assert [o.send_gripper for o in outs[3:]] == [True, False, False] and outs[3].gripper == 255.0


# ---- property --------------------------------------------------------------------------------
# Three chunks, one per policy step; at each step boundary and the cycle after it the TCP pose is read
# and the adapter ticks, plus a last tick at 0.75 s. The TCP follows what is sent. Disturbances: a
# state outage (the reads of one whole step missing) after which the TCP is elsewhere, a pose stamped
# in the future (then silence, or normal poses), the TCP pushed.
CHUNKS_PER_EXAMPLE = 3
EXAMPLES = 3400  # 10,200 chunks
STATE_TIMEOUT = URConfig(**BOX).safety.state_timeout_s
TRACK = URConfig(**BOX).safety.tracking_tolerance_s
sane = arrays(np.float64, (4, 7), elements=st.floats(-0.08, 0.08))
extreme = arrays(np.float64, (4, 7), elements=st.floats(allow_nan=False, allow_infinity=False))
poisoned = arrays(np.float64, (4, 7), elements=st.floats(allow_nan=True, allow_infinity=True))
ELSEWHERE = [pose_to_matrix(p) for p in (START, MOVED, (0.3, 0.1, 0.45, 0.3, 3.0, 0.2), (0.9, 0.0, 0.3, 0.0, math.pi, 0.0))]
where = st.sampled_from(range(len(ELSEWHERE)))
disturbance = st.one_of(
    st.none(),
    st.tuples(st.just("outage"), st.integers(1, 2), where),  # the reads of step i are missing
    st.tuples(st.just("future"), st.integers(1, 6), st.floats(0.06, 1e4), st.booleans()),  # at tick index
    st.tuples(st.just("pushed"), st.integers(1, 6), where),
)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunks=st.lists(st.one_of(sane, sane, extreme, poisoned), min_size=3, max_size=3),
       dry_run=st.booleans(), latency=st.floats(0.0, 0.5), disturbance=disturbance)
def test_property_ur_commands_stay_safe(chunks, dry_run, latency, disturbance):
    cfg = URConfig(**BOX)
    a = URAdapter(cfg)
    a.update_tcp_pose(START, 0.0, now=0.0)
    if not dry_run:
        a.set_dry_run(False)
    dt = cfg.control_period_s
    lin, ang = cfg.max_linear_speed_m_s, cfg.max_angular_speed_rad_s
    kind, at = (disturbance or (None, None))[:2]
    prev = tcp = reported = pose_to_matrix(START)
    last_state = 0.0
    silent = pushed = unreported = False
    ticks = [(i, t) for i in range(CHUNKS_PER_EXAMPLE) for t in (0.2 * i, 0.2 * i + dt)] + [(3, 0.75)]
    for n, (i, t) in enumerate(ticks):
        if t == 0.2 * i and i < CHUNKS_PER_EXAMPLE:
            a.add_chunk(chunks[i], 0.2 * i - latency, 0.2 * i)
        stamp = t
        driver_down = kind == "outage" and i == at
        if driver_down:
            stamp = None
            tcp, unreported = ELSEWHERE[disturbance[2]], True
        elif kind == "future" and n == at:
            stamp, silent = t + disturbance[2], disturbance[3]
        elif kind == "pushed" and n == at:
            tcp, pushed = ELSEWHERE[disturbance[2]], True
        elif silent:
            stamp = None
        if stamp is not None:
            accepted = a.update_tcp_pose(matrix_to_pose(tcp), stamp, now=t)
            assert accepted == (stamp <= t)
            if accepted:
                last_state, reported, unreported = t, tcp, False
        o = a.step(t)
        assert np.all(np.isfinite(o.target))
        T = pose_to_matrix(o.target)

        def within_caps(ref, scale=1.0):
            return (np.linalg.norm(T[:3, 3] - ref[:3, 3]) <= lin * dt * scale + 1e-9
                    and np.linalg.norm(rotation_log(T[:3, :3] @ ref[:3, :3].T)) <= ang * dt * scale + 1e-6)

        assert within_caps(prev) or within_caps(reported)
        if o.status is ControlStatus.MOVE:
            assert a.box.contains(T[:3, 3])
        if t - last_state > STATE_TIMEOUT:
            assert o.status is not ControlStatus.MOVE and not o.send and not o.send_gripper
        if o.send:
            assert within_caps(reported, 1.0 + TRACK / dt)
            if not (unreported or pushed):
                assert within_caps(tcp)
            if not driver_down:
                tcp, pushed = T, False
        if dry_run:
            assert not o.send and not o.send_gripper
        prev = T
