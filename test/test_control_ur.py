import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from octo_ros.control.fake_ur import FakeURController
from octo_ros.control.kinematics import rotation_log
from octo_ros.control.safety import ControlStatus
from octo_ros.control.ur import URAdapter, URConfig, URRTDEBackend, apply_delta, matrix_to_pose, pose_to_matrix

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


# ---- property --------------------------------------------------------------------------------
CHUNKS_PER_EXAMPLE = 3
EXAMPLES = 3400  # 10,200 chunks
sane = arrays(np.float64, (4, 7), elements=st.floats(-0.08, 0.08))
extreme = arrays(np.float64, (4, 7), elements=st.floats(allow_nan=False, allow_infinity=False))
poisoned = arrays(np.float64, (4, 7), elements=st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunks=st.lists(st.one_of(sane, sane, extreme, poisoned), min_size=3, max_size=3),
       dry_run=st.booleans(), latency=st.floats(0.0, 0.5))
def test_property_ur_commands_stay_safe(chunks, dry_run, latency):
    cfg = URConfig(**BOX)
    a = URAdapter(cfg)
    a.update_tcp_pose(START, 0.0)
    if not dry_run:
        a.set_dry_run(False)
    dt = cfg.control_period_s
    prev = pose_to_matrix(START)
    t = 0.0
    for i, chunk in enumerate(chunks):
        a.add_chunk(chunk, 0.2 * i - latency, 0.2 * i)
        # the step boundary (new target) and the next cycle (interpolation under the speed caps)
        for t in (0.2 * i, 0.2 * i + dt):
            a.update_tcp_pose(START, t)
            o = a.step(t)
            assert np.all(np.isfinite(o.target))
            T = pose_to_matrix(o.target)
            assert a.box.contains(T[:3, 3])
            assert np.linalg.norm(T[:3, 3] - prev[:3, 3]) <= cfg.max_linear_speed_m_s * dt + 1e-9
            assert np.linalg.norm(rotation_log(T[:3, :3] @ prev[:3, :3].T)) <= cfg.max_angular_speed_rad_s * dt + 1e-6
            if dry_run:
                assert not o.send and not o.send_gripper
            prev = T
