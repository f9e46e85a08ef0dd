"""WidowX (Interbotix wx250s) adapter core: Bridge/Octo 7-D delta actions → joint commands.

Conventions (rail-berkeley/bridge_data_robot, octo ``examples/04_eval_finetuned_on_robot.py``):

* action = [dx, dy, dz, droll, dpitch, dyaw, gripper] in ``wx250s/base_link`` (x forward,
  y left, z up), each step clipped to ±0.05 m / ±0.25 rad;
* the delta is applied to the last *commanded* target, not the measured pose: translation in
  the world frame, rotation ``Rz·Ry·Rx`` (static xyz Euler) about the gripper position with
  world-aligned axes (``R_new = R_delta · R``);
* the integrated position is clipped to the workspace box (Octo WidowX evaluation bounds);
* orientation state is expressed relative to DEFAULT_ROTATION (rpy = 0 → gripper pointing down);
* 5 Hz policy steps; the controller may tick faster and interpolates between step targets.

Each command is solved with the PoE IK (seeded from the measured joints, then the last command),
must respect the URDF joint position limits and the joint velocity limits over one control
period; otherwise the adapter holds and reports why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from transforms3d.euler import euler2mat, mat2euler

from octo_ros.control.adapter import AdapterBase
from octo_ros.control.chunking import ChunkExecutionConfig, ChunkExecutor, StepKind, step_progress
from octo_ros.control.gripper import GripperConfig, GripperMapper, interbotix_pwm
from octo_ros.control.kinematics import ARMS, forward_kinematics, rotation_exp, rotation_log, solve_ik
from octo_ros.control.safety import (
    ControlOutput,
    ControlStatus,
    SafetyConfig,
    SafetySupervisor,
    WorkspaceBox,
    all_finite,
    clamp_components,
)

# Bridge's DEFAULT_ROTATION: orientation with rpy = 0 (gripper x-axis pointing down).
DEFAULT_ROTATION = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
# Bridge/Octo reset pose: xyz (m), rpy (rad) relative to DEFAULT_ROTATION.
BRIDGE_START_STATE = (0.3, 0.0, 0.15, 0.0, 0.0, 0.0)


def pose_from_bridge_state(state) -> np.ndarray:
    """4×4 pose from Bridge's [x, y, z, roll, pitch, yaw] (orientation relative to gripper-down)."""
    T = np.eye(4)
    T[:3, :3] = euler2mat(*state[3:6], axes="sxyz") @ DEFAULT_ROTATION
    T[:3, 3] = state[:3]
    return T


def bridge_state_from_pose(T: np.ndarray) -> np.ndarray:
    rpy = mat2euler(T[:3, :3] @ DEFAULT_ROTATION.T, axes="sxyz")
    return np.concatenate([T[:3, 3], rpy])


@dataclass
class WidowXConfig:
    arm: str = "wx250s"
    execution: ChunkExecutionConfig = field(default_factory=ChunkExecutionConfig)  # 5 Hz, ensemble 4
    control_period_s: float = 0.2  # Bridge STEP_DURATION; smaller values interpolate between steps
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    gripper: GripperConfig = field(default_factory=interbotix_pwm)
    workspace_low: tuple[float, float, float] = (0.1, -0.15, -0.01)  # Octo WidowX eval WORKSPACE_BOUNDS
    workspace_high: tuple[float, float, float] = (0.45, 0.25, 0.25)
    max_step_translation_m: float = 0.05  # Bridge action space, per 0.2 s step
    max_step_rotation_rad: float = 0.25

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ValueError(f"unknown arm {self.arm!r}; known: {sorted(ARMS)}")
        if not 0 < self.control_period_s <= self.execution.step_period_s:
            raise ValueError("control_period_s must be positive and at most the policy step period")


