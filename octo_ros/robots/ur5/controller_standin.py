"""In-repo stand-in for a UR controller seen through ur_rtde (no robot can exist here).

``FakeURController`` simulates the arm in real time against an injectable clock and exposes
``control`` / ``receive`` objects with the ur_rtde method names and signatures used by
``octo_ros.robots.ur5.adapter`` (``RTDEControlInterface`` / ``RTDEReceiveInterface``). Device behaviour:

* servoL targets take effect after a transport latency and are tracked with the lookahead as a
  time constant, under TCP speed and acceleration limits;
* robot mode 7 (running) and safety mode 1 (normal) after start-up; ``triggerProtectiveStop`` (or
  a non-finite servo target) puts it into protective stop (safety mode 3): motion stops, the
  control script stops, and command calls return False, as ur_rtde's sendCommand does;
* unlocking is refused during the first 5 s after a protective stop (dashboard rule), then the
  script must be re-uploaded;
* once ``setWatchdog(f)`` was called, going more than 1/f s without input stops the script and
  brings the arm to rest;
* ``servoStop(a)`` ends servoing after the transport latency and brings the TCP to rest at the
  deceleration ``a`` (m/s²; rotation at the same rate relative to its own limits), not at the
  servo-tracking accelerations.
"""

from __future__ import annotations

import datetime
import math
import time

import numpy as np

from octo_ros.control.kinematics import rotation_exp, rotation_log

ROBOT_MODE_RUNNING = 7
SAFETY_NORMAL, SAFETY_PROTECTIVE_STOP = 1, 3
RUNTIME_STOPPED, RUNTIME_PLAYING = 1, 2
PROTECTIVE_STOP_UNLOCK_DELAY_S = 5.0


STANDIN_INITIAL_POSE = (0.4, -0.1, 0.3, 0.0, math.pi, 0.0)  # TCP [x, y, z, rx, ry, rz], base frame


class FakeURController:
    def __init__(
        self,
        initial_pose=STANDIN_INITIAL_POSE,
        clock=time.monotonic,
        latency_s: float = 0.004,
        max_linear_speed: float = 1.0,  # m/s
        max_angular_speed: float = math.pi,  # rad/s
        max_linear_accel: float = 2.5,  # m/s²
        max_angular_accel: float = 6.0,  # rad/s²
        sim_step_s: float = 0.002,  # 500 Hz internal update, like an e-Series controller
    ):
        self.clock = clock
        self.latency_s = latency_s
        self.limits = (max_linear_speed, max_angular_speed, max_linear_accel, max_angular_accel)
        self.sim_step_s = sim_step_s
        self.time = clock()
        self.position = np.array(initial_pose[:3], dtype=float)
        self.rotation = rotation_exp(np.array(initial_pose[3:6], dtype=float))
        self.lin_vel = np.zeros(3)
        self.ang_vel = np.zeros(3)
        self.robot_mode = ROBOT_MODE_RUNNING
        self.safety_mode = SAFETY_NORMAL
        self.emergency_stopped = False
        self.program_running = True
        self.connected = True
        self.servo_active = False
        self.protective_stop_time: float | None = None
        self.watchdog_period: float | None = None
        self.last_input = self.time
        self._pending: list[tuple[float, np.ndarray, float]] = []  # (apply_at, pose, lookahead)
        self._target: tuple[np.ndarray, np.ndarray, float] | None = None
        self._stop: tuple[float, float] | None = None  # servoStop: (takes effect at, deceleration m/s²)
        self.servo_calls = 0
        self.control = FakeRTDEControl(self)
        self.receive = FakeRTDEReceive(self)

    # used by tests / the node as ur.create_rtde_interfaces replacement
    def connect(self, host: str, frequency_hz: float):
        return self.control, self.receive

    # simulation ---------------------------------------------------------------------
    def advance(self) -> None:
        now = self.clock()
        while self.time + self.sim_step_s <= now + 1e-12:
            self.time += self.sim_step_s
            self._tick(self.sim_step_s)

    def _tick(self, dt: float) -> None:
        if self.watchdog_period is not None and self.program_running and self.time - self.last_input > self.watchdog_period:
            self.program_running = False  # "shutdown the control" (ur_rtde setWatchdog default action)
            self.servo_active = False
        while self._pending and self._pending[0][0] <= self.time:
            _, pose, lookahead = self._pending.pop(0)
            if self.servo_active:
                self._target = (pose[:3].copy(), rotation_exp(pose[3:6]), lookahead)
        vmax, wmax, amax, alphamax = self.limits
        if self._stop is not None and self._stop[0] <= self.time:
            self.servo_active, self._target = False, None
            self._pending.clear()
            decel = self._stop[1]
            self.lin_vel += _cap(-self.lin_vel, decel * dt)
            self.ang_vel += _cap(-self.ang_vel, decel * (alphamax / amax) * dt)
            if not (self.lin_vel.any() or self.ang_vel.any()):
                self._stop = None
            self.position = self.position + self.lin_vel * dt
            self.rotation = rotation_exp(self.ang_vel * dt) @ self.rotation
            return
        if self.servo_active and self._target is not None:
            p_t, R_t, lookahead = self._target
            v_des = _cap(( p_t - self.position) / lookahead, vmax)
            w_des = _cap(rotation_log(R_t @ self.rotation.T) / lookahead, wmax)
        else:
            v_des, w_des = np.zeros(3), np.zeros(3)
        self.lin_vel += _cap(v_des - self.lin_vel, amax * dt)
        self.ang_vel += _cap(w_des - self.ang_vel, alphamax * dt)
        self.position = self.position + self.lin_vel * dt
        self.rotation = rotation_exp(self.ang_vel * dt) @ self.rotation

    def pose(self) -> list[float]:
        return [*self.position.tolist(), *rotation_log(self.rotation).tolist()]

    def commands_accepted(self) -> bool:
        return self.connected and self.program_running and self.safety_mode == SAFETY_NORMAL and not self.emergency_stopped

    def trigger_protective_stop(self) -> None:
        self.advance()
        self.safety_mode = SAFETY_PROTECTIVE_STOP
        self.protective_stop_time = self.time
        self.program_running = False
        self.servo_active = False
        self._pending.clear()
        self.lin_vel[:] = 0.0  # stop category 2 brake, treated as instantaneous here
        self.ang_vel[:] = 0.0

    def unlock_protective_stop(self) -> bool:
        """Dashboard ``unlockProtectiveStop``: refused within 5 s of the stop."""
        self.advance()
        if self.safety_mode != SAFETY_PROTECTIVE_STOP:
            return True
        if self.time - self.protective_stop_time < PROTECTIVE_STOP_UNLOCK_DELAY_S:
            return False
        self.safety_mode = SAFETY_NORMAL
        return True

    def input_received(self) -> None:
        self.last_input = self.time


