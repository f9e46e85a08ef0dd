"""Gripper conventions as configuration: model value → robot gripper command.

The model side says which model value means open and which means closed (Octo: 1 = open,
0 = closed), whether to binarize at a threshold, and how many consecutive steps on the
other side are needed before the state flips ("sticky" debounce, Octo's
STICKY_GRIPPER_NUM_STEPS). The robot side is a linear map from "fraction open" in [0, 1]
to the robot's own command: Interbotix PWM/current effort (+ = release, − = grasp),
Interbotix finger position, Robotiq ``POS`` (0 = open … 255 = closed), or the ALOHA
gripper joint angle with per-arm open/close constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(kw_only=True)
class GripperConfig:
    """Model defaults: Octo's convention. The robot side has none: each robot states its own
    (``robots/<robot>``: ``interbotix_pwm``, ``robotiq_socket``, ``aloha_joint``)."""

    model_open: float = 1.0  # Octo: 1 = open
    model_closed: float = 0.0  # Octo: 0 = closed
    binarize: bool = True
    threshold: float = 0.5  # model units; Octo's WidowX eval closes below 0.5
    sticky_steps: int = 1  # consecutive steps needed to flip (Octo WidowX eval: 1)
    robot_label: str  # e.g. "Interbotix gripper PWM"
    robot_unit: str = ""
    robot_open: float  # the robot command for fully open
    robot_closed: float  # ... and fully closed
    robot_integer: bool = False  # round commands (Robotiq POS is an integer 0–255)

    def __post_init__(self):
        values = (self.model_open, self.model_closed, self.threshold, self.robot_open, self.robot_closed)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("gripper mapping values must be finite")
        if self.model_open == self.model_closed or self.robot_open == self.robot_closed:
            raise ValueError("open and closed values must differ")
        if self.sticky_steps < 1:
            raise ValueError("sticky_steps must be >= 1")
        lo, hi = sorted((self.model_open, self.model_closed))
        if self.binarize and not lo < self.threshold < hi:
            raise ValueError(f"threshold {self.threshold} must lie between {lo} and {hi}")


@dataclass(frozen=True)
class GripperUpdate:
    command: float  # robot-side command now in force
    changed: bool  # True when it differs from the previous command (send it)
    is_open: bool  # binarized state (continuous: fraction open >= 0.5)


class GripperMapper:
    """Stateful model→robot gripper mapping with threshold and sticky debounce."""

    def __init__(self, config: GripperConfig, initially_open: bool = True):
        self.config = config
        self.reset(initially_open)

    def reset(self, is_open: bool) -> None:
        self._open = bool(is_open)
        self._disagreeing = 0
        self._command = self.command_for_fraction(1.0 if is_open else 0.0)

    @property
    def command(self) -> float:
        return self._command

    def fraction_open(self, model_value: float) -> float:
        c = self.config
        return (model_value - c.model_closed) / (c.model_open - c.model_closed)

    def command_for_fraction(self, fraction_open: float) -> float:
        c = self.config
        f = min(1.0, max(0.0, fraction_open))
        value = c.robot_closed + f * (c.robot_open - c.robot_closed)
        return float(round(value)) if c.robot_integer else float(value)

    def update(self, model_value: float) -> GripperUpdate:
        """Feed one policy step's gripper value; non-finite values keep the current command."""
        previous = self._command
        if math.isfinite(model_value):
            c = self.config
            if c.binarize:
                wants_open = self.fraction_open(model_value) >= self.fraction_open(c.threshold)
                if wants_open != self._open:
                    self._disagreeing += 1
                    if self._disagreeing >= c.sticky_steps:
                        self._open, self._disagreeing = wants_open, 0
                else:
                    self._disagreeing = 0
                self._command = self.command_for_fraction(1.0 if self._open else 0.0)
            else:
                f = min(1.0, max(0.0, self.fraction_open(model_value)))
                self._open = f >= 0.5
                self._command = self.command_for_fraction(f)
        return GripperUpdate(self._command, self._command != previous, self._open)

    def describe(self) -> str:
        """One startup log line stating the mapping in words."""
        c = self.config
        unit = f" {c.robot_unit}" if c.robot_unit else ""

        def robot(f):
            return f"{c.robot_label} {self.command_for_fraction(f):g}{unit}"

        text = (
            f"model {c.model_open:g} → gripper OPEN ({robot(1.0)}); "
            f"model {c.model_closed:g} → gripper CLOSED ({robot(0.0)}); "
        )
        if c.binarize:
            text += f"binarized at {c.threshold:g} with {c.sticky_steps}-step sticky debounce"
        else:
            text += "continuous, linear in between, clipped to the open/closed range"
        return text
