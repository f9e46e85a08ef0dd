"""Bimanual ALOHA teleoperation: the two leader arms' joint states → the 14-D absolute joint action.

ALOHA (tonyzhaozh/aloha ``real_env.get_action``, Interbotix/aloha ``robot_utils``): the follower is
commanded the leader's six arm joints as they are, and its gripper from the leader's gripper
*joint* normalized with the leader's constants, ``(q - close) / (open - close)`` (1 = open, 0 =
closed; not clipped, as in ALOHA's recorded actions — the adapter clips when it unnormalizes to
the follower's gripper joint). Action layout: [left 6 joints, left gripper, right 6 joints,
right gripper], at the ALOHA rate (50 Hz), one action per leader sample in hand; nothing while
either leader's state is missing or older than ``leader_timeout_s`` (the follower then holds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from octo_ros.robots.bimanual.adapter import ACTION_NAMES, BimanualConfig
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS

SIDES = ("left", "right")
# Interbotix/aloha constants.py LEADER_GRIPPER_JOINT_OPEN / _CLOSE (rad), ALOHA 2 leaders (wx250s).
# (The original ALOHA masters: open 0.3083, close -0.6842.)
ALOHA2_LEADER_GRIPPER = (0.8298, -0.0552)


@dataclass
class LeaderTeleopConfig:
    step_period_s: float = BimanualConfig.control_period_s  # ALOHA DT: 0.02 s
    left_gripper_open_rad: float = ALOHA2_LEADER_GRIPPER[0]
    left_gripper_close_rad: float = ALOHA2_LEADER_GRIPPER[1]
    right_gripper_open_rad: float = ALOHA2_LEADER_GRIPPER[0]
    right_gripper_close_rad: float = ALOHA2_LEADER_GRIPPER[1]
    leader_timeout_s: float = 0.1  # five ALOHA periods without a leader state: stop publishing

    def __post_init__(self):
        for side in SIDES:
            open_rad, close_rad = self.gripper(side)
            if not (math.isfinite(open_rad) and math.isfinite(close_rad)) or open_rad == close_rad:
                raise ValueError(f"{side} leader gripper open/close must be finite and differ: {open_rad}, {close_rad}")
        if not (self.step_period_s > 0 and self.leader_timeout_s > 0):
            raise ValueError("step period and leader timeout must be positive")

    def gripper(self, side: str) -> tuple[float, float]:
        return getattr(self, f"{side}_gripper_open_rad"), getattr(self, f"{side}_gripper_close_rad")


class LeaderTeleop:
    """Leader joint states in (:meth:`update`), the follower action out (:meth:`action`)."""

    ACTION_NAMES = ACTION_NAMES

    def __init__(self, config: LeaderTeleopConfig):
        self.config = config
        self._arm: dict[str, np.ndarray] = {}  # side -> 7 values: six joints, normalized gripper
        self._stamps: dict[str, float] = {}

    def update(self, side: str, names, positions, stamp: float) -> None:
        """One leader's ``sensor_msgs/JointState`` (names, positions, stamp in s). ValueError names
        what is wrong (unknown side, missing joints, non-finite values); the previous state stays."""
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}")
        index = {n: i for i, n in enumerate(names)}
        missing = [j for j in (*ARM_JOINTS, "gripper") if j not in index or index[j] >= len(positions)]
        if missing:
            raise ValueError(f"{side} leader joint state lacks {missing}")
        q = np.array([positions[index[j]] for j in ARM_JOINTS] + [positions[index["gripper"]]], dtype=float)
        if not np.all(np.isfinite(q)) or not math.isfinite(stamp):
            raise ValueError(f"{side} leader joint state has non-finite values")
        open_rad, close_rad = self.config.gripper(side)
        q[6] = (q[6] - close_rad) / (open_rad - close_rad)
        self._arm[side] = q
        self._stamps[side] = float(stamp)

    def on_buttons(self, pressed: set[int]) -> None:
        """Joy buttons map nothing on the leaders (episode buttons are the node's)."""

    def action(self, now: float) -> tuple[np.ndarray | None, str]:
        """(the 14-D action, '') from the newest leader states, or (None, why not)."""
        for side in SIDES:
            if side not in self._arm:
                return None, f"no {side} leader joint state yet"
            age = now - self._stamps[side]
            if age > self.config.leader_timeout_s:
                return None, f"{side} leader joint state is {age:.3f} s old (> {self.config.leader_timeout_s:g} s)"
        return np.concatenate([self._arm["left"], self._arm["right"]]), ""

    sample = action  # what every teleop mapping offers: (action or None, why not)