class WidowXAdapter(AdapterBase):
    """Chunks in, joint-group commands out; call ``step(now)`` every control period."""

    ACTION_DIM = 7

    def __init__(self, config: WidowXConfig):
        self.config = config
        self.arm = ARMS[config.arm]
        self.box = WorkspaceBox(config.workspace_low, config.workspace_high)
        self.supervisor = SafetySupervisor(config.safety)
        self.executor = ChunkExecutor(config.execution, self.ACTION_DIM)
        self.gripper = GripperMapper(config.gripper)
        self._measured_q: np.ndarray | None = None
        self._measured_open: bool | None = None
        self._commanded_q: np.ndarray | None = None
        self._commanded_pose: np.ndarray | None = None
        self._target_pose: np.ndarray | None = None  # last step target; deltas integrate on it
        self._segment: tuple[np.ndarray, np.ndarray, float] | None = None

    # inputs --------------------------------------------------------------------------
    def update_joint_state(self, arm_q, stamp: float, gripper_open: bool | None = None) -> bool:
        """Measured arm joints (rad, xs_sdk order) and optionally whether the gripper is open."""
        q = np.asarray(arm_q, dtype=float)
        if q.shape != (6,) or not all_finite(q) or not np.isfinite(stamp):
            return False
        self._measured_q = q
        if gripper_open is not None:
            self._measured_open = bool(gripper_open)
        self.supervisor.watchdog.feed("state", stamp)
        if self._commanded_q is None:
            self._anchor_to_measured(keep_chunks=True)
        return True

    # description ---------------------------------------------------------------------
    def describe(self) -> list[str]:
        c = self.config
        return [
            f"WidowX {c.arm}: policy step {c.execution.step_period_s:g} s, control period {c.control_period_s:g} s, "
            f"{c.execution.mode.value}, dry-run {'ON' if self.supervisor.dry_run else 'OFF'}",
            f"workspace box low {tuple(c.workspace_low)} high {tuple(c.workspace_high)} m; per-step clamp "
            f"±{c.max_step_translation_m:g} m, ±{c.max_step_rotation_rad:g} rad",
            "gripper: " + self.gripper.describe(),
        ]

    def start_pose_joints(self) -> np.ndarray | None:
        """Joints for Bridge's start pose (0.3, 0, 0.15, gripper down), seeded from the measured joints;
        the node moves there slowly (e.g. an xs_sdk time profile) before running the policy."""
        ik = solve_ik(self.arm, pose_from_bridge_state(BRIDGE_START_STATE), seeds=(self._measured_q,))
        return ik.q if ik.success else None

    @property
    def commanded_pose(self) -> np.ndarray | None:
        return None if self._commanded_pose is None else self._commanded_pose.copy()

    # tick ------------------------------------------------------------------------------
    def step(self, now: float) -> ControlOutput:
        gate = self.supervisor.gate(now)
        if self._commanded_q is None:
            return ControlOutput(ControlStatus.HOLD, gate.reason or "no joint state yet", np.zeros(0), False)
        if not gate.may_move:
            return self._hold(gate.status, gate.reason)
        if not self.box.contains(self._target_pose[:3, 3]):
            return self._hold(ControlStatus.HOLD, "arm is outside the workspace box; move it to the start pose first")
        decision = self.executor.tick(now)
        if decision.kind is StepKind.HOLD:
            return self._hold(ControlStatus.HOLD, decision.reason)
        notes: list[str] = []
        gripper_changed = False
        if decision.kind is StepKind.NEW_STEP:
            target, notes = self._integrate(decision.action)
            gripper_changed = self.gripper.update(float(decision.action[6])).changed
            self._target_pose = target
            self._segment = (self._commanded_pose.copy(), target, decision.step_start)
        elif self._segment is None:
            return self._hold(ControlStatus.HOLD, "step interrupted")
        start_pose, end_pose, start = self._segment
        progress = step_progress(now, start, self.config.execution.step_period_s, self.config.control_period_s)
        pose = _interpolate_pose(start_pose, end_pose, progress)
        ik = solve_ik(self.arm, pose, seeds=(self._measured_q, self._commanded_q))
        if not ik.success:
            return self._hold(ControlStatus.HOLD, f"IK failed: {ik.reason}", gripper_changed)
        if not self.arm.limits.within_velocity(self._commanded_q, ik.q, self.config.control_period_s):
            step = np.max(np.abs(ik.q - self._commanded_q))
            return self._hold(
                ControlStatus.HOLD,
                f"joint velocity limit: {step:.3f} rad in {self.config.control_period_s:g} s",
                gripper_changed,
            )
        self._commanded_q = ik.q
        self._commanded_pose = pose
        return ControlOutput(
            ControlStatus.MOVE,
            "",
            ik.q.copy(),
            gate.may_send,
            self.gripper.command,
            gripper_changed and gate.may_send,
            tuple(notes),
        )

    # internals -------------------------------------------------------------------------
    def _integrate(self, action: np.ndarray) -> tuple[np.ndarray, list[str]]:
        c = self.config
        notes = []
        dxyz, clipped_t = clamp_components(action[:3], c.max_step_translation_m)
        drpy, clipped_r = clamp_components(action[3:6], c.max_step_rotation_rad)
        if clipped_t or clipped_r:
            notes.append("per-step delta clamped")
        base = self._target_pose
        target = np.eye(4)
        target[:3, :3] = euler2mat(*drpy, axes="sxyz") @ base[:3, :3]
        target[:3, 3], clipped_box = self.box.clip(base[:3, 3] + dxyz)
        if clipped_box:
            notes.append("target clipped to workspace box")
        return target, notes

    def _hold(self, status: ControlStatus, reason: str, gripper_changed: bool = False) -> ControlOutput:
        self.executor.interrupt()
        self._segment = None
        self._target_pose = self._commanded_pose.copy()
        send_gripper = gripper_changed and status is ControlStatus.HOLD and not self.supervisor.dry_run
        return ControlOutput(status, reason, self._commanded_q.copy(), False, self.gripper.command, send_gripper)

    def _anchor_to_measured(self, keep_chunks: bool = False) -> None:
        """Make the measured joints the commanded state (start-up, e-stop reset, arming)."""
        if keep_chunks:
            self.executor.interrupt()
        else:
            self.executor.clear()
        self._segment = None
        if self._measured_q is None:
            self._commanded_q = self._commanded_pose = self._target_pose = None
            return
        self._commanded_q = self._measured_q.copy()
        self._commanded_pose = forward_kinematics(self.arm, self._commanded_q)
        self._target_pose = self._commanded_pose.copy()
        if self._measured_open is not None:
            self.gripper.reset(self._measured_open)


def _interpolate_pose(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    if fraction >= 1.0:
        return end.copy()
    T = np.eye(4)
    T[:3, 3] = start[:3, 3] + fraction * (end[:3, 3] - start[:3, 3])
    T[:3, :3] = start[:3, :3] @ rotation_exp(fraction * rotation_log(start[:3, :3].T @ end[:3, :3]))
    return T
