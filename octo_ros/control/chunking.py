"""Action-chunk execution at the controller rate, decoupled from inference.

The policy publishes chunks ``actions[H, D]`` stamped with the time of the observation
they were computed from. Action ``i`` of a chunk stamped ``t`` belongs to the policy
step that starts at ``t + i * step_period``. The executor runs its own step clock; at
each step boundary it picks the action for that instant by elapsed time, so actions
whose time already passed (inference latency, late ticks) are skipped, never replayed.

Modes (Octo ``octo/utils/gym_wrappers.py``):

* receding horizon (``RHCWrapper``): only the first ``exec_horizon`` actions of the
  newest chunk are executed; past them the executor holds until a newer chunk arrives.
* temporal ensembling (``TemporalEnsembleWrapper``): the predictions for the current
  step from the last ``ensemble_horizon`` chunks (each truncated to that many actions)
  are averaged with weights ``exp(-exp_weight * j)``, ``j = 0`` for the oldest
  prediction; ``exp_weight = 0`` is Octo's default (plain mean).

The executor never invents an action: no covering prediction → hold.
Staleness of the newest chunk is the watchdog's job (see ``safety.SafetySupervisor``).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from octo_ros.control.safety import check_limit
from octo_ros.datatypes import ActionChunk
from octo_ros.timebase import ns_to_seconds, seconds_to_ns

# Tolerance on "elapsed / period" so a tick landing a hair before a boundary because of
# float rounding still selects the action that boundary belongs to.
_INDEX_EPS = 1e-6


class ExecutionMode(str, enum.Enum):
    RECEDING_HORIZON = "receding_horizon"
    TEMPORAL_ENSEMBLE = "temporal_ensemble"


@dataclass
class ChunkExecutionConfig:
    """Chunk execution settings; defaults are Octo's WidowX evaluation (5 Hz, ensembling over 4)."""

    step_period_s: float = 0.2
    mode: ExecutionMode = ExecutionMode.TEMPORAL_ENSEMBLE
    exec_horizon: int = 4  # receding horizon: actions of the newest chunk executed
    ensemble_horizon: int = 4  # temporal ensembling: chunks averaged (Octo's pred_horizon)
    exp_weight: float = 0.0  # Octo's exponential weighting k; 0 = uniform mean
    max_future_stamp_s: float = 0.05  # chunks stamped further ahead of "now" are rejected (clock skew)
    # A chunk whose action_dimension_names are a permutation of the adapter's layout: refused (False)
    # or executed with its columns reordered (True, logged). Any other mismatch is always refused.
    reorder_action_dimensions: bool = False

    def __post_init__(self):
        self.mode = ExecutionMode(self.mode)
        self.step_period_s = check_limit("step_period", self.step_period_s, "s", 10.0)
        self.max_future_stamp_s = check_limit("max_future_stamp", self.max_future_stamp_s, "s", 1.0, low_inclusive=True)
        if self.exec_horizon < 1 or self.ensemble_horizon < 1:
            raise ValueError("exec_horizon and ensemble_horizon must be >= 1")
        if not math.isfinite(self.exp_weight):
            raise ValueError("exp_weight must be finite")


class StepKind(str, enum.Enum):
    NEW_STEP = "new_step"  # a policy step starts now with ``action``
    CONTINUE = "continue"  # still inside the current step (interpolate towards its target)
    HOLD = "hold"  # no action for now: hold the last commanded target


@dataclass(frozen=True)
class StepDecision:
    kind: StepKind
    action: np.ndarray | None = None
    step_start: float = math.nan
    reason: str = ""


@dataclass(frozen=True)
class ChunkAcceptance:
    accepted: bool
    reason: str = ""  # why it was refused
    note: str = ""  # what was done to an accepted chunk (e.g. its columns reordered)


