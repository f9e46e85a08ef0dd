"""Octo's block-wise transformer: token groups, attention rules, padding masks, encoder blocks."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from functools import lru_cache
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ImageTokenizerConfig, OctoConfig
from .tokenizers import ImageTokenizer, LanguageTokenizer, LowdimObsTokenizer, TokenGroup

PREFIX_TIMESTEP = -1


# --------------------------------------------------------------------------------------------
# attention rules


@dataclass(frozen=True)
class GroupSpec:
    """Name, token count and attention rules of one token group (rules: patterns with CAUSAL)."""

    name: str
    n_tokens: int
    attends_to: Tuple[str, ...]  # fnmatch patterns of key groups, each with the CAUSAL rule


TASK_RULES = ("task_*",)
OBS_RULES = ("task_*", "obs_*")


def readout_rules(group_name: str) -> Tuple[str, ...]:
    return ("task_*", "obs_*", group_name)


@lru_cache(maxsize=64)
def block_attention_mask(
    prefix: Tuple[GroupSpec, ...], timestep: Tuple[GroupSpec, ...], horizon: int, correct: bool = True
) -> np.ndarray:
    """Boolean (L, L) rule mask: ``mask[q, k]`` iff query token q may attend to key token k.

    A query group attends to a key group when the key group's name matches one of its patterns and
    the key's timestep is <= the query's (prefix tokens have timestep -1).  ``correct=False``
    reproduces the off-by-one group assignment of the December-2023 checkpoints.
    """
    side = "right" if correct else "left"

    def metadata(groups: Sequence[GroupSpec], n_total: int, ts_fn):
        ends = np.cumsum([g.n_tokens for g in groups])
        pos = np.searchsorted(ends, np.arange(n_total), side=side)
        return [(groups[p], ts_fn(i)) for i, p in enumerate(pos)]

    n_prefix = sum(g.n_tokens for g in prefix)
    n_step = sum(g.n_tokens for g in timestep)
    tokens = []
    if prefix:
        tokens += metadata(prefix, n_prefix, lambda i: PREFIX_TIMESTEP)
    for t in range(horizon):
        tokens += metadata(timestep, n_step, lambda i, t=t: t)
    # collapse into group-level blocks for speed
    names = sorted({g.name for g, _ in tokens})
    group_rules = {g.name: g.attends_to for g, _ in tokens}
    allowed = {(a, b): any(fnmatch(b, p) for p in group_rules[a]) for a in names for b in names}
    q_name = np.array([names.index(g.name) for g, _ in tokens])
    q_ts = np.array([ts for _, ts in tokens])
    allowed_m = np.array([[allowed[(a, b)] for b in names] for a in names])
    mask = allowed_m[q_name[:, None], q_name[None, :]] & (q_ts[None, :] <= q_ts[:, None])
    return mask


# --------------------------------------------------------------------------------------------
# encoder


@lru_cache(maxsize=64)
def block_layout(
    prefix: Tuple[GroupSpec, ...], timestep: Tuple[GroupSpec, ...], horizon: int, correct: bool = True
) -> Optional[tuple]:
    """Token order and attention segments that reproduce :func:`block_attention_mask` without a mask.

    The readout tokens are moved behind all other tokens (nothing but readouts attends to them), which
    makes the rule mask block lower-triangular: the prefix rows see exactly the prefix, the rows of
    timestep t exactly the prefix and the timesteps <= t, i.e. a contiguous key range ``[0, k_end)``.
    Returns ``(perm, segments, readout_rule)``: ``perm`` new position -> original position,
    ``segments`` ``((q0, q1, k_end), ...)`` for the non-readout rows, and the (R, L) rule rows of the
    readouts (new order) -- or None when the rules do not have that structure (legacy masks).
    """
    rule = block_attention_mask(prefix, timestep, horizon, correct)
    n_prefix = sum(g.n_tokens for g in prefix)
    n_step = sum(g.n_tokens for g in timestep)
    is_readout = np.concatenate([np.full(g.n_tokens, g.name.startswith("readout_")) for g in timestep]) if timestep else np.zeros(0, bool)
    obs_idx = [n_prefix + t * n_step + np.flatnonzero(~is_readout) for t in range(horizon)]
    ro_idx = [n_prefix + t * n_step + np.flatnonzero(is_readout) for t in range(horizon)]
    perm = np.concatenate([np.arange(n_prefix)] + obs_idx + ro_idx).astype(np.int64)
    r = rule[perm][:, perm]
    segments, q0 = [], 0
    for n in [n_prefix] + [len(i) for i in obs_idx]:
        if n:
            q1 = q0 + n
            expect = np.zeros(len(perm), bool)
            expect[:q1] = True
            if not (r[q0:q1] == expect).all():
                return None
            segments.append((q0, q1, q1))
            q0 = q1
    return perm, tuple(segments), r[q0:]


class AttentionPlan:
    """Per-forward attention of Octo's block-causal layout (see :func:`block_layout`).

    Non-readout rows are computed segment by segment on their key range (mask-free unless some keys
    are padding); the readout rows use their (R, L) rule rows.  Rows without any valid key reproduce
    the masked-softmax result of the full mask: a uniform average over all tokens.
    """

    def __init__(self, segments, readout_rule: np.ndarray, key_valid: torch.Tensor, dtype: torch.dtype, compute_dtype=None):
        self.compute_dtype = compute_dtype if compute_dtype not in (None, dtype) else None
        dtype = compute_dtype or dtype
        b, n = key_valid.shape
        neg = torch.finfo(dtype).min
        self.readout_start = n - readout_rule.shape[0]
        self.parts = []
        for q0, q1, k1 in segments:
            kv = key_valid[:, :k1]
            bias = None
            if not bool(kv.all()):
                bias = torch.zeros((b, 1, 1, k1), dtype=dtype, device=kv.device).masked_fill_(~kv[:, None, None], neg)
            dead = ~kv.any(-1)
            self.parts.append((q0, q1, k1, bias, dead.view(b, 1, 1, 1) if bool(dead.any()) else None))
        if readout_rule.shape[0]:
            allowed = torch.from_numpy(readout_rule).to(key_valid.device)[None, None] & key_valid[:, None, None, :]
            bias = torch.zeros(allowed.shape, dtype=dtype, device=key_valid.device).masked_fill_(~allowed, neg)
            dead = ~allowed.any(-1, keepdim=True)
            self.parts.append((self.readout_start, n, n, bias, dead if bool(dead.any()) else None))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, first_row: int = 0) -> torch.Tensor:
        """Attention output for the query rows ``[first_row, L)`` (a segment boundary)."""
        out_dtype = q.dtype
        if self.compute_dtype is not None:
            q, k, v = q.to(self.compute_dtype), k.to(self.compute_dtype), v.to(self.compute_dtype)
        outs = []
        for q0, q1, k1, bias, dead in self.parts:
            if q0 < first_row:
                continue
            o = F.scaled_dot_product_attention(q[:, :, q0:q1], k[:, :, :k1], v[:, :, :k1], attn_mask=bias)
            if dead is not None:
                o = torch.where(dead, v.mean(dim=2, keepdim=True), o)
            outs.append(o)
        o = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        return o.to(out_dtype)


class MultiHeadAttention(nn.Module):
    """Flax ``MultiHeadDotProductAttention`` with q/k/v fused into one projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias, rows=None) -> torch.Tensor:
        """Self-attention; with ``rows`` only those query positions are computed (keys: all tokens).

        ``bias`` is an additive (B, 1, L, L) mask, or an :class:`AttentionPlan` (then ``rows`` is the
        first query row to compute)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if isinstance(bias, AttentionPlan):
            o = bias.attend(q, k, v, rows or 0)
        else:
            if rows is not None:
                q, bias = q[:, :, rows], bias[:, :, rows]
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(o.transpose(1, 2).reshape(b, o.shape[2], d))


class MlpBlock(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MlpBlock(dim, mlp_dim)

    def forward(self, x: torch.Tensor, bias, rows=None) -> torch.Tensor:
        if rows is not None:  # last block when only some outputs (the readouts) are needed
            picked = x[:, rows:] if isinstance(rows, int) else x[:, rows]
            x = picked + self.attn(self.norm1(x), bias, rows)
        else:
            x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


# --------------------------------------------------------------------------------------------
# Octo transformer


class OctoTransformer(nn.Module):
    """Tokenizes observations and tasks, runs the block-wise transformer, returns token groups.

    ``token_counts`` gives the number of tokens per group name (``task_language``, ``obs_primary``,
    ...), which fixes the position-embedding tables; ``in_dims`` the tokenizer output width for
    each projected group.
    """

    def __init__(self, cfg: OctoConfig, token_counts: Mapping[str, int], image_channels: Mapping[str, int]):
        super().__init__()
        self.cfg = cfg
        d = cfg.token_embedding_size
        self.task_tokenizers = nn.ModuleDict()
        self.obs_tokenizers = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        self.pos_embeddings = nn.ParameterDict()
        for tcfg in cfg.task_tokenizers:
            tok = LanguageTokenizer(tcfg)
            self.task_tokenizers[tcfg.name] = tok
            group = f"task_{tcfg.name}"
            self.projections[group] = nn.Linear(tok.token_dim, d)
            self.pos_embeddings[group] = nn.Parameter(torch.zeros(1, token_counts[group], d))
        for ocfg in cfg.observation_tokenizers:
            group = f"obs_{ocfg.name}"
            if isinstance(ocfg, ImageTokenizerConfig):
                tok = ImageTokenizer(ocfg, image_channels[ocfg.name])
                in_dim = ocfg.stem.num_features
            else:
                tok = LowdimObsTokenizer(ocfg)
                in_dim = tok.token_dim
            self.obs_tokenizers[ocfg.name] = tok
            self.projections[group] = nn.Linear(in_dim, d)
            self.pos_embeddings[group] = nn.Parameter(torch.zeros(1, cfg.max_horizon, token_counts[group], d))
        for name, n in cfg.readouts.items():
            self.pos_embeddings[f"readout_{name}"] = nn.Parameter(torch.zeros(1, cfg.max_horizon, n, d))
        t = cfg.transformer
        self.blocks = nn.ModuleList(EncoderBlock(d, t.num_attention_heads, t.mlp_dim) for _ in range(t.num_layers))
        self.encoder_norm = nn.LayerNorm(d, eps=1e-6)
        # attention by timestep segments on a readouts-last token order (no L x L mask); False: full mask
        self.block_attention = True
        # dtype of the attention kernel of the block path (None: the model dtype).  float32 is both faster
        # and more accurate than torch's bf16 CPU flash attention on CPUs without AMX.
        self.attention_dtype: Optional[torch.dtype] = torch.float32

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder_norm.weight.dtype

    def forward(
        self,
        observations: Mapping,
        tasks: Mapping,
        timestep_pad_mask: torch.Tensor,
        readouts: Optional[Sequence[str]] = None,
        readouts_only: bool = False,
    ) -> Dict[str, TokenGroup]:
        """Token groups after the transformer.  ``readouts_only`` computes the last block for the
        readout tokens only (nothing attends to the final outputs, so readouts are unchanged) and
        returns just the readout groups."""
        cfg = self.cfg
        dtype = self.dtype
        readouts = list(cfg.readouts) if readouts is None else list(readouts)
        first = next(v for v in observations.values() if isinstance(v, torch.Tensor))
        batch, horizon = first.shape[:2]
        if horizon > cfg.max_horizon:
            raise ValueError(f"window size {horizon} exceeds the model's max_horizon {cfg.max_horizon}")
        tpm = timestep_pad_mask.bool()

        prefix: List[Tuple[GroupSpec, torch.Tensor, torch.Tensor]] = []
        for name, tok in self.task_tokenizers.items():
            out = tok(observations, tasks)
            if out is None:
                continue
            group = f"task_{name}"
            tokens = self.projections[group](out.tokens.to(dtype)) + self.pos_embeddings[group]
            prefix.append((GroupSpec(group, tokens.shape[1], TASK_RULES), tokens, out.mask))

        steps: List[Tuple[GroupSpec, torch.Tensor, torch.Tensor]] = []
        for name, tok in self.obs_tokenizers.items():
            out = tok(observations, tasks)
            if out is None:
                continue
            group = f"obs_{name}"
            tokens = self.projections[group](out.tokens.to(dtype)) + self.pos_embeddings[group][:, :horizon]
            mask = out.mask & tpm[:, :, None]
            steps.append((GroupSpec(group, tokens.shape[2], OBS_RULES), tokens, mask))
        if not steps:
            raise ValueError("no observation tokenizer found its inputs; check the observation keys")
        if cfg.repeat_task_tokens:
            for spec, tokens, mask in prefix:
                steps.append(
                    (
                        GroupSpec(f"obs_{spec.name}", spec.n_tokens, OBS_RULES),
                        tokens[:, None].expand(-1, horizon, -1, -1),
                        mask[:, None].expand(-1, horizon, -1),
                    )
                )
        for name in readouts:
            group = f"readout_{name}"
            pos = self.pos_embeddings[group][:, :horizon]
            tokens = pos.expand(batch, -1, -1, -1)
            mask = torch.ones(tokens.shape[:-1], dtype=torch.bool, device=tokens.device)
            steps.append((GroupSpec(group, tokens.shape[2], readout_rules(group)), tokens, mask))

        # ---- assemble the sequence: prefix, then per timestep all timestep groups
        seq = [t for _, t, _ in prefix]
        valid = [m for _, _, m in prefix]
        step_tokens = torch.cat([t for _, t, _ in steps], dim=2)  # (B, W, n_step, D)
        step_mask = torch.cat([m for _, _, m in steps], dim=2)
        seq.append(step_tokens.reshape(batch, -1, step_tokens.shape[-1]))
        valid.append(step_mask.reshape(batch, -1))
        x = torch.cat(seq, dim=1).to(dtype)
        key_valid = torch.cat(valid, dim=1)

        prefix_specs = tuple(s for s, _, _ in prefix)
        step_specs = tuple(s for s, _, _ in steps)
        n_prefix = sum(s.n_tokens for s in prefix_specs)
        layout = block_layout(prefix_specs, step_specs, horizon, cfg.use_correct_attention) if self.block_attention else None
        if layout is not None:
            return self._forward_blocks(x, key_valid, layout, prefix, steps, batch, horizon, readouts, readouts_only)

        rule = block_attention_mask(prefix_specs, step_specs, horizon, cfg.use_correct_attention)
        allowed = torch.from_numpy(rule).to(x.device)[None, None] & key_valid[:, None, None, :]
        bias = torch.zeros(allowed.shape, dtype=dtype, device=x.device)
        bias.masked_fill_(~allowed, torch.finfo(dtype).min)

        if readouts_only:
            n_step = step_tokens.shape[2]
            offsets, off = {}, 0
            for spec, _, _ in steps:
                offsets[spec.name] = (off, spec.n_tokens)
                off += spec.n_tokens
            picks = [offsets[f"readout_{r}"] for r in readouts]
            rows = torch.tensor(
                [n_prefix + t * n_step + o + j for t in range(horizon) for o, n in picks for j in range(n)],
                device=x.device,
            )
            for block in self.blocks[:-1]:
                x = block(x, bias)
            x = self.encoder_norm(self.blocks[-1](x, bias, rows))
            return self._readout_groups(x, batch, horizon, readouts, picks)

        for block in self.blocks:
            x = block(x, bias)
        x = self.encoder_norm(x)
        return self._split_groups(x, prefix, steps, batch, horizon)

    def _readout_groups(self, x: torch.Tensor, batch: int, horizon: int, readouts, picks) -> Dict[str, TokenGroup]:
        """Readout rows (t-major, then readout groups) -> {readout_<name>: TokenGroup}."""
        x = x.reshape(batch, horizon, -1, x.shape[-1])
        outputs: Dict[str, TokenGroup] = {}
        off = 0
        for r, (_, n) in zip(readouts, picks):
            group = f"readout_{r}"
            outputs[group] = TokenGroup(x[:, :, off : off + n], torch.ones(x.shape[:2] + (n,), dtype=torch.bool, device=x.device))
            off += n
        return outputs

    def _forward_blocks(self, x, key_valid, layout, prefix, steps, batch, horizon, readouts, readouts_only):
        """The transformer on the reordered sequence of :func:`block_layout` (same results as the mask)."""
        perm_np, segments, readout_rule = layout
        perm = torch.from_numpy(perm_np).to(x.device)
        x = x.index_select(1, perm)
        plan = AttentionPlan(segments, readout_rule, key_valid.index_select(1, perm), x.dtype, self.attention_dtype)
        if readouts_only:
            offsets, off = {}, 0
            for spec, _, _ in steps:
                if spec.name.startswith("readout_"):
                    offsets[spec.name] = (off, spec.n_tokens)
                    off += spec.n_tokens
            picks = [offsets[f"readout_{r}"] for r in readouts]
            if [offsets[f"readout_{r}"] for r in readouts] == sorted(offsets.values()) and len(picks) == len(offsets):
                for block in self.blocks[:-1]:
                    x = block(x, plan)
                x = self.encoder_norm(self.blocks[-1](x, plan, plan.readout_start))
                return self._readout_groups(x, batch, horizon, readouts, [(0, n) for _, n in picks])
        for block in self.blocks:
            x = block(x, plan)
        x = self.encoder_norm(x)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(len(perm), device=x.device)
        x = x.index_select(1, inverse)
        if readouts_only:
            n_prefix = sum(s.n_tokens for s, _, _ in prefix)
            step_out = x[:, n_prefix:].reshape(batch, horizon, -1, x.shape[-1])
            outputs, offset = {}, 0
            for spec, _, mask in steps:
                if spec.name in {f"readout_{r}" for r in readouts}:
                    outputs[spec.name] = TokenGroup(step_out[:, :, offset : offset + spec.n_tokens], mask)
                offset += spec.n_tokens
            return outputs
        return self._split_groups(x, prefix, steps, batch, horizon)

    @staticmethod
    def _split_groups(x, prefix, steps, batch, horizon) -> Dict[str, TokenGroup]:
        outputs: Dict[str, TokenGroup] = {}
        offset = 0
        for spec, _, mask in prefix:
            outputs[spec.name] = TokenGroup(x[:, offset : offset + spec.n_tokens], mask)
            offset += spec.n_tokens
        step_out = x[:, offset:].reshape(batch, horizon, -1, x.shape[-1])
        offset = 0
        for spec, _, mask in steps:
            outputs[spec.name] = TokenGroup(step_out[:, :, offset : offset + spec.n_tokens], mask)
            offset += spec.n_tokens
        return outputs