def _cap(v: np.ndarray, limit: float) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v if n <= limit else v * (limit / n)


class FakeRTDEControl:
    """Subset of rtde_control.RTDEControlInterface with the same names and signatures."""

    def __init__(self, robot: FakeURController):
        self._r = robot

    def servoL(self, pose, speed, acceleration, time, lookahead_time, gain) -> bool:  # noqa: N802
        r = self._r
        r.advance()
        if not r.commands_accepted():
            return False
        r.input_received()
        r.servo_calls += 1
        pose = np.asarray(pose, dtype=float)
        if pose.shape != (6,) or not np.all(np.isfinite(pose)):
            r.trigger_protective_stop()  # the controller faults on an invalid target
            return False
        r.servo_active = True
        r._stop = None
        r._pending.append((r.time + r.latency_s, pose, float(min(0.2, max(0.03, lookahead_time)))))
        return True

    def servoStop(self, a: float = 10.0) -> bool:  # noqa: N802
        r = self._r
        r.advance()
        if not r.commands_accepted():
            return False
        r.input_received()
        r._stop = (r.time + r.latency_s, float(a))  # servoing continues until the stop arrives
        return True

    def stopScript(self) -> None:  # noqa: N802
        self._r.advance()
        self._r.program_running = False
        self._r.servo_active = False

    def reuploadScript(self) -> bool:  # noqa: N802
        r = self._r
        r.advance()
        if r.safety_mode != SAFETY_NORMAL or r.emergency_stopped:
            return False
        r.program_running = True
        r.input_received()
        return True

    def setWatchdog(self, min_frequency: float = 10.0) -> bool:  # noqa: N802
        r = self._r
        r.advance()
        if not r.commands_accepted() or min_frequency <= 0:
            return False
        r.watchdog_period = 1.0 / min_frequency
        r.input_received()
        return True

    def kickWatchdog(self) -> bool:  # noqa: N802
        r = self._r
        r.advance()
        if not r.commands_accepted():
            return False
        r.input_received()
        return True

    def triggerProtectiveStop(self) -> bool:  # noqa: N802
        self._r.trigger_protective_stop()
        return True

    def isProgramRunning(self) -> bool:  # noqa: N802
        self._r.advance()
        return self._r.program_running

    def isConnected(self) -> bool:  # noqa: N802
        return self._r.connected

    def disconnect(self) -> None:
        self._r.connected = False

    def initPeriod(self) -> datetime.timedelta:  # noqa: N802
        return datetime.timedelta(seconds=self._r.clock())

    def waitPeriod(self, t_cycle_start: datetime.timedelta) -> None:  # noqa: N802
        # Real ur_rtde sleeps/spins until one control period after t_cycle_start.
        pass


class FakeRTDEReceive:
    """Subset of rtde_receive.RTDEReceiveInterface with the same names and signatures."""

    def __init__(self, robot: FakeURController):
        self._r = robot

    def getActualTCPPose(self) -> list[float]:  # noqa: N802
        self._r.advance()
        return self._r.pose()

    def getActualTCPSpeed(self) -> list[float]:  # noqa: N802
        self._r.advance()
        return [*self._r.lin_vel.tolist(), *self._r.ang_vel.tolist()]

    def getRobotMode(self) -> int:  # noqa: N802
        return self._r.robot_mode

    def getSafetyMode(self) -> int:  # noqa: N802
        self._r.advance()
        return self._r.safety_mode

    def isProtectiveStopped(self) -> bool:  # noqa: N802
        self._r.advance()
        return self._r.safety_mode == SAFETY_PROTECTIVE_STOP

    def isEmergencyStopped(self) -> bool:  # noqa: N802
        return self._r.emergency_stopped

    def getRuntimeState(self) -> int:  # noqa: N802
        self._r.advance()
        return RUNTIME_PLAYING if self._r.program_running else RUNTIME_STOPPED

    def getTimestamp(self) -> float:  # noqa: N802
        self._r.advance()
        return self._r.time

    def isConnected(self) -> bool:  # noqa: N802
        return self._r.connected

    def disconnect(self) -> None:
        self._r.connected = False
