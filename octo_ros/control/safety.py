"""Safety layer shared by every action adapter (pure Python, no ROS).

Every command an adapter produces passes through these pieces:

* :class:`WorkspaceBox` clips an integrated end-effector target to a box.
* :func:`clamp_components` clamps a per-step delta (translation / rotation).
* :class:`JointLimits` checks joint position and velocity limits.
* :class:`SafetySupervisor` owns the dry-run gate (on by default), the latched
  e-stop and the staleness :class:`Watchdog`; adapters ask it every tick whether
  they may move and whether a command may be sent to the robot.
* :func:`tracking_error` is the tracking-error guard: an armed adapter holds when the
  measured robot is further from the commanded target than it could trail it by.

Non-finite values are rejected wherever they can enter (chunks, measured
states) and checked again on the final command.

Safety parameters are validated where the config dataclasses are built (:func:`check_limit`,
:func:`check_box`): a wrong sign, a reversed box, a zero where zero is meaningless or a value
implausible in its unit (mm for m, degrees for rad) is a :class:`LimitError` naming the
parameter, so a node refuses to start rather than run with it.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field

import numpy as np


def reason_kind(reason: str) -> str:
    """A hold reason without its numbers ("chunk stale (1.2 s > 1.0 s)" → "chunk stale (# s > # s)")."""
    return re.sub(r"[-+]?\d[\d.e-]*", "#", reason)


def all_finite(values) -> bool:
    """True when every element is a finite number."""
    return bool(np.all(np.isfinite(np.asarray(values, dtype=float))))


class LimitError(ValueError):
    """A safety parameter that is non-finite, of the wrong sign or order, or implausible in its unit."""


def check_limit(name: str, value, unit: str, high: float, *, low: float = 0.0, low_inclusive: bool = False) -> float:
    """``value`` as a float if it lies in (low, high] (``[low, high]`` with ``low_inclusive``), else
    LimitError naming the parameter ``name``. ``high`` is the plausibility bound of the unit: a value
    above it is most likely in another unit (mm for m, degrees for rad, ms for s)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LimitError(f"{name} = {value!r}: must be a number ({unit})") from None
    bracket = "[" if low_inclusive else "("
    if not math.isfinite(v) or v < low or (v == low and not low_inclusive):
        raise LimitError(f"{name} = {value!r}: must be finite and in {bracket}{low:g}, {high:g}] {unit}")
    if v > high:
        raise LimitError(f"{name} = {value!r}: above {high:g} {unit}, the most it can plausibly be "
                         f"({name} is in {unit}; is it given in another unit?)")
    return v


def check_box(low_name: str, high_name: str, low, high, unit: str = "m", bound: float = 2.0) -> None:
    """An axis-aligned box: 3 finite values each, low < high on every axis, within ``bound`` of the origin."""
    for name, values in ((low_name, low), (high_name, high)):
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise LimitError(f"{name} = {values!r}: must be 3 numbers ({unit})") from None
        if arr.shape != (3,) or not all_finite(arr):
            raise LimitError(f"{name} = {list(np.ravel(values))}: must be 3 finite numbers (x, y, z in {unit})")
        if np.any(np.abs(arr) > bound):
            raise LimitError(f"{name} = {arr.tolist()}: beyond {bound:g} {unit} of the base "
                             f"({name} is in {unit}; is it given in another unit?)")
    lo, hi = np.asarray(low, float), np.asarray(high, float)
    bad = [axis for axis, a, b in zip("xyz", lo, hi) if not a < b]
    if bad:
        raise LimitError(f"{low_name} {lo.tolist()} must be below {high_name} {hi.tolist()} on every axis "
                         f"(not on {', '.join(bad)})")


def clamp_components(delta: np.ndarray, limit: float) -> tuple[np.ndarray, bool]:
    """Clamp each component of ``delta`` to [-limit, limit]; report whether it clipped."""
    clipped = np.clip(delta, -limit, limit)
    return clipped, bool(np.any(clipped != delta))


