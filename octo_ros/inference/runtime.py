"""What the policy node does, without ROS: the current task, validation of task
input, the newest-window hand-off to the inference worker, and latency figures."""
from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass
from typing import Collection, Generic, Mapping, Optional, TypeVar

import numpy as np
import torch

from octo_ros.datatypes import ObservationWindow
from octo_ros.model.normalization import normalize
from octo_ros.model.policy import OctoPolicy


def default_torch_threads() -> int:
    """Inference threads when not configured: every CPU this process may use but one, so the
    adapter's control loop keeps a core even while the policy computes."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


class TaskError(ValueError):
    """Task input that cannot be used; the message says why."""


@dataclass(frozen=True)
class Task:
    """What the robot is asked to do: an instruction, a goal image per camera input, or both."""

    instruction: Optional[str] = None
    goals: Optional[dict[str, np.ndarray]] = None

    @property
    def kind(self) -> str:
        parts = [name for name, present in (("language", self.instruction), ("goal", self.goals)) if present]
        return "+".join(parts) or "none"

    def describe(self) -> str:
        if self.kind == "none":
            return "no task"
        text = f"language: {self.instruction}" if self.instruction else ""
        goal = f"goal image ({', '.join(sorted(self.goals))})" if self.goals else ""
        return " + ".join(p for p in (text, goal) if p)


NO_TASK = Task()


def model_batch(window: ObservationWindow, observation_keys: Collection[str], max_window: int,
                proprio_statistics: Mapping | None = None) -> dict[str, np.ndarray]:
    """The observations ``OctoPolicy.sample_actions`` takes from one window: the inputs the model
    has (``image_*``, ``proprio``) and ``timestep_pad_mask``, the newest ``max_window`` steps (the
    window the model was trained with), with a leading batch axis of 1. Proprio is normalized with the checkpoint's ``proprio``
    statistics, as Octo's training pipeline normalized it (the official ``NormalizeProprio``)."""
    keep = min(window.window_size, max_window)
    obs = {name: frames[None, -keep:] for name, frames in window.images.items() if name in observation_keys}
    if "proprio" in observation_keys:
        proprio = window.proprio[-keep:]
        obs["proprio"] = (normalize(proprio, proprio_statistics) if proprio_statistics else proprio)[None]
    obs["timestep_pad_mask"] = window.timestep_pad_mask[None, -keep:]
    return obs


#: Longest instruction accepted, in characters: far above any the model can read (Octo reads 16
#: T5 tokens), so that a task field or a log line never carries kilobytes.
MAX_INSTRUCTION_CHARS = 500


def log_text(text: str, limit: int = 120) -> str:
    """Text from outside (an instruction) as it may appear in a log line: control characters and
    ANSI escapes written as escapes, at most ``limit`` characters, quoted."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return f"'{shown}'" + (f"… ({len(text)} characters)" if len(text) > limit else "")


def validate_instruction(policy: OctoPolicy, text: str) -> str:
    """The instruction, stripped, if the model can take it; TaskError otherwise (the one check for
    every way an instruction arrives: service, topic)."""
    text = (text or "").strip()
    if not text:
        raise TaskError("instruction is empty (use clear_task to remove the task)")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise TaskError(f"instruction is {len(text)} characters long; at most {MAX_INSTRUCTION_CHARS} are accepted")
    control = sorted({c for c in text if not c.isprintable()})
    if control:
        raise TaskError("instruction contains control characters "
                        f"({', '.join(c.encode('unicode_escape').decode('ascii') for c in control)}); "
                        "give plain text")
    if not policy.has_language:
        raise TaskError(f"model {policy.model_id} has no language input; give a goal image instead")
    if policy.text_tokenizer is None:
        raise TaskError("no text tokenizer is configured (parameter 'tokenizer'), so instructions cannot be used")
    limit = policy.text_tokenizer.max_length
    tokens = len(policy.text_tokenizer.pieces(text)) + 1  # + EOS
    if tokens > limit:
        raise TaskError(f"instruction is {tokens} tokens long; the model reads at most {limit} (shorten it)")
    return text


def goal_image_shape(policy: OctoPolicy, input_name: str) -> tuple[int, int, int]:
    """(H, W, 3) the model takes for goal images on ``input_name``; TaskError for no such input.
    Checked before a goal image is decoded (nothing larger is decoded)."""
    expected = policy.observation_keys.get(input_name)
    if expected is None:
        raise TaskError(f"model {policy.model_id} has no image input '{input_name}' "
                        f"(it has {', '.join(k for k in policy.observation_keys if k.startswith('image_'))})")
    return tuple(expected)


def check_device(device: str) -> str:
    """``device`` if this torch can use it; ValueError saying why not (checked before loading)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device {device!r} is not a torch device ({err})") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device {device!r}: {why}; use device:=cpu (or auto)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif parsed.type not in ("cpu",):
        raise ValueError(f"device {device!r}: only cpu and cuda devices are supported")
    return device


def validate_goal_image(policy: OctoPolicy, input_name: str, rgb: np.ndarray) -> np.ndarray:
    """The goal image if it matches the model's image input; TaskError otherwise."""
    expected = goal_image_shape(policy, input_name)
    if rgb.shape != tuple(expected):
        raise TaskError(f"goal image for {input_name} is {rgb.shape[1]}x{rgb.shape[0]}; "
                        f"the model takes {expected[1]}x{expected[0]} RGB")
    return rgb


T = TypeVar("T")


class NewestSlot(Generic[T]):
    """Hands the newest item to one consumer; an item replaced before it was taken
    counts as dropped."""

    def __init__(self) -> None:
        self._item: Optional[T] = None
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Optional[T]:
        """The newest item, waiting up to ``timeout``; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class LatencyStats:
    """p50/p95 over the last ``size`` samples, seconds."""

    def __init__(self, size: int = 100):
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)

    def percentiles(self) -> tuple[float, float]:
        if not self._samples:
            return 0.0, 0.0
        p50, p95 = np.percentile(np.fromiter(self._samples, float), [50, 95])
        return float(p50), float(p95)
