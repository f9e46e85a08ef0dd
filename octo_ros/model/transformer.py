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

from .config import ImageTokenizerConfig, LowdimTokenizerConfig, OctoConfig
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


class MultiHeadAttention(nn.Module):
    """Flax ``MultiHeadDotProductAttention`` with q/k/v fused into one projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor], rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Self-attention; with ``rows`` only those query positions are computed (keys: all tokens)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rows is not None:
            q, bias = q[:, :, rows], bias[:, :, rows]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(o.transpose(1, 2).reshape(b, q.shape[2], d))


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

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor], rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        if rows is not None:  # last block when only some outputs (the readouts) are needed
            x = x[:, rows] + self.attn(self.norm1(x), bias, rows)
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

        rule = block_attention_mask(
            tuple(s for s, _, _ in prefix), tuple(s for s, _, _ in steps), horizon, cfg.use_correct_attention
        )
        allowed = torch.from_numpy(rule).to(x.device)[None, None] & key_valid[:, None, None, :]
        bias = torch.zeros(allowed.shape, dtype=dtype, device=x.device)
        bias.masked_fill_(~allowed, torch.finfo(dtype).min)

        n_prefix = sum(s.n_tokens for s, _, _ in prefix)
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
            x = x.reshape(batch, horizon, -1, x.shape[-1])
            outputs: Dict[str, TokenGroup] = {}
            off = 0
            for r, (_, n) in zip(readouts, picks):
                group = f"readout_{r}"
                outputs[group] = TokenGroup(x[:, :, off : off + n], torch.ones(x.shape[:2] + (n,), dtype=torch.bool, device=x.device))
                off += n
            return outputs

        for block in self.blocks:
            x = block(x, bias)
        x = self.encoder_norm(x)

        # ---- split back into groups
        outputs: Dict[str, TokenGroup] = {}
        offset = 0
        for spec, _, mask in prefix:
            outputs[spec.name] = TokenGroup(x[:, offset : offset + spec.n_tokens], mask)
            offset += spec.n_tokens
        step_out = x[:, n_prefix:].reshape(batch, horizon, -1, x.shape[-1])
        offset = 0
        for spec, _, mask in steps:
            outputs[spec.name] = TokenGroup(step_out[:, :, offset : offset + spec.n_tokens], mask)
            offset += spec.n_tokens
        return outputs
