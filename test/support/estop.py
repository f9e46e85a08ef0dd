"""E-stop stop times measured on the devices' stand-ins (the UR controller stand-in, the MuJoCo
ALOHA followers), shared by the test and bench/hostile.py."""
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


def aloha_stop_time(speed_rest: float = 0.05) -> tuple[float, float]:
    """(time to rest s, fastest joint speed at the stop rad/s) of a simulated ALOHA follower turning
    its waist at full speed when it is sent its measured joints as the goal (what the bimanual
    adapter's e-stop does)."""
    from octo_ros.robots.bimanual.sim import AlohaSim

    sim = AlohaSim()
    sim.set_arm_goal("left", sim.arm_goal("left") + np.array([1.2, 0, 0, 0, 0, 0]))
    sim.step(10)
    speed = float(np.max(np.abs(sim.joint_states("left").velocity[:6])))
    sim.set_arm_goal("left", np.array(sim.joint_states("left").position[:6]))
    t0 = sim.time
    while np.max(np.abs(sim.joint_states("left").velocity[:6])) > speed_rest:
        sim.step()
        assert sim.time - t0 < 2.0, "the follower never came to rest"
    return sim.time - t0, speed
