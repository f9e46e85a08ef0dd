"""E-stop stop times measured on the devices' stand-ins (the UR controller stand-in, the xs_sdk
driver stand-in behind the WidowX adapter, the MuJoCo ALOHA followers), shared by the test and
bench/hostile.py."""
import numpy as np

from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode
from octo_ros.control.kinematics import solve_ik
from octo_ros.robots.interbotix.driver_standin import InterbotixSimConfig, InterbotixSimDriver
from octo_ros.robots.interbotix.kinematics import ARMS
from octo_ros.robots.ur5.adapter import URConfig, URRTDEBackend
from octo_ros.robots.ur5.controller_standin import FakeURController
from octo_ros.robots.widowx.adapter import BRIDGE_START_STATE, WidowXAdapter, WidowXConfig, pose_from_bridge_state


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


def widowx_stop_time() -> tuple[float, float, float, float]:
    """(stop time s, fastest joint speed at the e-stop rad/s, largest joint travel after it rad,
    control period s) of the WidowX adapter armed on the xs_sdk driver stand-in as widowx_sim runs
    it (position mode, no profile: joints at their velocity limits), executing +x steps at the
    per-step cap, when the e-stop arrives mid-move: the node then sends the last published joint
    state as the goal (``widowx_adapter.stop_motion``)."""
    arm = ARMS["wx250s"]
    start = solve_ik(arm, pose_from_bridge_state(BRIDGE_START_STATE)).q
    driver = InterbotixSimDriver(InterbotixSimConfig(arm_profile_type="velocity", arm_profile_velocity=0.0),
                                 initial_q=start)
    adapter = WidowXAdapter(WidowXConfig(execution=ChunkExecutionConfig(mode=ExecutionMode.RECEDING_HORIZON,
                                                                         exec_horizon=4)))
    period, dt = adapter.config.control_period_s, driver.dt

    def publish():  # xs_sdk publishes joint_states at its update rate; the adapter takes each one
        sample = driver.joint_states()
        adapter.update_joint_state(sample.position[:6], sample.stamp, now=sample.stamp)
        return np.array(sample.position[:6]), np.array(sample.velocity[:6])

    publish()
    adapter.set_dry_run(False)
    k, t = 0, 0.0
    while True:
        measured, velocity = publish()
        if k % round(period / dt) == 0:
            tick = k * dt
            if k % round(4 * period / dt) == 0:  # 4 steps out, 4 back: to and fro in the workspace box
                sign = 1.0 if k % round(8 * period / dt) == 0 else -1.0
                adapter.add_chunk(np.tile([0.05 * sign, 0, 0, 0, 0, 0, 1.0], (4, 1)), tick, tick)
            out = adapter.step(tick)
            if out.send:
                driver.command_joint_group("arm", out.target)
        if t >= 0.2 and np.max(np.abs(velocity)) > 1.0:  # moving fast, between two control ticks
            break
        k += 1
        t = k * dt
        driver.update(t)
        assert t < 5.0, "the arm never moved fast"
    speed, at_stop = float(np.max(np.abs(velocity))), driver.joint_states().position[:6]
    t0 = t + dt / 3  # the e-stop service call arrives between two driver updates
    adapter.estop("operator e-stop")
    driver.command_joint_group("arm", measured)
    while True:
        k += 1
        driver.update(k * dt)
        _, velocity = publish()  # the driver's velocity over its last update
        if np.max(np.abs(velocity)) < 1e-9:
            break
        assert k * dt - t0 < 1.0, "the arm never came to rest"
    travel = float(np.max(np.abs(np.array(driver.joint_states().position[:6]) - np.array(at_stop))))
    assert not driver.violations, driver.violations
    return k * dt - t0, speed, travel, period  # at rest from the first update that did not move it


def aloha_stop_time(speed_rest: float = 0.05, joint: int = 0) -> tuple[float, float, float]:
    """(time to rest s, fastest joint speed at the stop rad/s, time until every joint is below a tenth
    of that speed s) of a simulated ALOHA follower turning ``joint`` at full speed when it is sent its
    last published joints as the goal (what the bimanual adapter's e-stop does), at the followers'
    control rate (their joint_states rate)."""
    from octo_ros.robots.bimanual.sim import AlohaSim

    sim = AlohaSim()
    sim.set_arm_goal("left", sim.arm_goal("left") + 1.2 * np.eye(6)[joint])
    sim.step(10)
    speed = float(np.max(np.abs(sim.joint_states("left").velocity[:6])))
    sim.set_arm_goal("left", np.array(sim.joint_states("left").position[:6]))
    t0, braked = sim.time, None
    while (fastest := np.max(np.abs(sim.joint_states("left").velocity[:6]))) > speed_rest:
        if braked is None and fastest < speed / 10:
            braked = sim.time - t0
        sim.step()
        assert sim.time - t0 < 2.0, "the follower never came to rest"
    return sim.time - t0, speed, sim.time - t0 if braked is None else braked
