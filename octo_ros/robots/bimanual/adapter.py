"""Bimanual ALOHA-style adapter core: 14-D absolute joint actions → two Interbotix followers.

Action layout (tonyzhaozh/aloha, Interbotix/aloha, Octo's ALOHA example):
``[left 6 joints (rad), left gripper (normalized, 1 = open, 0 = closed),
   right 6 joints, right gripper]``. The normalized gripper is unnormalized to the gripper
*joint* angle with per-arm open/close constants and sent as ``JointSingleCommand('gripper')``;
the arm joints go out as ``JointGroupCommand('arm')`` on ``/<namespace>/commands/...``.

Commands stream at 50 Hz (ALOHA DT = 0.02 s). When the policy step is longer than the control
period, targets are interpolated linearly. The desired point is clipped to the joint limits, then
the command moves from the previous one towards it no faster than the velocity limits allow, and
is clipped to the limits once more: every command satisfies every limit as sent (float32), even
one starting from a measured state outside them (a gripper squeezed past its close constant is
commanded at the constant; the followers' joints stop at their limits). Each arm's
gripper joint travels in the target with the arm, so every sent target re-syncs the grippers.
The tracking-error guard covers the arm joints only: a gripper closing on an object stays away
from its commanded angle by design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from octo_ros.control.adapter import AdapterBase
from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode, StepKind, step_progress
from octo_ros.control.gripper import GripperConfig, GripperMapper
from octo_ros.control.safety import (
    ControlOutput,
    ControlStatus,
    JointLimits,
    LimitError,
    SafetyConfig,
    all_finite,
    check_limit,
    tracking_error,
)
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS, ARMS

# Gripper joint constants (rad), follower / puppet arms.
ALOHA2_FOLLOWER_GRIPPER = (1.6214, 0.6197)  # Interbotix/aloha constants.py (open, close)
ALOHA_ORIGINAL_PUPPET_GRIPPER = (1.4910, -0.6213)  # tonyzhaozh/aloha constants.py (open, close)


def aloha_joint(open_rad: float, close_rad: float) -> GripperConfig:
    """ALOHA: the model's normalized gripper (1 = open) is unnormalized to the gripper joint angle."""
    return GripperConfig(
        binarize=False,
        robot_label="ALOHA gripper joint",
        robot_unit="rad",
        robot_open=open_rad,
        robot_closed=close_rad,
    )


@dataclass
class ArmSideConfig:
    namespace: str
    gripper_open_rad: float = ALOHA2_FOLLOWER_GRIPPER[0]
    gripper_close_rad: float = ALOHA2_FOLLOWER_GRIPPER[1]
    arm: str = "vx300s"
    gripper_velocity_limit: float = math.pi  # rad/s, URDF gripper joint velocity limit


#: The action layout (Octo's ALOHA example, ACT): per arm 6 joints then the gripper.
ACTION_NAMES = tuple(f"{side}_{joint}" for side in ("left", "right") for joint in (*ARM_JOINTS, "gripper"))


def _execution_default() -> ChunkExecutionConfig:
    # Octo's ALOHA example: 50-step chunks executed open loop (RHCWrapper(exec_horizon=50)) at 50 Hz.
    return ChunkExecutionConfig(step_period_s=0.02, mode=ExecutionMode.RECEDING_HORIZON, exec_horizon=50)


@dataclass
class BimanualConfig:
    left: ArmSideConfig = field(default_factory=lambda: ArmSideConfig("follower_left"))
    right: ArmSideConfig = field(default_factory=lambda: ArmSideConfig("follower_right"))
    execution: ChunkExecutionConfig = field(default_factory=_execution_default)
    control_period_s: float = 0.02  # 50 Hz streaming
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self):
        self.control_period_s = check_limit("control_period", self.control_period_s, "s", self.execution.step_period_s)
        for side, arm in (("left", self.left), ("right", self.right)):  # parameter names <side>_gripper_open, ...
            for what in ("open", "close"):
                value = getattr(arm, f"gripper_{what}_rad")
                if not (math.isfinite(value) and abs(value) <= math.pi):
                    raise LimitError(f"{side}_gripper_{what} = {value!r}: must be a finite gripper joint angle "
                                     "within ±π rad (is it given in degrees?)")
            if arm.gripper_open_rad == arm.gripper_close_rad:
                raise LimitError(f"{side}_gripper_open and {side}_gripper_close are both {arm.gripper_open_rad}: "
                                 "open and close must differ")
            arm.gripper_velocity_limit = check_limit("gripper_velocity_limit", arm.gripper_velocity_limit, "rad/s",
                                                     4 * math.pi)
            if arm.arm not in ARMS:
                raise LimitError(f"robot_model {arm.arm!r} is not a known arm; known: {sorted(ARMS)}")


@dataclass(frozen=True)
class ArmCommand:
    namespace: str
    arm: np.ndarray  # 6 joint positions (rad) for JointGroupCommand('arm')
    gripper: float  # gripper joint angle (rad) for JointSingleCommand('gripper')


