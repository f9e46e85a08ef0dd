"""The only place times convert: integer nanoseconds (ROS stamps, the observation buffer, bags),
float seconds (the control cores, parameters) and ``sec``/``nanosec`` stamp fields.

Pure arithmetic, no ROS import: a stamp is anything with ``sec`` and ``nanosec``
(``builtin_interfaces/Time``, a rosbags message); ``octo_ros.ros.messages.ns_to_stamp`` builds
the message from :func:`split_ns`. Epoch nanoseconds stay integers: float64 cannot hold them
exactly (steps of 256 ns).
"""
from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    return int(round(float(seconds) * NS_PER_S))


def ns_to_seconds(ns: int | float) -> float:
    return ns / NS_PER_S


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time``-like (``sec``, ``nanosec``) -> int nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_seconds(stamp: Any, fallback: float) -> float:
    """A header stamp in seconds; ``fallback`` (the receiver's now) when the stamp is unset."""
    ns = stamp_to_ns(stamp)
    return ns_to_seconds(ns) if ns > 0 else fallback


def split_ns(ns: int) -> tuple[int, int]:
    """Nanoseconds -> (sec, nanosec) with 0 <= nanosec < 1e9, the fields of a stamp."""
    return divmod(int(ns), NS_PER_S)
