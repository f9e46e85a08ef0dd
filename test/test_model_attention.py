"""The encoder's one attention path against the definition: Octo's dense rule mask and key padding."""

import pytest
import torch
import torch.nn.functional as F

from octo_ros.model.config import StemConfig
from octo_ros.model.tokenizers import SmallStem
from octo_ros.model.transformer import (
    OBS_RULES,
    TASK_RULES,
    BlockAttention,
    GroupSpec,
    attention_segments,
    block_attention_mask,
    readout_rules,
    readouts_last_order,
)

PREFIX = (GroupSpec("task_language", 3, TASK_RULES),)
STEP = (
    GroupSpec("obs_primary", 4, OBS_RULES),
    GroupSpec("obs_wrist", 2, OBS_RULES),
    GroupSpec("obs_task_language", 3, OBS_RULES),
    GroupSpec("readout_action", 1, readout_rules("readout_action")),
)
HORIZON = 3


def _dense_reference(q, k, v, rule, key_valid):
    """What the official code computes: one (L, L) mask, masked logits at the float32 minimum."""
    allowed = torch.from_numpy(rule)[None, None] & key_valid[:, None, None, :]
    bias = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


@pytest.mark.parametrize("correct", [True, False])
def test_segments_reproduce_the_dense_mask(correct):
    rule = block_attention_mask(PREFIX, STEP, HORIZON, correct)
    n = rule.shape[0]
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, n, 8, generator=gen) for _ in range(3))
    key_valid = torch.ones(3, n, dtype=torch.bool)
    key_valid[1, :3] = False  # no language: the prefix rows have no valid key at all
    key_valid[2, 3:3 + 10] = False  # first timestep padded
    ref = _dense_reference(q, k, v, rule, key_valid)

    order = torch.from_numpy(readouts_last_order(PREFIX, STEP, HORIZON))
    segments = attention_segments(PREFIX, STEP, HORIZON, correct)
    attention = BlockAttention(segments, key_valid[:, order], torch.float32)
    got = attention(q[:, :, order], k[:, :, order], v[:, :, order])
    torch.testing.assert_close(got, ref[:, :, order], rtol=0, atol=2e-6)
    # only the readout rows (the last segment), as the last block computes them
    readouts = segments[-1]
    tail = attention(q[:, :, order], k[:, :, order], v[:, :, order], first_row=readouts.q0)
    torch.testing.assert_close(tail, ref[:, :, order][:, :, readouts.q0:], rtol=0, atol=2e-6)


def test_release_rules_need_no_mask_outside_the_readouts():
    """The 1.5 rules in readouts-last order: prefix and timesteps attend to a key prefix, unmasked."""
    segments = attention_segments(PREFIX, STEP, HORIZON, True)
    n_step = 9
    assert [(s.q0, s.q1, s.k_end) for s in segments[:-1]] == [(0, 3, 3)] + [
        (3 + t * n_step, 3 + (t + 1) * n_step, 3 + (t + 1) * n_step) for t in range(HORIZON)
    ]
    assert all(s.rule is None for s in segments[:-1])
    assert segments[-1].rule is not None and segments[-1].q1 == 3 + HORIZON * 10


def _stem():
    torch.manual_seed(0)
    return SmallStem(StemConfig(features=(32, 32, 32, 32)), 3)


def test_stem_caches_kernels_in_eval_and_trains_differentiably():
    stem = _stem()
    img = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    stem.train()
    out = stem(img)
    out.sum().backward()
    assert stem.convs[0].weight.grad is not None and stem.convs[0].weight.grad.abs().sum() > 0
    stem.eval()
    with torch.no_grad():
        torch.testing.assert_close(stem(img), out.detach(), rtol=0, atol=1e-5)
        stem.kernel_0.copy_(torch.randn_like(stem.kernel_0))  # eval reads the cached kernels, not the weights
        assert not torch.allclose(stem(img), out.detach(), atol=1e-3)


def test_stem_cache_follows_loaded_weights():
    stem = _stem().eval()
    other = _stem()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    stem.load_state_dict(other.state_dict())
    torch.testing.assert_close(stem.kernel_2, other.convs[2].standardized_weight(), rtol=0, atol=0)
    assert "kernel_0" not in stem.state_dict()  # derived, never saved
    half = stem.to(torch.bfloat16)
    assert half.kernel_1.dtype == torch.bfloat16
    assert not half.training
