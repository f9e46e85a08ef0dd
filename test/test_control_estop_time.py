"""E-stop stop time (issue #12 item 8), on the UR controller stand-in (modelled like the device:
latency, servoStop deceleration): the TCP moving at the speed cap is at rest within two control
periods of the e-stop call."""
import numpy as np

from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode
from octo_ros.robots.ur5.adapter import URConfig, URRTDEBackend
from octo_ros.robots.ur5.controller_standin import FakeURController


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def ur_stop_time() -> tuple[float, float, float]:
    """(stop time s, speed at the e-stop m/s, travel after it m) for a TCP moving at the cap."""
    clock = Clock()
    fake = FakeURController(clock=clock)
    config = URConfig((0.25, -0.3, 0.05), (0.6, 0.3, 0.45),
                      execution=ChunkExecutionConfig(mode=ExecutionMode.RECEDING_HORIZON, exec_horizon=4))
    backend = URRTDEBackend(config, "fake", connect=fake.connect)
    assert backend.arm(0.0) == ""
    period = config.control_period_s
    k = 0
    while clock.t < 0.5:  # stream +x at the speed cap
        if k % 25 == 0:
            backend.adapter.add_chunk(np.tile([0.05, 0, 0, 0, 0, 0, 1.0], (4, 1)), clock.t, clock.t)
        backend.cycle(clock.t)
        k += 1
        clock.t = k * period
    speed = float(np.linalg.norm(backend.receive.getActualTCPSpeed()[:3]))
    start = np.array(backend.receive.getActualTCPPose()[:3])
    t0 = clock.t + period / 3  # the e-stop service call arrives between two control cycles
    clock.t = t0
    backend.adapter.estop("operator e-stop")
    backend.stop_now()
    t = t0
    while np.linalg.norm(backend.receive.getActualTCPSpeed()) > 1e-9:
        t += 0.0005
        clock.t = t
        if abs(((t - t0) / period) % 1) < 0.0005 / period:
            backend.cycle(t)
        assert t - t0 < 1.0, "the TCP never came to rest"
    travel = float(np.linalg.norm(np.array(backend.receive.getActualTCPPose()[:3]) - start))
    return t - t0, speed, travel


def test_ur5_estop_stops_within_two_control_periods():
    stop_s, speed, travel = ur_stop_time()
    period = 1 / 125
    assert speed > 0.2, f"the TCP was not moving at the cap ({speed:.3f} m/s)"
    assert stop_s <= 2 * period, f"at rest {stop_s * 1e3:.1f} ms after the e-stop (two periods: {2e3 * period:.0f} ms)"
    assert travel < 0.003
