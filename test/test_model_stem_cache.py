"""Stem outputs reused across consecutive windows (OctoPolicy.stem_cache): same results, fewer frames encoded."""

import numpy as np
import pytest

from octo_ros.model import OctoPolicy
from octo_ros.model.testing import make_random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path, _ = make_random_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", "tiny", seed=4)
    return path


def _count_stem_frames(policy):
    counts = []
    for name, tok in policy.module.transformer.obs_tokenizers.items():
        tok.stem.register_forward_hook(lambda m, args, out, name=name: counts.append((name, out.shape[0])))
    return counts


def test_shifted_windows_encode_each_frame_once(checkpoint):
    cached, fresh = OctoPolicy.load(checkpoint), OctoPolicy.load(checkpoint)
    fresh.stem_cache = None
    rng = np.random.default_rng(0)
    batch = 2
    primary = rng.integers(0, 256, (batch, 5, 64, 64, 3), dtype=np.uint8)  # frames 0..4 of a stream
    wrist = rng.integers(0, 256, (batch, 5, 32, 32, 3), dtype=np.uint8)
    tasks_c = cached.create_tasks(goals={"image_primary": rng.integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8)})
    tasks_f = fresh.create_tasks(goals={"image_primary": tasks_c["image_primary"]})
    counts = _count_stem_frames(cached)
    buffer = {"image_primary": np.empty((batch, 2, 64, 64, 3), np.uint8), "image_wrist": np.empty((batch, 2, 32, 32, 3), np.uint8)}
    for step in range(4):
        # the caller reuses one buffer for every window (a ring buffer would do the same)
        buffer["image_primary"][:] = primary[:, step:step + 2]
        buffer["image_wrist"][:] = wrist[:, step:step + 2]
        a = cached.sample_actions(buffer, tasks_c, seed=step)
        b = fresh.sample_actions({k: v.copy() for k, v in buffer.items()}, tasks_f, seed=step)
        # float32 rounding only (a frame encoded in another stem batch); the random head amplifies it
        np.testing.assert_allclose(a.readout_embedding, b.readout_embedding, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a.normalized, b.normalized, rtol=0, atol=1e-4)
    # first window: both frames of each row; then only the new frame of each row
    assert counts == [("primary", 2 * batch), ("wrist", 2 * batch)] + [("primary", batch), ("wrist", batch)] * 3


def test_new_goal_or_new_frames_are_encoded(checkpoint):
    policy = OctoPolicy.load(checkpoint)
    rng = np.random.default_rng(1)
    obs = {"image_primary": rng.integers(0, 256, (1, 2, 64, 64, 3), dtype=np.uint8),
           "image_wrist": rng.integers(0, 256, (1, 2, 32, 32, 3), dtype=np.uint8)}
    goal = {"image_primary": rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)}
    counts = _count_stem_frames(policy)
    policy.sample_actions(obs, policy.create_tasks(goals=goal), seed=0)
    counts.clear()
    policy.sample_actions(obs, policy.create_tasks(goals=goal), seed=0)
    assert counts == []  # same window, same goal: nothing to encode
    other_goal = {"image_primary": rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)}
    policy.sample_actions(obs, policy.create_tasks(goals=other_goal), seed=0)
    assert counts == [("primary", 2)]  # the goal is fused into the primary stem's input; wrist unchanged
    counts.clear()
    one = {k: v[:, -1:] for k, v in obs.items()}  # another window size: nothing matches
    policy.sample_actions(one, policy.create_tasks(goals=other_goal), seed=0)
    assert counts == [("primary", 1), ("wrist", 1)]
