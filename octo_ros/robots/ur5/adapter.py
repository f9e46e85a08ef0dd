"""UR5 adapter core and the ur_rtde servoL backend.

Actions follow Octo's Berkeley UR5 convention (``berkeley_autolab_ur5``): 7-D
[dx, dy, dz, droll, dpitch, dyaw, gripper (1 = open)] at 5 Hz. Like the WidowX adapter, deltas
are integrated on the last commanded target (translation in the base frame, rotation ``Rz·Ry·Rx``
about the TCP with base-aligned axes) — the dataset does not document its rotation frame, so
this is the Bridge convention [unverified for UR5]. UR poses are [x, y, z, rx, ry, rz] with a
rotation vector; composition goes through rotation matrices (transforms3d).

``URRTDEBackend`` streams servoL at the controller rate (125 Hz CB-series, 500 Hz e-Series),
interpolating between policy steps under linear/angular speed caps (diffusion_policy's
rtde_interpolation_controller: 0.25 m/s, 0.16 rad/s, lookahead 0.1 s, gain 300), kicks the RTDE
watchdog every cycle, checks robot mode / safety mode / program state before arming, and ends
with servoStop + stopScript. The ur_rtde objects are created only in
:func:`create_rtde_interfaces`, so tests inject :mod:`octo_ros.robots.ur5.controller_standin` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from transforms3d.axangles import axangle2mat, mat2axangle

from octo_ros.control.adapter import AdapterBase, integrate_delta
from octo_ros.control.chunking import ChunkExecutionConfig, StepKind, step_progress
from octo_ros.control.gripper import GripperConfig, GripperMapper
from octo_ros.control.kinematics import interpolate_pose, rotation_exp, rotation_log
from octo_ros.control.safety import (
    ControlOutput,
    ControlStatus,
    LimitError,
    SafetyConfig,
    WorkspaceBox,
    check_box,
    check_limit,
    tracking_error,
)
from octo_ros.control.teleop import DELTA_ACTION_NAMES
from octo_ros.robots.ur5.robotiq import robotiq_socket

ROBOT_MODE_RUNNING = 7
SAFETY_MODE_NORMAL, SAFETY_MODE_REDUCED = 1, 2


def pose_to_matrix(pose) -> np.ndarray:
    """[x, y, z, rx, ry, rz] (rotation vector) → 4×4."""
    pose = np.asarray(pose, dtype=float)
    T = np.eye(4)
    angle = float(np.linalg.norm(pose[3:6]))
    T[:3, :3] = np.eye(3) if angle < 1e-12 else axangle2mat(pose[3:6] / angle, angle)
    T[:3, 3] = pose[:3]
    return T


def matrix_to_pose(T: np.ndarray) -> np.ndarray:
    axis, angle = mat2axangle(T[:3, :3], unit_thresh=1e-5)
    return np.concatenate([T[:3, 3], np.asarray(axis) * angle])


# A conservative box in front of a UR5 base (base frame, m): 0.25–0.60 m out along +x, ±0.30 m
# sideways, 0.05–0.45 m up, for previewing in dry-run. URConfig has no default on purpose: measure
# your cell and set it (the adapter node refuses to arm while it is not given).
PREVIEW_WORKSPACE = ((0.25, -0.30, 0.05), (0.60, 0.30, 0.45))


@dataclass
class URConfig:
    # The workspace depends on the cell; there is no safe universal default, so it is required.
    workspace_low: tuple[float, float, float]
    workspace_high: tuple[float, float, float]
    control_frequency_hz: float = 125.0  # UR5 CB-series RTDE rate (e-Series: 500)
    execution: ChunkExecutionConfig = field(default_factory=ChunkExecutionConfig)  # 5 Hz, ensemble 4
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    gripper: GripperConfig = field(default_factory=robotiq_socket)
    max_step_translation_m: float = 0.05  # per 0.2 s policy step, as for Bridge
    max_step_rotation_rad: float = 0.25
    max_linear_speed_m_s: float = 0.25  # diffusion_policy rtde_interpolation_controller
    max_angular_speed_rad_s: float = 0.16
    servo_lookahead_s: float = 0.1  # ur_rtde range 0.03–0.2
    servo_gain: float = 300.0  # ur_rtde range 100–2000
    rtde_watchdog_min_hz: float = 10.0  # ur_rtde setWatchdog default
    # m/s² for servoStop on e-stop and shutdown (ur_rtde's default is 10): from the 0.25 m/s cap to
    # rest in 10 ms, within two 125 Hz control periods with the controller's latency
    servo_stop_deceleration: float = 25.0

    def __post_init__(self):
        check_box("workspace_low", "workspace_high", self.workspace_low, self.workspace_high)
        self.control_frequency_hz = check_limit("control_frequency", self.control_frequency_hz, "Hz", 1000.0)
        if 1.0 / self.control_frequency_hz > self.execution.step_period_s:
            raise LimitError(f"control_frequency = {self.control_frequency_hz:g} Hz: must be at least the policy "
                             f"rate (step_period {self.execution.step_period_s:g} s)")
        self.max_step_translation_m = check_limit("max_step_translation", self.max_step_translation_m, "m per step", 0.25)
        self.max_step_rotation_rad = check_limit("max_step_rotation", self.max_step_rotation_rad, "rad per step", math.pi / 2)
        self.max_linear_speed_m_s = check_limit("max_linear_speed", self.max_linear_speed_m_s, "m/s", 2.0)
        self.max_angular_speed_rad_s = check_limit("max_angular_speed", self.max_angular_speed_rad_s, "rad/s", 2 * math.pi)
        self.servo_lookahead_s = check_limit("servo_lookahead", self.servo_lookahead_s, "s", 0.2, low=0.03,
                                             low_inclusive=True)  # ur_rtde's range
        self.servo_gain = check_limit("servo_gain", self.servo_gain, "(ur_rtde gain)", 2000.0, low=100.0, low_inclusive=True)
        self.rtde_watchdog_min_hz = check_limit("rtde_watchdog_min_frequency", self.rtde_watchdog_min_hz, "Hz",
                                                self.control_frequency_hz)
        self.servo_stop_deceleration = check_limit("servo_stop_deceleration", self.servo_stop_deceleration, "m/s²", 100.0)

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_frequency_hz


class URAdapter(AdapterBase):
    """Chunks in, servoL TCP poses out; ``step(now)`` every control period (pure, no I/O)."""

    ACTION_DIM = 7

    NO_STATE_REASON = "no TCP pose yet"

    def __init__(self, config: URConfig):
        self.config = config
        self.box = WorkspaceBox(config.workspace_low, config.workspace_high)
        self._init_core(config.safety, config.execution, DELTA_ACTION_NAMES)
        self.gripper = GripperMapper(config.gripper)
        tol_s = config.safety.tracking_tolerance_s
        self._tracking_tolerance = np.array([config.max_linear_speed_m_s, config.max_angular_speed_rad_s]) * tol_s
        self._measured: np.ndarray | None = None
        self._commanded: np.ndarray | None = None  # 4×4
        self._target: np.ndarray | None = None  # last step target; deltas integrate on it
        self._commanded_at: float | None = None  # when the commanded pose was computed (None: re-anchored)

    def update_tcp_pose(self, pose, stamp: float, *, now: float | None = None) -> bool:
        """Measured TCP pose [x, y, z, rx, ry, rz] stamped ``stamp``, received at ``now`` (the clock
        ``step`` gets). False (reason in ``last_state_error``) for a non-finite or misshapen pose
        or one stamped in the future."""
        def store(pose: np.ndarray) -> None:
            self._measured = pose_to_matrix(pose)

        return self._accept_measured(pose, (6,), "TCP pose", stamp, now, store)

    def describe(self) -> list[str]:
        c = self.config
        return self._describe_end_effector(
            f"UR: servoL at {c.control_frequency_hz:g} Hz, policy step {c.execution.step_period_s:g} s",
            f"speed caps {c.max_linear_speed_m_s:g} m/s, {c.max_angular_speed_rad_s:g} rad/s")

    def step(self, now: float) -> ControlOutput:
        gate, decision, early = self._begin_end_effector_tick(now, "TCP is outside the workspace box; move it inside first")
        if early is not None:
            return early
        notes = []
        gripper_changed = False
        if decision.kind is StepKind.NEW_STEP:
            c = self.config
            target, notes = integrate_delta(self._target, decision.action, self.box,
                                            c.max_step_translation_m, c.max_step_rotation_rad)
            self._target = target
            self._segment = (self._commanded.copy(), target, decision.step_start)
            gripper_changed = self.gripper.update(float(decision.action[6])).changed
        elif self._segment is None:
            return self._hold(ControlStatus.HOLD, "step interrupted")
        start_T, end_T, start = self._segment
        period = self.config.control_period_s
        progress = step_progress(now, start, self.config.execution.step_period_s, period)
        # Desired point on the segment, then move there no faster than the speed caps allow over the
        # time since the last command (a late tick followed by catch-up ticks must not move faster),
        # and never more than one period's worth (the controller interpolates over one period).
        dt = period if self._commanded_at is None else min(max(now - self._commanded_at, 0.0), period)
        desired = interpolate_pose(start_T, end_T, progress)
        dp_desired = desired[:3, 3] - self._commanded[:3, 3]
        dr_desired = rotation_log(desired[:3, :3] @ self._commanded[:3, :3].T)
        dp = _cap_norm(dp_desired, self.config.max_linear_speed_m_s * dt)
        dr = _cap_norm(dr_desired, self.config.max_angular_speed_rad_s * dt)
        if dp is not dp_desired or dr is not dr_desired:
            notes.append("speed capped")
        command = np.eye(4)
        # Both ends are inside the box (a commanded pose outside it holds above), so this never jumps.
        command[:3, 3], _ = self.box.clip(self._commanded[:3, 3] + dp)
        command[:3, :3] = rotation_exp(dr) @ self._commanded[:3, :3]
        self._commanded = command
        self._commanded_at = now
        return self._move(gate, matrix_to_pose(command), notes, gripper_changed)

    @property
    def commanded_pose(self) -> np.ndarray | None:
        return None if self._commanded is None else matrix_to_pose(self._commanded)

    # AdapterBase hooks -------------------------------------------------------------------
    @property
    def _anchored(self) -> bool:
        return self._commanded is not None

    def _set_commanded_to_measured(self) -> None:
        if self._measured is None:
            self._commanded = self._target = None
            return
        self._commanded = self._measured.copy()
        self._target = self._measured.copy()
        self._commanded_at = None

    def _tracking_error(self) -> str:
        position = float(np.linalg.norm(self._measured[:3, 3] - self._commanded[:3, 3]))
        rotation = float(np.linalg.norm(rotation_log(self._measured[:3, :3] @ self._commanded[:3, :3].T)))
        return tracking_error([position, rotation], [0.0, 0.0], self._tracking_tolerance,
                              ("TCP position (m)", "TCP orientation (rad)"))

    def _output_target(self) -> np.ndarray:
        return matrix_to_pose(self._commanded)

    def _gripper_command(self) -> float | None:
        return self.gripper.command

    def _target_position(self) -> np.ndarray:
        return self._target[:3, 3]

    def _on_hold(self) -> None:
        self._target = self._commanded.copy()


def _cap_norm(v: np.ndarray, limit: float) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v if n <= limit else v * (limit / n)


def create_rtde_interfaces(host: str, frequency_hz: float):
    """The only place the real ur_rtde objects are built: (RTDEControlInterface, RTDEReceiveInterface)."""
    try:
        import rtde_control
        import rtde_receive
    except ImportError as exc:  # native extension missing or built for another Python
        raise RuntimeError(
            f"ur_rtde is not importable ({exc}); install it with `pip install ur-rtde==1.6.5` "
            "or run against octo_ros.robots.ur5.controller_standin"
        ) from exc
    receive = rtde_receive.RTDEReceiveInterface(host, frequency_hz)
    control = rtde_control.RTDEControlInterface(host, frequency_hz)
    return control, receive


def rtde_connection(backend: str, robot_ip: str, standin_initial_pose) -> tuple[str, Callable]:
    """(host, connect) for :class:`URRTDEBackend`: ``rtde`` = ur_rtde to ``robot_ip`` (the real robot),
    ``fake`` = the in-process controller stand-in (simulation and tests). ValueError for anything else."""
    if backend == "rtde":
        if not robot_ip:
            raise ValueError("parameter 'robot_ip' is required with backend 'rtde' (or use backend:=fake)")
        return robot_ip, create_rtde_interfaces
    if backend == "fake":
        from octo_ros.robots.ur5.controller_standin import FakeURController  # the real robot never loads the stand-in
        return robot_ip or "fake", FakeURController(initial_pose=tuple(standin_initial_pose)).connect
    raise ValueError(f"backend must be 'rtde' or 'fake', got {backend!r}")


@dataclass(frozen=True)
class URCycle:
    output: ControlOutput
    servo_sent: bool  # servoL was called this cycle


class URRTDEBackend:
    """Drives a UR arm through ur_rtde-compatible control/receive objects."""

    def __init__(self, config: URConfig, host: str, connect=create_rtde_interfaces):
        self.config = config
        self.adapter = URAdapter(config)
        self.control, self.receive = connect(host, config.control_frequency_hz)
        self._watchdog_armed = False
        self._servoing = False

    def measured(self) -> tuple[list[float] | None, list[float] | None] | None:
        """(TCP pose [x, y, z, rx, ry, rz], six joint positions), each None when not reported
        (the controller stand-in models the TCP only); None while the receive interface is down."""
        if not self.receive.isConnected():
            return None
        pose = list(self.receive.getActualTCPPose())
        get_q = getattr(self.receive, "getActualQ", None)
        q = list(get_q()) if get_q is not None else []
        return (pose if len(pose) == 6 and np.all(np.isfinite(pose)) else None,
                [float(v) for v in q] if len(q) == 6 else None)

    def preflight(self) -> str:
        """Why the robot may not be armed now ('' when it may)."""
        r = self.receive
        if not (r.isConnected() and self.control.isConnected()):
            return "RTDE not connected"
        if r.getRobotMode() != ROBOT_MODE_RUNNING:
            return f"robot mode {r.getRobotMode()} is not RUNNING (7)"
        if r.isProtectiveStopped():
            return "robot is protective-stopped"
        if r.isEmergencyStopped():
            return "robot is emergency-stopped"
        if r.getSafetyMode() not in (SAFETY_MODE_NORMAL, SAFETY_MODE_REDUCED):
            return f"safety mode {r.getSafetyMode()} is not NORMAL/REDUCED"
        if not self.control.isProgramRunning():
            return "ur_rtde control script is not running"
        return ""

    def arm(self, now: float) -> str:
        """Leave dry-run after the pre-flight checks; returns '' on success or the reason it refused."""
        reason = self.preflight()
        if reason:
            return reason
        if not self._watchdog_armed:
            if not self.control.setWatchdog(self.config.rtde_watchdog_min_hz):
                return "setWatchdog failed"
            self._watchdog_armed = True
        if not self._read_state(now):
            return "could not read a finite TCP pose"
        self.adapter.set_dry_run(False)
        return ""

    def disarm(self) -> None:
        self.adapter.set_dry_run(True)
        self._stop_servo()

    def set_dry_run(self, dry_run: bool, now: float) -> str:
        """Disarm, or arm (:meth:`arm`); '' on success, else why it was refused."""
        if dry_run:
            self.disarm()
            return ""
        return self.arm(now)

    def reset_estop(self) -> str:
        """Reset the latched e-stop; '' on success. Refused while armed and the pre-flight checks fail."""
        if not self.adapter.supervisor.dry_run:
            reason = self.preflight()
            if reason:
                return f"robot not ready ({reason}); fix it or switch to dry-run first"
        self.adapter.reset_estop()
        return ""

    def cycle(self, now: float) -> URCycle:
        """One control period: read state, compute, and (only when armed) stream servoL."""
        if not self.receive.isConnected():
            self.adapter.estop("RTDE receive connection lost")
        else:
            self._read_state(now)
            if self.receive.isProtectiveStopped() or self.receive.isEmergencyStopped():
                self.adapter.estop("robot reports a protective/emergency stop")
        out = self.adapter.step(now)
        if self._watchdog_armed:
            self.control.kickWatchdog()
        if out.status is ControlStatus.ESTOP or self.adapter.supervisor.dry_run or out.target.size != 6:
            if out.status is ControlStatus.ESTOP:
                self._stop_servo()
            return URCycle(out, False)
        if self.adapter.tracking_fault:
            # The TCP is far from the held pose: streaming it would servo there at the servo gain.
            self._stop_servo()
            return URCycle(out, False)
        c = self.config
        # Armed: MOVE streams the new pose, HOLD streams the held pose (keeps servo mode still).
        ok = self.control.servoL(
            [float(v) for v in out.target], 0.0, 0.0, c.control_period_s, c.servo_lookahead_s, c.servo_gain
        )
        if not ok:
            self.adapter.estop("servoL refused by the controller (protective stop or script stopped)")
            self._stop_servo()
            return URCycle(self.adapter.step(now), False)
        self._servoing = True
        return URCycle(out, True)

    def stop_now(self) -> None:
        """E-stop: servoStop at once (the e-stop is latched in the core; the next cycle holds)."""
        self._stop_servo()

    def shutdown(self) -> None:
        self._stop_servo()
        self.control.stopScript()
        self.control.disconnect()
        self.receive.disconnect()

    def _read_state(self, now: float) -> bool:
        return self.adapter.update_tcp_pose(self.receive.getActualTCPPose(), now, now=now)

    def _stop_servo(self) -> None:
        if self._servoing:
            self.control.servoStop(self.config.servo_stop_deceleration)
            self._servoing = False
