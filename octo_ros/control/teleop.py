"""What every teleoperation mapping shares: operator inputs → one policy action per step.

The teleop node publishes its actions as horizon-1 ``ActionChunk``s (``source = "teleop"``), so
the adapter runs them through the policy's path: chunk execution, safety limits, dry-run, e-stop.

* Delta end-effector robots (WidowX / Bridge, UR5 / berkeley_autolab_ur5): a ``geometry_msgs/Twist``
  (``spacenav``, ``teleop_twist_joy``, ``teleop_twist_keyboard``) in the robot's base frame is
  integrated over one policy step into the delta action ``[dx, dy, dz, droll, dpitch, dyaw]`` and
  a gripper command (model convention: 1 = open, 0 = closed) from ``sensor_msgs/Joy`` buttons or a
  ``std_msgs/Float64``. :class:`TwistIntegrator` holds each twist until the next one (or until
  it is ``twist_timeout_s`` old: twist sources publish on change, and a silent device must not keep
  the arm moving) and averages it over the step; the rotation ``ω·dt`` becomes the static-xyz Euler
  delta whose ``Rz·Ry·Rx`` is exactly ``exp([ω]·dt)``, applied about the gripper with base-aligned
  axes by the adapters (``octo_ros.control.kinematics.apply_delta``).
* Episode control (every robot): Joy buttons that start an episode or stop it with a label.

Actions are published ``PUBLISHES_PER_STEP`` times per policy step, each the action for one whole
step, stamped with the time the input was sampled. An adapter takes one action per step on its own
step clock; a horizon-1 chunk covers one step from its stamp, so chunks only once per step would
tile time edge to edge and an adapter step starting between a chunk's stamp and its arrival would
find none and hold. Twice per step, the newest chunk is at most half a step old at every step start.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from transforms3d.euler import mat2euler

from octo_ros.control.chunking import ChunkExecutionConfig
from octo_ros.control.kinematics import rotation_exp
from octo_ros.datatypes import TELEOP_SOURCE, ActionChunk
from octo_ros.timebase import seconds_to_ns

PUBLISHES_PER_STEP = 2

#: The Bridge / berkeley_autolab_ur5 action layout (the policy's ``action_dimension_names``).
DELTA_ACTION_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")

#: Outcome labels an operator gives an episode (``StopEpisode.outcome``; ``discard`` is not exported).
EPISODE_LABELS = ("success", "failure", "discard")
START_EPISODE = "start"


@dataclass
class TwistTeleopConfig:
    """Twist + gripper → delta end-effector action. Defaults suit a SpaceMouse (``spacenav`` with its
    default scales publishes about ±1 per axis at full deflection)."""

    step_period_s: float = ChunkExecutionConfig.step_period_s  # the adapters' policy step (5 Hz)
    linear_scale: float = 0.1  # m/s per twist unit: full deflection = 0.1 m/s = 2 cm per 0.2 s step
    angular_scale: float = 0.5  # rad/s per twist unit
    deadband: float = 0.05  # twist components of smaller magnitude (before scaling) count as 0
    twist_timeout_s: float = 0.5  # a twist older than this counts as zero motion
    gripper_open_button: int = 1  # Joy button index (-1: none); spacenav: the right button
    gripper_close_button: int = 0  # spacenav: the left button
    initial_gripper: float = 1.0  # open

    def __post_init__(self):
        values = (self.step_period_s, self.linear_scale, self.angular_scale, self.twist_timeout_s)
        if not all(v > 0 and math.isfinite(v) for v in values):
            raise ValueError(f"step period, scales and twist timeout must be positive: {values}")
        if not 0 <= self.deadband < 1 or not math.isfinite(self.deadband):
            raise ValueError(f"deadband must be in [0, 1), got {self.deadband}")
        if not 0.0 <= self.initial_gripper <= 1.0:
            raise ValueError(f"initial_gripper must be in [0, 1] (1 = open), got {self.initial_gripper}")


def rotation_delta_rpy(rotvec) -> np.ndarray:
    """The Bridge rotation delta (static xyz Euler: ``R = Rz·Ry·Rx``) equal to the rotation ``exp([rotvec])``."""
    return np.asarray(mat2euler(rotation_exp(np.asarray(rotvec, dtype=float)), axes="sxyz"))


class TwistIntegrator:
    """Piecewise-constant twist (base frame, SI after scaling) integrated over time windows."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._samples: list[tuple[float, np.ndarray]] = []  # (time, 6-D velocity), oldest first

    def add(self, t: float, velocity) -> None:
        v = np.asarray(velocity, dtype=float)
        if self._samples and t < self._samples[-1][0]:
            t = self._samples[-1][0]  # out of order on a loaded machine: it holds from the latest time
        self._samples.append((t, v))

    def integral(self, start: float, end: float) -> np.ndarray:
        """∫ velocity dt over [start, end]; forgets samples no longer in force before ``start``."""
        total = np.zeros(6)
        for i, (t, v) in enumerate(self._samples):
            until = self._samples[i + 1][0] if i + 1 < len(self._samples) else math.inf
            until = min(until, t + self.timeout_s, end)
            lo = max(t, start)
            if until > lo:
                total += v * (until - lo)
        while len(self._samples) > 1 and self._samples[1][0] <= start:
            self._samples.pop(0)
        return total


class ButtonPresses:
    """Joy button presses (released → pressed), so a held button acts once."""

    def __init__(self):
        self._previous: list[int] = []

    def update(self, buttons) -> set[int]:
        buttons = [int(b) for b in buttons]
        pressed = {i for i, b in enumerate(buttons) if b and not (i < len(self._previous) and self._previous[i])}
        self._previous = buttons
        return pressed


