"""A minimal T5 encoder (the language encoder inside Octo's ``LanguageTokenizer``).

Matches Hugging Face's Flax ``FlaxT5EncoderModel`` in inference mode: RMS layer norm (no bias,
no mean subtraction), unscaled dot-product attention with a bucketed relative position bias that
is computed in the first block and shared by all blocks, ReLU feed-forward, no biases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import T5Config


class T5LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 / torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(self.weight.dtype)


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5 bucketing of ``key_pos - query_pos``."""
    num_buckets //= 2
    buckets = (relative_position > 0).long() * num_buckets
    rel = relative_position.abs()
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    large = max_exact + (
        torch.log(rel.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).long()
    large = torch.minimum(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, rel, large)


class T5SelfAttention(nn.Module):
    def __init__(self, cfg: T5Config, has_relative_bias: bool):
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.n_heads, self.d_kv = cfg.num_heads, cfg.d_kv
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        self.num_buckets = cfg.relative_attention_num_buckets
        self.max_distance = cfg.relative_attention_max_distance
        self.relative_attention_bias = nn.Embedding(self.num_buckets, cfg.num_heads) if has_relative_bias else None

    def compute_bias(self, length: int, device) -> torch.Tensor:
        pos = torch.arange(length, device=device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]  # (1, H, Lq, Lk)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        split = lambda t: t.view(b, n, self.n_heads, self.d_kv).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) + bias
        weights = torch.softmax(scores, dim=-1).to(v.dtype)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(b, n, -1)
        return self.o(out)


class T5Block(nn.Module):
    def __init__(self, cfg: T5Config, has_relative_bias: bool):
        super().__init__()
        self.attn_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.attn = T5SelfAttention(cfg, has_relative_bias)
        self.ff_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.wi = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), bias)
        return x + self.wo(F.relu(self.wi(self.ff_norm(x))))


class T5Encoder(nn.Module):
    """``last_hidden_state = T5Encoder(input_ids, attention_mask)``, shape (B, L, d_model)."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        if cfg.feed_forward_proj != "relu":
            raise ValueError(f"only the ReLU T5 feed-forward is supported, got {cfg.feed_forward_proj!r}")
        self.cfg = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(T5Block(cfg, i == 0) for i in range(cfg.num_layers))
        self.final_layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.shared(input_ids.long())
        length = input_ids.shape[1]
        bias = self.blocks[0].attn.compute_bias(length, x.device).float()
        if attention_mask is not None:
            neg = torch.finfo(torch.float32).min
            pad = torch.where(attention_mask[:, None, None, :] > 0, 0.0, neg).to(torch.float32)
            bias = bias + pad
        for block in self.blocks:
            x = block(x, bias)
        return self.final_layer_norm(x)
