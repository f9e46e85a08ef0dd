"""Octo's block-wise transformer: token groups, attention rules, padding masks, encoder blocks."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from functools import lru_cache
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ImageTokenizerConfig, OctoConfig
from .tokenizers import ImageTokenizer, LanguageTokenizer, LowdimObsTokenizer, StemCache, TokenGroup

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
# attention segments


def readouts_last_order(prefix: Tuple[GroupSpec, ...], timestep: Tuple[GroupSpec, ...], horizon: int) -> np.ndarray:
    """Octo position of every token of the sequence the encoder runs on: the prefix, then the
    non-readout tokens of timesteps 0..W-1, then the readout tokens of timesteps 0..W-1."""
    n_prefix = sum(g.n_tokens for g in prefix)
    n_step = sum(g.n_tokens for g in timestep)
    is_readout = np.concatenate([np.full(g.n_tokens, g.name.startswith("readout_")) for g in timestep])
    steps = n_prefix + n_step * np.arange(horizon)[:, None]
    observed = (steps + np.flatnonzero(~is_readout)).reshape(-1)
    readout = (steps + np.flatnonzero(is_readout)).reshape(-1)
    return np.concatenate([np.arange(n_prefix), observed, readout]).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Segment:
    """Query rows ``[q0, q1)`` attend to the keys ``[0, k_end)``, restricted by ``rule`` (bool
    (q1 - q0, k_end), None when every one of those keys is allowed)."""

    q0: int
    q1: int
    k_end: int
    rule: Optional[np.ndarray]


@lru_cache(maxsize=64)
def attention_segments(
    prefix: Tuple[GroupSpec, ...], timestep: Tuple[GroupSpec, ...], horizon: int, correct: bool = True
) -> Tuple[Segment, ...]:
    """Octo's rule mask in readouts-last order (:func:`readouts_last_order`), cut into row segments:
    the prefix, each timestep's non-readout tokens, the readouts.

    Attention does not depend on the order of the tokens, and nothing but readouts attends to
    readouts, so in this order the 1.5 rules are block lower-triangular: the prefix sees exactly the
    prefix and timestep t's tokens see exactly the keys before timestep t + 1.  Those segments need no
    rule mask (and skip the masked upper blocks); the readout rows keep their rule rows.  The legacy
    (Dec-2023) rules are not of that shape; their segments keep their rule rows too.
    """
    order = readouts_last_order(prefix, timestep, horizon)
    rule = block_attention_mask(prefix, timestep, horizon, correct)[order][:, order]
    n_prefix = sum(g.n_tokens for g in prefix)
    n_observed = sum(g.n_tokens for g in timestep if not g.name.startswith("readout_"))
    bounds = [0, n_prefix] + [n_prefix + (t + 1) * n_observed for t in range(horizon)] + [len(order)]
    segments = []
    for q0, q1 in zip(bounds[:-1], bounds[1:]):
        if q1 > q0:
            rows = rule[q0:q1]
            k_end = int(np.flatnonzero(rows.any(0)).max(initial=-1)) + 1
            rows = rows[:, :k_end]
            segments.append(Segment(q0, q1, k_end, None if rows.all() else rows))
    return tuple(segments)


class BlockAttention:
    """Octo's attention pattern for one forward pass: per segment, the additive key bias of its rules
    and of the key padding (None when nothing is masked: the mask-free kernel is faster).

    A row without any valid key gets what the official masked softmax gives it (masked logits are
    the finite float minimum): the uniform average over all tokens.
    """

    def __init__(self, segments: Sequence[Segment], key_valid: torch.Tensor, dtype: torch.dtype):
        self.dtype = dtype
        neg = torch.finfo(dtype).min
        self.parts = []
        for seg in segments:
            allowed = key_valid[:, None, None, : seg.k_end]  # (B, 1, 1, k)
            if seg.rule is not None:
                allowed = allowed & torch.from_numpy(seg.rule).to(key_valid.device)
            bias = None
            if not bool(allowed.all()):
                bias = torch.zeros(allowed.shape, dtype=dtype, device=key_valid.device).masked_fill_(~allowed, neg)
            dead = ~allowed.any(-1, keepdim=True)
            self.parts.append((seg, bias, dead if bool(dead.any()) else None))

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, first_row: int = 0) -> torch.Tensor:
        """Attention output (B, H, L - first_row, hd) of the query rows ``[first_row, L)`` (a segment
        boundary); q, k, v (B, H, L, hd) in any dtype, the kernel runs in ``self.dtype``."""
        out_dtype = q.dtype
        q, k, v = q.to(self.dtype), k.to(self.dtype), v.to(self.dtype)
        outs = []
        for seg, bias, dead in self.parts:
            if seg.q0 < first_row:
                continue
            o = F.scaled_dot_product_attention(q[:, :, seg.q0 : seg.q1], k[:, :, : seg.k_end], v[:, :, : seg.k_end], attn_mask=bias)
            if dead is not None:
                o = torch.where(dead, v.mean(dim=2, keepdim=True), o)
            outs.append(o)
        return torch.cat(outs, dim=2).to(out_dtype)


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

    def forward(self, x: torch.Tensor, attention: BlockAttention, first_row: int = 0) -> torch.Tensor:
        """Self-attention output of the rows ``[first_row, L)`` (keys: all tokens)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        o = attention(q, k, v, first_row)
        return self.out(o.transpose(1, 2).reshape(b, n - first_row, d))


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

    def forward(self, x: torch.Tensor, attention: BlockAttention, first_row: int = 0) -> torch.Tensor:
        """Pre-norm residual block; only the rows ``[first_row, L)`` come out (the last block skips
        the rows nothing reads)."""
        x = x[:, first_row:] + self.attn(self.norm1(x), attention, first_row)
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
        # width of the FiLM conditioning vector (the language tokens, flattened), None without FiLM
        self.film_dim: Optional[int] = None
        if any(getattr(o, "task_film_keys", ()) for o in cfg.observation_tokenizers):
            if not cfg.task_tokenizers or cfg.task_tokenizers[0].t5 is None:
                raise ValueError("a FiLM-conditioned image tokenizer needs the language encoder (task tokenizer with a T5)")
            language = cfg.task_tokenizers[0]
            self.film_dim = token_counts[f"task_{language.name}"] * language.t5.d_model
        for tcfg in cfg.task_tokenizers:
            tok = LanguageTokenizer(tcfg)
            self.task_tokenizers[tcfg.name] = tok
            group = f"task_{tcfg.name}"
            self.projections[group] = nn.Linear(tok.token_dim, d)
            self.pos_embeddings[group] = nn.Parameter(torch.zeros(1, token_counts[group], d))
        for ocfg in cfg.observation_tokenizers:
            group = f"obs_{ocfg.name}"
            if isinstance(ocfg, ImageTokenizerConfig):
                tok = ImageTokenizer(ocfg, image_channels[ocfg.name], self.film_dim if ocfg.task_film_keys else None)
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
        # dtype of the attention kernel (None: the model dtype).  float32 is both faster and more
        # accurate than torch's bf16 CPU flash attention on CPUs without AMX.
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
        stem_cache: Optional[StemCache] = None,
    ) -> Dict[str, TokenGroup]:
        """Token groups after the transformer (all of them, or with ``readouts_only`` just the
        readout groups: the last block then computes only the readout rows, which nothing else
        reads).  ``stem_cache`` reuses the image-stem outputs of frames seen in the previous call."""
        cfg = self.cfg
        readouts = list(cfg.readouts) if readouts is None else list(readouts)
        first = next(v for v in observations.values() if isinstance(v, torch.Tensor))
        batch, horizon = first.shape[:2]
        if horizon > cfg.max_horizon:
            raise ValueError(f"window size {horizon} exceeds the model's max_horizon {cfg.max_horizon}")

        # token groups: (spec, tokens, mask); prefix (B, n, D), per timestep (B, W, n, D)
        prefix, language = self._task_groups(observations, tasks)
        film = self._film_conditioning(tasks, language, batch, first.device)
        observed = self._observation_groups(observations, tasks, timestep_pad_mask, horizon, stem_cache, film)
        if not observed:
            raise ValueError("no observation tokenizer found its inputs; check the observation keys")
        if cfg.repeat_task_tokens:
            for spec, tokens, mask in prefix:
                repeated = GroupSpec(f"obs_{spec.name}", spec.n_tokens, OBS_RULES)
                observed.append((repeated, tokens[:, None].expand(-1, horizon, -1, -1), mask[:, None].expand(-1, horizon, -1)))
        readout = []
        for name in readouts:
            group = f"readout_{name}"
            tokens = self.pos_embeddings[group][:, :horizon].expand(batch, -1, -1, -1)
            mask = torch.ones(tokens.shape[:-1], dtype=torch.bool, device=tokens.device)
            readout.append((GroupSpec(group, tokens.shape[2], readout_rules(group)), tokens, mask))

        # the sequence in readouts-last order: prefix | non-readout tokens of t = 0..W-1 | readouts of t = 0..W-1
        sections = [(prefix, False), (observed, True), (readout, True)]
        tokens, valid = [], []
        for groups, per_step in sections:
            if groups:
                t = torch.cat([t for _, t, _ in groups], dim=-2)  # (B, [W,] n, D)
                m = torch.cat([m for _, _, m in groups], dim=-1)  # (B, [W,] n)
                tokens.append(t.flatten(1, 2) if per_step else t)
                valid.append(m.flatten(1, 2) if per_step else m)
        x = torch.cat(tokens, dim=1).to(self.dtype)
        key_valid = torch.cat(valid, dim=1)
        specs = lambda groups: tuple(spec for spec, _, _ in groups)  # noqa: E731
        segments = attention_segments(specs(prefix), specs(observed + readout), horizon, cfg.use_correct_attention)
        attention = BlockAttention(segments, key_valid, self.attention_dtype or self.dtype)

        first_out = x.shape[1] - horizon * sum(s.n_tokens for s, _, _ in readout) if readouts_only else 0
        for i, block in enumerate(self.blocks):
            x = block(x, attention, first_out if i == len(self.blocks) - 1 else 0)
        x = self.encoder_norm(x)

        outputs: Dict[str, TokenGroup] = {}
        start = 0  # position of the section in the sequence
        for groups, per_step in sections:
            width = sum(s.n_tokens for s, _, _ in groups)
            size = width * horizon if per_step else width
            if start >= first_out:
                part = x[:, start - first_out : start - first_out + size]
                if per_step:
                    part = part.reshape(batch, horizon, width, part.shape[-1])
                offset = 0
                for spec, _, mask in groups:
                    outputs[spec.name] = TokenGroup(part[..., offset : offset + spec.n_tokens, :], mask)
                    offset += spec.n_tokens
            start += size
        return outputs

    def _task_groups(self, observations: Mapping, tasks: Mapping):
        """The projected task groups, and the language tokenizer's own output (None without an instruction)."""
        groups, language = [], None
        for name, tok in self.task_tokenizers.items():
            out = tok(observations, tasks)
            if out is not None:
                language = out
                group = f"task_{name}"
                tokens = self.projections[group](out.tokens.to(self.dtype)) + self.pos_embeddings[group]
                groups.append((GroupSpec(group, tokens.shape[1], TASK_RULES), tokens, out.mask))
        return groups, language

    def _film_conditioning(self, tasks: Mapping, language: Optional[TokenGroup], batch: int, device) -> Optional[torch.Tensor]:
        """The FiLM conditioning vector (B, L * D): the instruction's encoder tokens (B, L, D),
        flattened, as the official ``ImageTokenizer`` reshapes a task input to (B, -1) for its FiLM
        layer; zeros for a row without an instruction."""
        if self.film_dim is None:
            return None
        if language is None:
            return torch.zeros(batch, self.film_dim, device=device)
        present = language.mask.float()[..., None]  # pad_mask_dict: the row has an instruction
        cond = (language.tokens.float() * present).flatten(1)
        if cond.shape[1] != self.film_dim:
            raise ValueError(f"FiLM conditioning of width {cond.shape[1]}: the model takes {self.film_dim} "
                             "(its language token count times the encoder width)")
        return cond

    def _observation_groups(self, observations: Mapping, tasks: Mapping, timestep_pad_mask: torch.Tensor, horizon: int,
                            stem_cache: Optional[StemCache], film: Optional[torch.Tensor] = None):
        groups = []
        for name, tok in self.obs_tokenizers.items():
            if isinstance(tok, ImageTokenizer):
                out = tok(observations, tasks, stem_cache, film if tok.cfg.task_film_keys else None)
            else:
                out = tok(observations, tasks)
            if out is not None:
                group = f"obs_{name}"
                tokens = self.projections[group](out.tokens.to(self.dtype)) + self.pos_embeddings[group][:, :horizon]
                mask = out.mask & timestep_pad_mask.bool()[:, :, None]
                groups.append((GroupSpec(group, tokens.shape[2], OBS_RULES), tokens, mask))
        return groups