class BimanualAdapter(AdapterBase):
    ACTION_DIM = 14
    SIDES = ("left", "right")

    def __init__(self, config: BimanualConfig):
        self.config = config
        self.sides = {"left": config.left, "right": config.right}
        self._init_core(config.safety, config.execution, ACTION_NAMES)
        self.grippers = {
            s: GripperMapper(aloha_joint(c.gripper_open_rad, c.gripper_close_rad)) for s, c in self.sides.items()
        }
        names, lower, upper, vel = [], [], [], []
        for side, c in self.sides.items():
            lim = ARMS[c.arm].limits
            names += [f"{side}_{j}" for j in (*lim.names, "gripper")]
            lower += [*lim.lower, min(c.gripper_open_rad, c.gripper_close_rad)]
            upper += [*lim.upper, max(c.gripper_open_rad, c.gripper_close_rad)]
            vel += [*lim.velocity, c.gripper_velocity_limit]
        self.limits = JointLimits(tuple(names), tuple(lower), tuple(upper), tuple(vel))  # 14 joints, action order
        self.lower, self.upper, self.velocity = np.array(lower), np.array(upper), np.array(vel)
        self._arm_joints = np.array([k for k in range(14) if k % 7 != 6])  # tracking-error guard: arms only
        self._tracking_tolerance = self.limits.max_step(config.safety.tracking_tolerance_s)[self._arm_joints]
        self._measured: dict[str, np.ndarray] = {}
        self._state_stamps: dict[str, float] = {}
        self._commanded: np.ndarray | None = None

    # inputs --------------------------------------------------------------------------
    def update_joint_state(self, side: str, arm_q, gripper_rad: float, stamp: float, *,
                           now: float | None = None) -> bool:
        """One follower's measured arm joints and gripper joint (rad) stamped ``stamp``, received at
        ``now`` (the clock ``step`` gets). The state counts as fresh only while both arms' are. False
        (reason in ``last_state_error``) for an unknown side, a non-finite or misshapen state, or one
        stamped in the future."""
        q = np.append(np.asarray(arm_q, dtype=float), float(gripper_rad))
        if side not in self.sides or q.shape != (7,) or not all_finite(q) or not np.isfinite(stamp):
            return self._reject_state(f"unknown side, non-finite or misshapen joint state ({side})")

        def store():
            self._measured[side] = q
            self._state_stamps[side] = stamp
            return min(self._state_stamps.values()) if len(self._state_stamps) == 2 else None

        return self._accept_state(stamp, now, store)

    # description ---------------------------------------------------------------------
    def describe(self) -> list[str]:
        c = self.config
        lines = [
            f"bimanual: policy step {c.execution.step_period_s:g} s, control period {c.control_period_s:g} s, "
            f"{c.execution.mode.value}, dry-run {'ON' if self.supervisor.dry_run else 'OFF'}"
        ]
        for side, cfg in self.sides.items():
            lines.append(f"{side} arm /{cfg.namespace} ({cfg.arm}) gripper: {self.grippers[side].describe()}")
        return lines

    def gripper_convention(self) -> str:
        return "; ".join(f"{side}: {gripper.describe()}" for side, gripper in self.grippers.items())

    def arm_commands(self, output: ControlOutput) -> tuple[ArmCommand, ArmCommand]:
        """Split a 14-D command into the per-namespace arm and gripper commands."""
        t = output.target
        return (
            ArmCommand(self.config.left.namespace, t[0:6].copy(), float(t[6])),
            ArmCommand(self.config.right.namespace, t[7:13].copy(), float(t[13])),
        )

    # tick ------------------------------------------------------------------------------
    def step(self, now: float) -> ControlOutput:
        gate, early = self._begin_tick(now)
        if early is not None:
            return early
        decision = self.executor.tick(now)
        if decision.kind is StepKind.HOLD:
            return self._hold(ControlStatus.HOLD, decision.reason)
        notes = []
        if decision.kind is StepKind.NEW_STEP:
            target, clipped = self._to_robot(decision.action)
            if clipped:
                notes.append("target clipped to joint limits")
            self._segment = (self._commanded.copy(), target, decision.step_start)
        elif self._segment is None:
            return self._hold(ControlStatus.HOLD, "step interrupted")
        start_q, end_q, start = self._segment
        progress = step_progress(now, start, self.config.execution.step_period_s, self.config.control_period_s)
        # Clip the desired point (the segment may start outside the limits), then rate-limit from the
        # command in force; clipping after the rate limit would jump back inside in one tick.
        desired, _ = self.limits.clip_position(start_q + progress * (end_q - start_q))
        command, limited = self.limits.rate_limit(self._commanded, desired, self.config.control_period_s)
        if limited:
            notes.append("rate-limited to joint velocity limits")
        command, outside = self.limits.clip_position(command)  # from a measured state beyond a limit
        if outside:
            notes.append("command clipped to joint limits")
        if not all_finite(command):  # unreachable with finite chunks; kept as the last line of defence
            return self._hold(ControlStatus.HOLD, "non-finite command rejected")
        self._commanded = command
        return self._move(gate, command.copy(), notes)

    # internals -------------------------------------------------------------------------
    def _to_robot(self, action: np.ndarray) -> tuple[np.ndarray, bool]:
        target = np.empty(14)
        for k, side in enumerate(self.SIDES):
            base = 7 * k
            target[base : base + 6] = action[base : base + 6]
            target[base + 6] = self.grippers[side].update(float(action[base + 6])).command
        return self.limits.clip_position(target)

    # AdapterBase hooks -------------------------------------------------------------------
    @property
    def _anchored(self) -> bool:
        return self._commanded is not None

    def _set_commanded_to_measured(self) -> None:
        if len(self._measured) < 2:
            self._commanded = None
            return
        self._commanded = np.concatenate([self._measured["left"], self._measured["right"]])

    def _tracking_error(self) -> str:
        measured = np.concatenate([self._measured["left"], self._measured["right"]])
        names = [self.limits.names[k] for k in self._arm_joints]
        return tracking_error(measured[self._arm_joints], self._commanded[self._arm_joints],
                              self._tracking_tolerance, names)

    def _output_target(self) -> np.ndarray:
        return self._commanded.copy()