@dataclass(frozen=True)
class WorkspaceBox:
    """Axis-aligned box (metres, robot base frame) for the end-effector target position."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self):
        low, high = np.asarray(self.low, float), np.asarray(self.high, float)
        if low.shape != (3,) or high.shape != (3,) or not all_finite(low) or not all_finite(high):
            raise ValueError(f"workspace box needs 3 finite lows and highs, got {self.low} / {self.high}")
        if np.any(low >= high):
            raise ValueError(f"workspace box low {self.low} must be below high {self.high}")

    def clip(self, position: np.ndarray) -> tuple[np.ndarray, bool]:
        clipped = np.clip(position, self.low, self.high)
        return clipped, bool(np.any(clipped != position))

    def contains(self, position: np.ndarray, tol: float = 1e-9) -> bool:
        p = np.asarray(position, float)
        return bool(np.all(p >= np.asarray(self.low) - tol) and np.all(p <= np.asarray(self.high) + tol))


@dataclass(frozen=True)
class JointLimits:
    """Position (rad) and velocity (rad/s) limits for a set of named joints.

    Joint commands go out as float32 (xs_sdk's ``cmd``), so :meth:`clip_position` clips to the
    float32 values just inside the limits: a command at a limit still satisfies it once rounded."""

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    velocity: tuple[float, ...]

    def __post_init__(self):
        n = len(self.names)
        if not (len(self.lower) == len(self.upper) == len(self.velocity) == n):
            raise ValueError("joint limit arrays must match the joint names")
        if any(lo >= hi for lo, hi in zip(self.lower, self.upper)) or any(v <= 0 for v in self.velocity):
            raise ValueError("joint limits need lower < upper and positive velocity limits")
        lower32, upper32 = np.float32(self.lower), np.float32(self.upper)
        lower32 = np.where(lower32 < np.asarray(self.lower), np.nextafter(lower32, np.float32(np.inf)), lower32)
        upper32 = np.where(upper32 > np.asarray(self.upper), np.nextafter(upper32, np.float32(-np.inf)), upper32)
        object.__setattr__(self, "_wire_lower", lower32.astype(float))
        object.__setattr__(self, "_wire_upper", upper32.astype(float))

    def within_position(self, q: np.ndarray, tol: float = 1e-9) -> bool:
        q = np.asarray(q, float)
        return bool(all_finite(q) and np.all(q >= np.asarray(self.lower) - tol) and np.all(q <= np.asarray(self.upper) + tol))

    def clip_position(self, q: np.ndarray) -> tuple[np.ndarray, bool]:
        clipped = np.clip(q, self._wire_lower, self._wire_upper)
        return clipped, bool(np.any(clipped != q))

    def max_step(self, dt: float) -> np.ndarray:
        return np.asarray(self.velocity) * dt

    def within_velocity(self, q_from: np.ndarray, q_to: np.ndarray, dt: float, tol: float = 1e-9) -> bool:
        step = np.abs(np.asarray(q_to, float) - np.asarray(q_from, float))
        return bool(np.all(step <= self.max_step(dt) + tol))

    def rate_limit(self, q_from: np.ndarray, q_to: np.ndarray, dt: float) -> tuple[np.ndarray, bool]:
        """Move from ``q_from`` towards ``q_to`` no faster than the velocity limits allow in ``dt``."""
        max_step = self.max_step(dt)
        step = np.clip(q_to - q_from, -max_step, max_step)
        limited = q_from + step
        return limited, bool(np.any(limited != q_to))


def tracking_error(measured, commanded, tolerance, names) -> str:
    """'' when every ``|measured - commanded|`` is within ``tolerance`` (per component), else the
    worst offender (by its share of the tolerance) in words."""
    error = np.abs(np.asarray(measured, float) - np.asarray(commanded, float))
    tolerance = np.broadcast_to(np.asarray(tolerance, float), error.shape)
    if not all_finite(error):
        return "tracking error: non-finite measured or commanded state"
    if np.all(error <= tolerance):
        return ""
    worst = int(np.argmax(error / tolerance))
    return (f"tracking error: {names[worst]} measured {error[worst]:.3f} from the commanded target "
            f"(> {tolerance[worst]:.3f}); re-arm or reset to re-anchor at the measured state")


class Watchdog:
    """Named freshness channels ("chunk", "state", ...) with per-channel timeouts.

    A channel holds the stamp of the last message received (not the newest stamp ever seen), so one
    bad stamp cannot keep it fresh. Stamps more than ``max_future_s`` ahead of the receiver's clock
    are rejected; accepted ones count as received at ``min(stamp, now)``. A channel that has never
    been fed counts as stale.
    """

    def __init__(self, timeouts_s: dict[str, float], max_future_s: float = 0.05):
        if any(t <= 0 for t in timeouts_s.values()):
            raise ValueError(f"watchdog timeouts must be positive: {timeouts_s}")
        if not (max_future_s >= 0 and np.isfinite(max_future_s)):
            raise ValueError(f"max_future_s must be finite and >= 0, got {max_future_s}")
        self._timeouts = dict(timeouts_s)
        self.max_future_s = float(max_future_s)
        self._last: dict[str, float] = {}

    def check_stamp(self, stamp: float, now: float) -> str:
        """Why a message stamped ``stamp`` and received at ``now`` is refused ('' when it is not)."""
        if not (np.isfinite(stamp) and np.isfinite(now)):
            return "stamp is not finite"
        if stamp > now + self.max_future_s:
            return f"stamped {stamp - now:.3f} s in the future (> {self.max_future_s:g} s)"
        return ""

    def feed(self, channel: str, stamp: float, now: float) -> bool:
        """Record a message on ``channel`` stamped ``stamp``, received at ``now``; False if refused."""
        if channel not in self._timeouts:
            raise KeyError(f"unknown watchdog channel {channel!r}")
        if self.check_stamp(stamp, now):
            return False
        self._last[channel] = min(float(stamp), float(now))
        return True

    def is_stale(self, channel: str, now: float) -> bool:
        last = self._last.get(channel)
        return last is None or not (now - self._timeouts[channel] <= last <= now + self.max_future_s)

    def stale(self, now: float) -> list[str]:
        """Channels older than their timeout (or never fed), each with its age in words."""
        problems = []
        for channel, timeout in self._timeouts.items():
            last = self._last.get(channel)
            if last is None:
                problems.append(f"no {channel} received yet")
            elif now - last > timeout:
                problems.append(f"{channel} stale ({now - last:.3f} s > {timeout:.3f} s)")
            elif last > now + self.max_future_s:  # fed on a later clock than this verdict's
                problems.append(f"{channel} stamped {last - now:.3f} s in the future")
        return problems

    def clear(self, channel: str) -> None:
        self._last.pop(channel, None)


class ControlStatus(str, enum.Enum):
    MOVE = "move"  # a new target was computed this tick
    HOLD = "hold"  # keep the last commanded target (stale input, no action, failed IK, ...)
    ESTOP = "estop"  # latched stop; nothing moves until an explicit reset


@dataclass(frozen=True)
class Gate:
    """Supervisor verdict for one tick."""

    may_move: bool  # False: hold (or stop); the adapter must not advance its target
    may_send: bool  # False: compute only, never actuate (dry-run or e-stop)
    status: ControlStatus
    reason: str


@dataclass
class SafetyConfig:
    """Supervisor settings. Dry-run is on unless the node explicitly arms the robot."""

    dry_run: bool = True
    # Newest chunk's observation stamp older than this → hold. 1.0 s matches the Bridge
    # camera-stamp tolerance and vla_ros2's image staleness limit.
    chunk_timeout_s: float = 1.0
    # Measured joint state older than this → hold. xs_sdk publishes at 100 Hz (its
    # simulator at 20–30 Hz); 0.25 s is several periods of either.
    state_timeout_s: float = 0.25
    # Armed tracking-error guard: hold when the measured state is further from the commanded one
    # than the velocity limit covers in this time (per joint; UR: the TCP speed caps). A robot
    # following the commanded targets trails them by about one control period plus its driver
    # latency; more means it did not follow (blocked, pushed, or its driver restarted elsewhere).
    tracking_tolerance_s: float = 0.25

    def __post_init__(self):
        self.chunk_timeout_s = check_limit("chunk_timeout", self.chunk_timeout_s, "s", 10.0)
        self.state_timeout_s = check_limit("state_timeout", self.state_timeout_s, "s", 5.0)
        self.tracking_tolerance_s = check_limit("tracking_tolerance", self.tracking_tolerance_s, "s", 5.0)


class SafetySupervisor:
    """Dry-run gate + latched e-stop + watchdog, consulted by an adapter on every tick."""

    def __init__(self, config: SafetyConfig, max_future_stamp_s: float = 0.05):
        self.config = config
        self.dry_run = config.dry_run
        self._estop_reason: str | None = None
        self.watchdog = Watchdog({"chunk": config.chunk_timeout_s, "state": config.state_timeout_s},
                                 max_future_s=max_future_stamp_s)

    # e-stop latch -------------------------------------------------------------
    def trigger_estop(self, reason: str) -> None:
        if self._estop_reason is None:
            self._estop_reason = reason or "e-stop"

    def reset_estop(self) -> None:
        self._estop_reason = None

    @property
    def estopped(self) -> bool:
        return self._estop_reason is not None

    # per-tick verdict ---------------------------------------------------------
    def gate(self, now: float) -> Gate:
        if self._estop_reason is not None:
            return Gate(False, False, ControlStatus.ESTOP, f"e-stop latched: {self._estop_reason}")
        stale = self.watchdog.stale(now)
        if stale:
            return Gate(False, not self.dry_run, ControlStatus.HOLD, "; ".join(stale))
        return Gate(True, not self.dry_run, ControlStatus.MOVE, "")


@dataclass(frozen=True)
class ControlOutput:
    """What an adapter's ``step(now)`` returns to the node.

    ``target`` is always the currently commanded value (joint angles, or a TCP pose for UR):
    the new one on MOVE, the held one on HOLD/ESTOP. ``send`` is True only when the node should
    transmit ``target`` now (armed, not e-stopped, and a new target was computed). ``gripper`` is
    the robot-side gripper command to transmit, or None when nothing changes.
    """

    status: ControlStatus
    reason: str
    target: np.ndarray
    send: bool
    gripper: float | None = None
    send_gripper: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
