"""Bimanual ALOHA-style adapter core: 14-D absolute joint actions → two Interbotix followers.

Action layout (tonyzhaozh/aloha, Interbotix/aloha, Octo's ALOHA example):
``[left 6 joints (rad), left gripper (normalized, 1 = open, 0 = closed),
   right 6 joints, right gripper]``. The normalized gripper is unnormalized to the gripper
*joint* angle with per-arm open/close constants and sent as ``JointSingleCommand('gripper')``;
the arm joints go out as ``JointGroupCommand('arm')`` on ``/<namespace>/commands/...``.

Commands stream at 50 Hz (ALOHA DT = 0.02 s). When the policy step is longer than the control
period, targets are interpolated linearly. Every command is clipped to the joint limits and
rate-limited to the velocity limits relative to the previous command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from octo_ros.control.adapter import AdapterBase
from octo_ros.control.chunking import (
    ChunkExecutionConfig,
    ChunkExecutor,
    ExecutionMode,
    StepKind,
    step_progress,
)
from octo_ros.control.gripper import GripperMapper, aloha_joint
from octo_ros.control.kinematics import ARMS
from octo_ros.control.safety import ControlOutput, ControlStatus, SafetyConfig, SafetySupervisor, all_finite

# Gripper joint constants (rad), follower / puppet arms.
ALOHA2_FOLLOWER_GRIPPER = (1.6214, 0.6197)  # Interbotix/aloha constants.py (open, close)
ALOHA_ORIGINAL_PUPPET_GRIPPER = (1.4910, -0.6213)  # tonyzhaozh/aloha constants.py (open, close)


@dataclass
class ArmSideConfig:
    namespace: str
    gripper_open_rad: float = ALOHA2_FOLLOWER_GRIPPER[0]
    gripper_close_rad: float = ALOHA2_FOLLOWER_GRIPPER[1]
    arm: str = "vx300s"
    gripper_velocity_limit: float = math.pi  # rad/s, URDF gripper joint velocity limit


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
        if not 0 < self.control_period_s <= self.execution.step_period_s:
            raise ValueError("control_period_s must be positive and at most the policy step period")


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
        self.supervisor = SafetySupervisor(config.safety)
        self.executor = ChunkExecutor(config.execution, self.ACTION_DIM)
        self.grippers = {
            s: GripperMapper(aloha_joint(c.gripper_open_rad, c.gripper_close_rad)) for s, c in self.sides.items()
        }
        lower, upper, vel = [], [], []
        for c in (config.left, config.right):
            lim = ARMS[c.arm].limits
            lower += [*lim.lower, min(c.gripper_open_rad, c.gripper_close_rad)]
            upper += [*lim.upper, max(c.gripper_open_rad, c.gripper_close_rad)]
            vel += [*lim.velocity, c.gripper_velocity_limit]
        self.lower, self.upper, self.velocity = np.array(lower), np.array(upper), np.array(vel)
        self._measured: dict[str, np.ndarray] = {}
        self._state_stamps: dict[str, float] = {}
        self._commanded: np.ndarray | None = None
        self._segment: tuple[np.ndarray, np.ndarray, float] | None = None

    # inputs --------------------------------------------------------------------------
    def update_joint_state(self, side: str, arm_q, gripper_rad: float, stamp: float) -> bool:
        q = np.append(np.asarray(arm_q, dtype=float), float(gripper_rad))
        if side not in self.sides or q.shape != (7,) or not all_finite(q) or not np.isfinite(stamp):
            return False
        self._measured[side] = q
        self._state_stamps[side] = stamp
        if len(self._state_stamps) == 2:  # fresh only when both arms are
            self.supervisor.watchdog.feed("state", min(self._state_stamps.values()))
            if self._commanded is None:
                self._anchor_to_measured(keep_chunks=True)
        return True

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

    def arm_commands(self, output: ControlOutput) -> tuple[ArmCommand, ArmCommand]:
        """Split a 14-D command into the per-namespace arm and gripper commands."""
        t = output.target
        return (
            ArmCommand(self.config.left.namespace, t[0:6].copy(), float(t[6])),
            ArmCommand(self.config.right.namespace, t[7:13].copy(), float(t[13])),
        )

    # tick ------------------------------------------------------------------------------
    def step(self, now: float) -> ControlOutput:
        gate = self.supervisor.gate(now)
        if self._commanded is None:
            return ControlOutput(ControlStatus.HOLD, gate.reason or "no joint state yet", np.zeros(0), False)
        if not gate.may_move:
            return self._hold(gate.status, gate.reason)
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
        desired = start_q + progress * (end_q - start_q)
        max_step = self.velocity * self.config.control_period_s
        command = self._commanded + np.clip(desired - self._commanded, -max_step, max_step)
        if np.any(command != desired):
            notes.append("rate-limited to joint velocity limits")
        command = np.clip(command, self.lower, self.upper)
        if not all_finite(command):  # unreachable with finite chunks; kept as the last line of defence
            return self._hold(ControlStatus.HOLD, "non-finite command rejected")
        self._commanded = command
        return ControlOutput(ControlStatus.MOVE, "", command.copy(), gate.may_send, None, False, tuple(notes))

    # internals -------------------------------------------------------------------------
    def _to_robot(self, action: np.ndarray) -> tuple[np.ndarray, bool]:
        target = np.empty(14)
        for k, side in enumerate(self.SIDES):
            base = 7 * k
            target[base : base + 6] = action[base : base + 6]
            target[base + 6] = self.grippers[side].update(float(action[base + 6])).command
        clipped = np.clip(target, self.lower, self.upper)
        return clipped, bool(np.any(clipped != target))

    def _hold(self, status: ControlStatus, reason: str) -> ControlOutput:
        self.executor.interrupt()
        self._segment = None
        return ControlOutput(status, reason, self._commanded.copy(), False)

    def _anchor_to_measured(self, keep_chunks: bool = False) -> None:
        if keep_chunks:
            self.executor.interrupt()
        else:
            self.executor.clear()
        self._segment = None
        if len(self._measured) < 2:
            self._commanded = None
            return
        self._commanded = np.concatenate([self._measured["left"], self._measured["right"]])