class TwistTeleop:
    """Twist, Joy buttons and gripper values in; :meth:`action` once per publication."""

    ACTION_NAMES = DELTA_ACTION_NAMES

    def __init__(self, config: TwistTeleopConfig):
        self.config = config
        self.twist = TwistIntegrator(config.twist_timeout_s)
        self.gripper = float(config.initial_gripper)

    def on_twist(self, t: float, linear, angular) -> None:
        c = self.config
        v = np.concatenate([np.asarray(linear, float), np.asarray(angular, float)])
        if not np.all(np.isfinite(v)):
            raise ValueError(f"twist has non-finite components {v.tolist()}")
        v[np.abs(v) < c.deadband] = 0.0
        v[:3] *= c.linear_scale
        v[3:] *= c.angular_scale
        self.twist.add(t, v)

    def on_buttons(self, pressed: set[int]) -> None:
        c = self.config
        if c.gripper_close_button in pressed:
            self.gripper = 0.0
        elif c.gripper_open_button in pressed:
            self.gripper = 1.0

    def on_gripper(self, value: float) -> None:
        """A gripper command in the model convention (1 = open, 0 = closed); clipped to [0, 1]."""
        if not math.isfinite(value):
            raise ValueError(f"gripper command {value} is not finite")
        self.gripper = min(1.0, max(0.0, float(value)))

    def action(self, now: float) -> np.ndarray:
        """[dx, dy, dz, droll, dpitch, dyaw, gripper]: the twist averaged over the step that ends now,
        applied for one step (so a constant twist v gives dx = v · step_period)."""
        period = self.config.step_period_s
        displacement = self.twist.integral(now - period, now)
        return np.concatenate([displacement[:3], rotation_delta_rpy(displacement[3:]), [self.gripper]])

    def sample(self, now: float) -> tuple[np.ndarray, str]:
        """(:meth:`action`, ''): a twist mapping always has an action (zero motion without a twist)."""
        return self.action(now), ""


@dataclass
class EpisodeButtons:
    """Joy buttons for episode control (-1: not mapped): start an episode, or stop it with a label."""

    start: int = -1
    success: int = -1
    failure: int = -1
    discard: int = -1

    #: field -> the teleop node's parameter
    PARAMETERS: ClassVar[dict[str, str]] = {"start": "start_episode_button", "success": "success_button",
                                            "failure": "failure_button", "discard": "discard_button"}

    def events(self, pressed: set[int]) -> list[str]:
        """What the presses ask for: ``start`` and/or one of :data:`EPISODE_LABELS`, in that order."""
        mapping = {START_EPISODE: self.start, "success": self.success, "failure": self.failure, "discard": self.discard}
        return [event for event, button in mapping.items() if button >= 0 and button in pressed]


def episode_request(event: str, instruction: str) -> tuple[str, dict]:
    """(the recorder's service, its request's fields) for an episode ``event``: start with the
    instruction, or stop with the event as the outcome; the metadata says a Joy button asked."""
    if event == START_EPISODE:
        return "start_episode", {"instruction": instruction, "metadata": {"started_by": "teleop joy button"}}
    return "stop_episode", {"outcome": event, "metadata": {"stopped_by": "teleop joy button"}}


def episode_reply(event: str, response) -> tuple[bool, str]:
    """(ok, the line to log) for the recorder's answer (``success``, ``message``; None: no answer)
    to an episode ``event``."""
    if response is None:
        return False, f"{event}: no response from the recorder"
    if response.success:
        return True, f"{event}: {response.message}"
    return False, f"{event} refused: {response.message}"


class TeleopChunks:
    """A teleop mapping's actions as the horizon-1 chunks the teleop node publishes: ``source``
    teleop, ``dimension_names`` (as many as ``robot``'s actions, ``action_dim``), stamped with the
    time the input was sampled, ``normalized`` NaN (no model produced them); and the node's status."""

    def __init__(self, robot: str, step_period_s: float, dimension_names, action_dim: int, instruction: str = ""):
        self.dimension_names = tuple(dimension_names)
        if len(self.dimension_names) != action_dim:
            raise ValueError(f"action_dimension_names has {len(self.dimension_names)} names; "
                             f"{robot} actions have {action_dim}")
        self.step_period_s = step_period_s
        self.publish_period_s = step_period_s / PUBLISHES_PER_STEP
        self.instruction = instruction
        self.sequence = 0
        self.last_publish = -math.inf
        self.last_reason = "starting"  # why nothing is published ('' while publishing)
        self.bad_inputs = 0

    def due(self, now: float) -> bool:
        """Whether the publication timer publishes at ``now`` (inputs that publish on arrival, the
        leaders', may have published since)."""
        return now - self.last_publish >= 0.9 * self.publish_period_s

    def chunk(self, now: float, action, reason: str = "") -> ActionChunk | None:
        """The chunk for ``action`` sampled at ``now``; None (and ``reason`` kept) without one."""
        self.last_reason = reason
        if action is None:
            return None
        actions = np.asarray(action, dtype=np.float32)[None, :]
        chunk = ActionChunk(stamp_ns=seconds_to_ns(now), sequence=self.sequence, actions=actions,
                            normalized=np.full_like(actions, math.nan), dimension_names=self.dimension_names,
                            step_period_s=self.step_period_s, task=self.instruction, source=TELEOP_SOURCE)
        self.sequence += 1
        self.last_publish = now
        return chunk

    def status(self) -> tuple[bool, str, dict]:
        """(publishing, message, values) for the diagnostics."""
        values = {"chunks_published": self.sequence, "bad_inputs": self.bad_inputs}
        return (False, self.last_reason, values) if self.last_reason else (True, "publishing", values)
