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
period; otherwise the adapter holds and reports why. Re-anchoring, the tracking-error guard and
the gripper re-sync are :class:`~octo_ros.control.adapter.AdapterBase`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from transforms3d.euler import euler2mat, mat2euler

from octo_ros.control.adapter import AdapterBase, integrate_delta
from octo_ros.control.chunking import ChunkExecutionConfig, StepKind, step_progress
from octo_ros.control.gripper import GripperConfig, GripperMapper
from octo_ros.control.kinematics import forward_kinematics, interpolate_pose, solve_ik
from octo_ros.control.safety import (
    ControlOutput,
    ControlStatus,
    SafetyConfig,
    WorkspaceBox,
    check_box,
    check_limit,
    tracking_error,
)
from octo_ros.control.teleop import DELTA_ACTION_NAMES
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS, ARMS

# Bridge's DEFAULT_ROTATION: orientation with rpy = 0 (gripper x-axis pointing down).
DEFAULT_ROTATION = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
# Bridge/Octo reset pose: xyz (m), rpy (rad) relative to DEFAULT_ROTATION.
BRIDGE_START_STATE = (0.3, 0.0, 0.15, 0.0, 0.0, 0.0)


INTERBOTIX_MAX_PWM = 885.0  # Dynamixel XM430 PWM limit (xs_sdk gripper pwm range)


def interbotix_pwm(effort: float = 250.0) -> GripperConfig:
    check_limit("gripper_pwm", effort, "PWM", INTERBOTIX_MAX_PWM)
    return GripperConfig(robot_label="Interbotix gripper PWM", robot_unit="PWM", robot_open=effort, robot_closed=-effort)


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
    # xs_sdk's namespace (xsarm_control.launch.py robot_name): it publishes <robot_name>/joint_states and
    # takes <robot_name>/commands/joint_group, .../joint_single, relative to the namespace it is launched in
    robot_name: str = "wx250s"
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
        self.control_period_s = check_limit("control_period", self.control_period_s, "s", self.execution.step_period_s)
        check_box("workspace_low", "workspace_high", self.workspace_low, self.workspace_high)
        self.max_step_translation_m = check_limit("max_step_translation", self.max_step_translation_m, "m per step", 0.25)
        self.max_step_rotation_rad = check_limit("max_step_rotation", self.max_step_rotation_rad, "rad per step", math.pi / 2)
        check_limit("gripper_pwm", abs(self.gripper.robot_open), "PWM", INTERBOTIX_MAX_PWM)


class WidowXAdapter(AdapterBase):
    """Chunks in, joint-group commands out; call ``step(now)`` every control period."""

    ACTION_DIM = 7

    def __init__(self, config: WidowXConfig):
        self.config = config
        self.arm = ARMS[config.arm]
        self.box = WorkspaceBox(config.workspace_low, config.workspace_high)
        self._init_core(config.safety, config.execution, DELTA_ACTION_NAMES)
        self.gripper = GripperMapper(config.gripper)
        self._tracking_tolerance = self.arm.limits.max_step(config.safety.tracking_tolerance_s)
        self._measured_q: np.ndarray | None = None
        self._measured_open: bool | None = None
        self._commanded_q: np.ndarray | None = None
        self._commanded_pose: np.ndarray | None = None
        self._target_pose: np.ndarray | None = None  # last step target; deltas integrate on it

    # inputs --------------------------------------------------------------------------
    def update_joint_state(self, arm_q, stamp: float, gripper_open: bool | None = None, *,
                           now: float | None = None) -> bool:
        """Measured arm joints (rad, xs_sdk order) stamped ``stamp`` and received at ``now`` (the
        clock ``step`` gets), and optionally whether the gripper is open. False (reason in
        ``last_state_error``) for a non-finite or misshapen state or one stamped in the future.

        The gripper state is used when re-anchoring (start-up, arming, e-stop reset, after an
        outage): the gripper mapping restarts from it, and the current gripper command is sent with
        the next armed target either way."""
        def store(q: np.ndarray) -> None:
            self._measured_q = q
            if gripper_open is not None:
                self._measured_open = bool(gripper_open)

        return self._accept_measured(arm_q, (6,), "joint state", stamp, now, store)

    # description ---------------------------------------------------------------------
    def describe(self) -> list[str]:
        c = self.config
        return self._describe_end_effector(
            f"WidowX {c.arm}: policy step {c.execution.step_period_s:g} s, control period {c.control_period_s:g} s",
            f"per-step clamp ±{c.max_step_translation_m:g} m, ±{c.max_step_rotation_rad:g} rad")

    @property
    def commanded_pose(self) -> np.ndarray | None:
        return None if self._commanded_pose is None else self._commanded_pose.copy()

    # tick ------------------------------------------------------------------------------
    def step(self, now: float) -> ControlOutput:
        gate, decision, early = self._begin_end_effector_tick(now, "arm is outside the workspace box; move it to the start pose first")
        if early is not None:
            return early
        notes: list[str] = []
        gripper_changed = None
        if decision.kind is StepKind.NEW_STEP:
            c = self.config
            target, notes = integrate_delta(self._target_pose, decision.action, self.box,
                                            c.max_step_translation_m, c.max_step_rotation_rad)
            gripper_changed = self.gripper.update(float(decision.action[6])).changed
            self._target_pose = target
            self._segment = (self._commanded_pose.copy(), target, decision.step_start)
        elif self._segment is None:
            return self._hold(ControlStatus.HOLD, "step interrupted")
        start_pose, end_pose, start = self._segment
        progress = step_progress(now, start, self.config.execution.step_period_s, self.config.control_period_s)
        pose = interpolate_pose(start_pose, end_pose, progress)
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
        # within the limits as sent (float32): IK accepts a hair beyond them
        self._commanded_q, _ = self.arm.limits.clip_position(ik.q)
        self._commanded_pose = pose
        return self._move(gate, self._commanded_q.copy(), notes, bool(gripper_changed))

    # AdapterBase hooks -------------------------------------------------------------------
    @property
    def _anchored(self) -> bool:
        return self._commanded_q is not None

    def _set_commanded_to_measured(self) -> None:
        if self._measured_q is None:
            self._commanded_q = self._commanded_pose = self._target_pose = None
            return
        self._commanded_q = self._measured_q.copy()
        self._commanded_pose = forward_kinematics(self.arm, self._commanded_q)
        self._target_pose = self._commanded_pose.copy()
        if self._measured_open is not None:
            self.gripper.reset(self._measured_open)

    def _tracking_error(self) -> str:
        return tracking_error(self._measured_q, self._commanded_q, self._tracking_tolerance, ARM_JOINTS)

    def _output_target(self) -> np.ndarray:
        return self._commanded_q.copy()

    def _gripper_command(self) -> float | None:
        return self.gripper.command

    def _target_position(self) -> np.ndarray:
        return self._target_pose[:3, 3]

    def _on_hold(self) -> None:
        self._target_pose = self._commanded_pose.copy()  # the next step integrates on what was commanded
