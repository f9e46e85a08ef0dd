"""What the observation buffer node reports, without ROS: the camera sizes and proprio
normalization it is configured with (checked against what the checkpoint takes), the start-up
summary, the stale/fresh log lines of each tick (:class:`~octo_ros.perception.freshness_log.FreshnessLog`)
and the diagnostics level and message."""
from __future__ import annotations

from octo_ros.datatypes import ObservationWindow
from octo_ros.perception.freshness_log import FreshnessLog
from octo_ros.perception.observation import ObservationConfig, ObservationStatus, StatusKind
from octo_ros.timebase import ns_to_seconds


def camera_size(name: str, height: int | None, width: int | None, model_size: tuple[int, int] | None) -> dict:
    """``{height, width}`` of camera input ``name``: as set (``height``/``width``, None when not),
    else the checkpoint's (``model_size``); {} for the core's default. A size set against the
    checkpoint's is refused: the model cannot take it."""
    if (height is None) != (width is None):
        raise ValueError(f"set both cameras.{name}.height and cameras.{name}.width, or neither")
    if height is None:
        return {} if model_size is None else {"height": model_size[0], "width": model_size[1]}
    if model_size is not None and (height, width) != model_size:
        raise ValueError(f"cameras.{name} is {height}x{width} but the checkpoint takes "
                         f"{model_size[0]}x{model_size[1]} (height x width): leave the size unset")
    return {"height": height, "width": width}


def check_normalized_joints(given, joints) -> None:
    """ValueError naming the ``proprio_normalization.<joint>`` parameters ``given`` for joints that are
    not in ``proprio_joints``."""
    unknown = sorted(f"proprio_normalization.{j}" for j in given if j not in joints)
    if unknown:
        raise ValueError(f"{unknown}: not joints of proprio_joints {list(joints)}")


def describe(config: ObservationConfig) -> str:
    """The start-up line: window, rate, which topic feeds which input, the proprio."""
    return (f"windows of {config.window_size} steps at {config.rate_hz} Hz from "
            + ", ".join(f"{c.input_name} <- {c.topic}" for c in config.cameras)
            + "; joint states from " + ", ".join(f"{s.topic}" + (f" (as {s.prefix}*)" if s.prefix else "")
                                                 for s in config.joint_state_sources)
            + (f" (proprio: {', '.join(config.joint_names)})" if config.joint_names else "")
            + (f"; normalized [close, open]: {config.proprio_normalization}" if config.proprio_normalization else ""))


class BufferStatus:
    """Each tick's outcome (a window, or why none) → the lines to log and the diagnostics."""

    def __init__(self):
        self.freshness_log = FreshnessLog()
        self.last_status: ObservationStatus | None = None
        self.windows_published = 0

    def tick(self, now_ns: int, result: ObservationWindow | ObservationStatus) -> list[tuple[str, str]]:
        """Record ``result`` (counted as published when it is a window); the lines to log, as
        (``"warning"`` | ``"info"``, text)."""
        stale = isinstance(result, ObservationStatus) and result.kind is StatusKind.STALE
        lines = self.freshness_log.update(ns_to_seconds(now_ns), (result.stream or "?") if stale else None,
                                          result.reason if stale else "")
        if isinstance(result, ObservationStatus):
            self.last_status = result
        else:
            self.last_status = None
            self.windows_published += 1
        return lines

    def diagnostics(self, drop_counts: dict[str, int]) -> tuple[str, str, dict]:
        """(``ok`` | ``warn`` | ``error``, message, values)."""
        status = self.last_status
        if status is None:
            level, message = ("ok", "publishing windows") if self.windows_published else ("warn", "waiting for data")
        elif status.kind is StatusKind.STALE:
            level, message = "error", f"stale: {status.reason}"
        else:
            level, message = "warn", str(status)
        values = {"windows_published": self.windows_published}
        values.update({f"dropped {stream}": n for stream, n in drop_counts.items()})
        return level, message, values
