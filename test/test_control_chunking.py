import math

import numpy as np
import pytest

from octo_ros.control.chunking import ChunkExecutionConfig, ChunkExecutor, ExecutionMode, StepKind, step_progress


def rhc(k=2, period=0.2):
    return ChunkExecutor(ChunkExecutionConfig(step_period_s=period, mode=ExecutionMode.RECEDING_HORIZON, exec_horizon=k), 1)


def te(horizon=4, k=0.0):
    cfg = ChunkExecutionConfig(step_period_s=0.2, mode=ExecutionMode.TEMPORAL_ENSEMBLE, ensemble_horizon=horizon, exp_weight=k)
    return ChunkExecutor(cfg, 1)


def chunk(*values):
    return np.array(values, dtype=float)[:, None]


def test_receding_horizon_executes_first_k_then_holds():
    ex = rhc(k=2)
    assert ex.add_chunk(chunk(10, 11, 12, 13), stamp=0.0, now=0.0).accepted
    d0 = ex.tick(0.0)
    assert d0.kind is StepKind.NEW_STEP and d0.action[0] == 10
    assert ex.tick(0.1).kind is StepKind.CONTINUE
    assert ex.tick(0.2).action[0] == 11
    held = ex.tick(0.4)
    assert held.kind is StepKind.HOLD and "exhausted" in held.reason  # action 12 is never used


def test_latency_alignment_skips_actions_whose_time_passed():
    ex = rhc(k=4)
    ex.add_chunk(chunk(10, 11, 12, 13), stamp=0.0, now=0.45)
    d = ex.tick(0.45)  # 0.45 s after the observation → index 2
    assert d.action[0] == 12
    # a late tick skips a whole step: 0.45 + 0.2 would be 13, at 0.86 the chunk is used up
    assert ex.tick(0.86).kind is StepKind.HOLD


def test_newer_chunk_replaces_older_in_receding_horizon_and_old_actions_are_not_replayed():
    ex = rhc(k=4)
    ex.add_chunk(chunk(10, 11, 12, 13), stamp=0.0, now=0.0)
    assert ex.tick(0.0).action[0] == 10
    ex.add_chunk(chunk(20, 21, 22, 23), stamp=0.15, now=0.19)
    d = ex.tick(0.2)  # index floor(0.05/0.2) = 0 of the new chunk
    assert d.action[0] == 20
    assert not ex.add_chunk(chunk(30, 31), stamp=0.1, now=0.25).accepted  # older than newest


def test_temporal_ensemble_matches_octo_weighting():
    k = 0.5
    ex = te(horizon=3, k=k)
    ex.add_chunk(chunk(1, 2, 3), stamp=0.0, now=0.0)
    ex.add_chunk(chunk(10, 20, 30), stamp=0.2, now=0.2)
    ex.add_chunk(chunk(100, 200, 300), stamp=0.4, now=0.4)
    d = ex.tick(0.4)
    preds = np.array([3.0, 20.0, 100.0])  # oldest first, each chunk's prediction for t = 0.4
    w = np.exp(-k * np.arange(3))
    assert d.action[0] == pytest.approx(float(np.sum(w / w.sum() * preds)))


def test_temporal_ensemble_default_is_plain_mean_and_respects_horizon():
    ex = te(horizon=2)
    ex.add_chunk(chunk(1, 2, 3), stamp=0.0, now=0.0)
    ex.add_chunk(chunk(10, 20, 30), stamp=0.2, now=0.2)
    ex.add_chunk(chunk(100, 200, 300), stamp=0.4, now=0.4)  # only the last 2 chunks are kept
    assert ex.tick(0.4).action[0] == pytest.approx((20 + 100) / 2)
    # 0.8 s: chunk@0.2 index 3 (beyond horizon 2), chunk@0.4 index 2 (beyond) → hold
    assert ex.tick(0.6).action[0] == pytest.approx(200)
    assert ex.tick(0.8).kind is StepKind.HOLD


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_chunks_are_rejected(bad):
    ex = rhc()
    result = ex.add_chunk(chunk(1, bad), stamp=0.0, now=0.0)
    assert not result.accepted and "non-finite" in result.reason
    assert ex.tick(0.0).kind is StepKind.HOLD


def test_future_and_misshapen_chunks_are_rejected():
    ex = rhc()
    assert not ex.add_chunk(chunk(1), stamp=1.0, now=0.0).accepted
    assert not ex.add_chunk(np.zeros((2, 3)), stamp=0.0, now=0.0).accepted
    assert not ex.add_chunk(chunk(1), stamp=math.nan, now=0.0).accepted


def test_at_most_one_step_per_period_after_interrupt():
    ex = rhc(k=4)
    ex.add_chunk(chunk(10, 11, 12, 13), stamp=0.0, now=0.0)
    assert ex.tick(0.0).kind is StepKind.NEW_STEP
    ex.interrupt()
    assert ex.tick(0.05).kind is StepKind.HOLD  # slot of step 0 not over
    assert ex.tick(0.2).action[0] == 11


def test_step_progress_reaches_target_at_end_of_step():
    assert step_progress(0.0, 0.0, 0.2, 0.2) == 1.0
    assert step_progress(0.0, 0.0, 0.2, 0.008) == pytest.approx(0.04)
    assert step_progress(0.192, 0.0, 0.2, 0.008) == pytest.approx(1.0)