class ChunkExecutor:
    """Turns stamped chunks into one action per policy step, driven by ``tick(now)``."""

    def __init__(self, config: ChunkExecutionConfig, action_dim: int):
        self.config = config
        self.action_dim = action_dim
        keep = config.ensemble_horizon if config.mode is ExecutionMode.TEMPORAL_ENSEMBLE else 1
        self._chunks: deque[ActionChunk] = deque(maxlen=keep)
        self._step_start: float | None = None  # start of the step being executed
        self._last_step_start = -math.inf  # never start two steps less than a period apart

    # input ------------------------------------------------------------------------
    def add_chunk(self, actions, stamp: float, now: float) -> ChunkAcceptance:
        a = np.array(actions, dtype=float, copy=True)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] != self.action_dim:
            return ChunkAcceptance(False, f"chunk shape {np.shape(actions)} is not (H, {self.action_dim})")
        if not np.all(np.isfinite(a)):
            return ChunkAcceptance(False, "chunk contains non-finite values")
        if not math.isfinite(stamp):
            return ChunkAcceptance(False, "chunk stamp is not finite")
        if stamp > now + self.config.max_future_stamp_s:
            return ChunkAcceptance(False, f"chunk stamped {stamp - now:.3f} s in the future")
        stamp_ns = seconds_to_ns(stamp)
        if self._chunks and stamp_ns <= self._chunks[-1].stamp_ns:
            return ChunkAcceptance(False, "chunk is not newer than the newest one")
        self._chunks.append(ActionChunk(stamp_ns, a, self.config.step_period_s))
        return ChunkAcceptance(True)

    def clear(self) -> None:
        """Forget all chunks and the step clock (after an e-stop reset or re-arming)."""
        self._chunks.clear()
        self.interrupt()

    def interrupt(self) -> None:
        """End the current step early (the adapter is holding)."""
        self._step_start = None

    # per tick ---------------------------------------------------------------------
    def tick(self, now: float) -> StepDecision:
        period = self.config.step_period_s
        if self._step_start is not None:
            if now < self._step_start + period * (1.0 - _INDEX_EPS):
                return StepDecision(StepKind.CONTINUE, step_start=self._step_start)
            # Next boundary on the running clock; boundaries missed by late ticks are skipped.
            missed = math.floor((now - self._step_start) / period + _INDEX_EPS)
            start = self._step_start + missed * period
        else:
            start = now
        if start < self._last_step_start + period - 1e-9:
            self._step_start = None
            return StepDecision(StepKind.HOLD, reason="previous step slot not over yet")
        action, reason = self._select(start)
        if action is None:
            self._step_start = None
            return StepDecision(StepKind.HOLD, reason=reason)
        self._step_start = start
        self._last_step_start = start
        return StepDecision(StepKind.NEW_STEP, action=action, step_start=start)

    # selection ----------------------------------------------------------------------
    def _index(self, chunk: ActionChunk, t: float) -> int:
        return max(0, math.floor((t - ns_to_seconds(chunk.stamp_ns)) / self.config.step_period_s + _INDEX_EPS))

    def _select(self, t: float) -> tuple[np.ndarray | None, str]:
        if not self._chunks:
            return None, "no chunk received"
        cfg = self.config
        if cfg.mode is ExecutionMode.RECEDING_HORIZON:
            newest = self._chunks[-1]
            i = self._index(newest, t)
            usable = min(cfg.exec_horizon, len(newest.actions))
            if i >= usable:
                return None, f"newest chunk exhausted (step {i} >= {usable} executable actions)"
            return newest.actions[i].copy(), ""
        preds = []
        for chunk in self._chunks:  # oldest first
            i = self._index(chunk, t)
            if i < min(cfg.ensemble_horizon, len(chunk.actions)):
                preds.append(chunk.actions[i])
        if not preds:
            return None, "no chunk predicts an action for this step"
        logits = -cfg.exp_weight * np.arange(len(preds))
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        return np.einsum("j,jd->d", weights, np.asarray(preds)), ""


def step_progress(now: float, step_start: float, step_period: float, control_period: float) -> float:
    """Fraction of the way from the previous target to the current step's target that the
    command sent now should reach (it is reached at the end of the step)."""
    if control_period >= step_period:
        return 1.0
    return min(1.0, max(0.0, (now - step_start + control_period) / step_period))
