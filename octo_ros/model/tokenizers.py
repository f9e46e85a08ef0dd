"""Observation and task tokenizers: image stems with early goal fusion, low-dim (proprio), language."""

from __future__ import annotations

import logging
import re
from typing import Mapping, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import ImageTokenizerConfig, LanguageTokenizerConfig, LowdimTokenizerConfig, StemConfig
from .t5 import T5Encoder

log = logging.getLogger(__name__)


class TokenGroup(NamedTuple):
    tokens: torch.Tensor  # (..., n_tokens, dim)
    mask: torch.Tensor  # (..., n_tokens) bool


def regex_filter(patterns: Sequence[str], keys) -> list:
    return [k for k in keys if any(re.match(p, k) for p in patterns)]


def proper_pad_mask(shape, pad_mask_dict: Optional[Mapping], keys: Sequence[str], device) -> torch.Tensor:
    """Octo's ``generate_proper_pad_mask``: any of the keys valid; all valid when the info is missing."""
    if pad_mask_dict is None or not all(k in pad_mask_dict for k in keys):
        return torch.ones(shape, dtype=torch.bool, device=device)
    mask = torch.stack([torch.as_tensor(pad_mask_dict[k], device=device).bool() for k in keys], -1).any(-1)
    return mask[..., None].expand(shape)


class StdConv2d(nn.Conv2d):
    """Convolution with weight standardisation (per output channel, population std, eps on the std)."""

    def standardized_weight(self) -> torch.Tensor:
        w = self.weight.float()
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        std = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True).sqrt()
        return ((w - mean) / (std + 1e-5)).to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding)


class FilmConditioning(nn.Module):
    """Octo's ``FilmConditioning``: per-channel ``x * (1 + scale(c)) + shift(c)`` from a conditioning
    vector ``c``, both projections starting at zero (the layer starts as the identity).  The official
    code names them the other way round (``projected_cond_add`` multiplies): ``scale`` is its
    ``Dense_0``, ``shift`` its ``Dense_1``."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.scale = nn.Linear(cond_dim, channels)
        self.shift = nn.Linear(cond_dim, channels)
        for p in (*self.scale.parameters(), *self.shift.parameters()):
            nn.init.zeros_(p)

    def forward(self, x_nchw: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cond = cond.to(x_nchw.dtype)
        return x_nchw * (1 + self.scale(cond)[:, :, None, None]) + self.shift(cond)[:, :, None, None]


class SmallStem(nn.Module):
    """Octo's ``SmallStem``: k weight-standardised conv + GroupNorm(32) + ReLU stages, then a patchify
    conv, FiLM-conditioned where ``use_film`` (``film_dim``: the conditioning vector's width)."""

    def __init__(self, cfg: StemConfig, in_channels: int, film_dim: Optional[int] = None):
        super().__init__()
        self.cfg = cfg
        convs, norms = [], []
        c = in_channels
        for k, s, f, p in zip(cfg.kernel_sizes, cfg.strides, cfg.features, cfg.padding):
            convs.append(StdConv2d(c, f, k, stride=s, padding=p))
            norms.append(nn.GroupNorm(32, f, eps=1e-6))
            c = f
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        patch = cfg.patch_size // 16
        self.embedding = nn.Conv2d(c, cfg.num_features, patch, stride=patch)
        if cfg.use_film and film_dim is None:
            raise ValueError(f"{cfg.name} uses FiLM: give the conditioning width")
        self.film = FilmConditioning(film_dim, cfg.num_features) if cfg.use_film else None
        self._cache_kernels()
        self.register_load_state_dict_post_hook(lambda module, _: module._cache_kernels())

    def train(self, mode: bool = True) -> "SmallStem":
        """Eval mode keeps the standardised kernels (non-persistent buffers, so they follow
        ``.to()``); training standardises in every forward, differentiably."""
        super().train(mode)
        self._cache_kernels()
        return self

    def _cache_kernels(self) -> None:
        with torch.no_grad():
            for i, conv in enumerate(self.convs):
                cached = None if self.training or conv.weight.is_meta else conv.standardized_weight().detach()
                self.register_buffer(f"kernel_{i}", cached, persistent=False)

    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        x = img.float()
        if self.cfg.img_norm_type == "imagenet":
            x = x / 255.0
            mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).repeat(x.shape[1] // 3)
            std = torch.tensor([0.229, 0.224, 0.225], device=x.device).repeat(x.shape[1] // 3)
            return (x - mean[:, None, None]) / std[:, None, None]
        return x / 127.5 - 1.0

    def forward(self, img_nchw: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """uint8 (N, C, H, W) [and FiLM conditioning (N, film_dim)] -> features (N, num_features, h, w)."""
        if (cond is not None) != (self.film is not None):
            raise ValueError(f"{self.cfg.name}: a conditioning input is needed iff the stem uses FiLM")
        dtype = self.embedding.weight.dtype
        x = self.normalize(img_nchw).to(dtype)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            w = conv.standardized_weight() if self.training else getattr(self, f"kernel_{i}")
            x = F.conv2d(x, w.to(dtype), conv.bias, conv.stride, conv.padding)
            x = F.relu(norm(x))
        x = self.embedding(x)
        return x if self.film is None else self.film(x, cond)


class StemCache:
    """Stem outputs of the previous call, so that a frame that moved from window position w + 1 to
    w between consecutive calls (or stayed at w) is not encoded again.

    The stem sees one frame at a time (no position dependence), so its output is a function of its
    input alone: the frame with the goal image fused into it (and, with FiLM, the conditioning
    vector: a new instruction encodes every frame again).  Inputs are compared exactly with a
    copy kept from the previous call (a caller reusing its buffers cannot fool it).  Belongs to one
    model in inference (its weights and dtype fixed) and one caller at a time: the policy owns it.
    """

    def __init__(self):
        # tokenizer name -> (stem inputs (B, W, H, W, C), conditioning (B, D) or None, features (B, W, F, h, w))
        self._previous: dict = {}

    def __call__(self, name: str, stem: "SmallStem", frames: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """uint8 stem inputs (B, W, H, W, C) [FiLM conditioning (B, D)] -> features (B, W, F, h, w)."""
        b, w = frames.shape[:2]
        hits = {}
        previous = self._previous.get(name)
        if previous is not None and previous[0].shape == frames.shape and _same(previous[1], cond):
            seen, _, seen_features = previous
            for i in range(b):
                for t in range(w):
                    for s in (t + 1, t):  # moved one position towards the past, or stayed
                        if s < w and torch.equal(frames[i, t], seen[i, s]):
                            hits[(i, t)] = seen_features[i, s]
                            break
        todo = [(i, t) for i in range(b) for t in range(w) if (i, t) not in hits]
        if todo:
            todo_cond = None if cond is None else cond[[i for i, _ in todo]]
            fresh = stem(torch.stack([frames[i, t] for i, t in todo]).permute(0, 3, 1, 2), todo_cond)
            hits.update(zip(todo, fresh))
        features = torch.stack([torch.stack([hits[(i, t)] for t in range(w)]) for i in range(b)])
        self._previous[name] = (frames.clone(), None if cond is None else cond.clone(), features)
        return features


class ImageTokenizer(nn.Module):
    """Octo's ``ImageTokenizer``; ``film_dim`` is the width of its FiLM conditioning vector, which
    the caller passes as ``film`` (B, D)."""

    def __init__(self, cfg: ImageTokenizerConfig, in_channels: int, film_dim: Optional[int] = None):
        super().__init__()
        self.cfg = cfg
        self.stem = SmallStem(cfg.stem, in_channels, film_dim)

    def forward(self, observations: Mapping, tasks: Mapping, stem_cache: Optional[StemCache] = None,
                film: Optional[torch.Tensor] = None) -> Optional[TokenGroup]:
        obs_keys = regex_filter(self.cfg.obs_stack_keys, sorted(k for k in observations if _is_array(observations[k])))
        if not obs_keys:
            return None
        x = torch.cat([observations[k] for k in obs_keys], dim=-1)  # (B, W, H, W, C) uint8
        if self.cfg.task_stack_keys:
            tasks = dict(tasks)
            for k in regex_filter(self.cfg.task_stack_keys, [k for k in observations if _is_array(observations[k])]):
                if k not in tasks:
                    tasks[k] = torch.zeros_like(observations[k][:, 0])
            task_keys = regex_filter(self.cfg.task_stack_keys, sorted(k for k in tasks if _is_array(tasks[k])))
            if not task_keys:
                raise ValueError(f"no task inputs match {self.cfg.task_stack_keys}")
            goal = torch.cat([tasks[k] for k in task_keys], dim=-1)
            x = torch.cat([x, goal[:, None].expand(-1, x.shape[1], -1, -1, -1).to(x.dtype)], dim=-1)
        b, w, h, wi, c = x.shape
        if stem_cache is None:
            cond = None if film is None else film[:, None].expand(-1, w, -1).reshape(b * w, -1)
            feats = self.stem(x.reshape(b * w, h, wi, c).permute(0, 3, 1, 2), cond)
        else:
            feats = stem_cache(self.cfg.name, self.stem, x, film).flatten(0, 1)
        # NHWC flatten; contiguous whatever the features' layout, so the projection rounds alike either way
        tokens = feats.permute(0, 2, 3, 1).reshape(b, w, -1, feats.shape[1]).contiguous()
        if self.cfg.proper_pad_mask:
            mask = proper_pad_mask(tokens.shape[:-1], observations.get("pad_mask_dict"), obs_keys, tokens.device)
        else:
            mask = torch.ones(tokens.shape[:-1], dtype=torch.bool, device=tokens.device)
        return TokenGroup(tokens, mask)


class LowdimObsTokenizer(nn.Module):
    """Non-spatial observations (proprio): one token per dimension, raw value or one-hot bin."""

    def __init__(self, cfg: LowdimTokenizerConfig):
        super().__init__()
        self.cfg = cfg
        eps = 1e-6
        if cfg.bin_type == "uniform":
            thresholds = torch.linspace(cfg.low, cfg.high, cfg.n_bins + 1, dtype=torch.float32, device="cpu")
        else:
            thresholds = torch.special.ndtri(torch.linspace(eps, 1 - eps, cfg.n_bins + 1, dtype=torch.float64, device="cpu")).float()
        self._thresholds = thresholds  # float32, deliberately not a buffer: never cast to low precision

    @property
    def token_dim(self) -> int:
        return self.cfg.n_bins if self.cfg.discretize else 1

    def forward(self, observations: Mapping, tasks: Mapping) -> Optional[TokenGroup]:
        keys = sorted(k for k in observations if _is_array(observations[k]))
        if not regex_filter(self.cfg.obs_keys, keys):
            return None
        inputs = []
        for pattern in self.cfg.obs_keys:
            for k in keys:
                if re.match(pattern, k):
                    if observations[k].ndim != 3:
                        raise ValueError(f"{k} must have shape (batch, window, dim), got {tuple(observations[k].shape)}")
                    inputs.append(observations[k].float())
        x = torch.cat(inputs, dim=-1)
        if self.cfg.discretize:
            if self.cfg.bin_type == "uniform":
                x = x.clamp(self.cfg.low + 1e-6, self.cfg.high - 1e-6)
            thr = self._thresholds.to(x.device)
            hit = (x[..., None] < thr[1:]) & (x[..., None] >= thr[:-1])
            tokens = F.one_hot(hit.to(torch.uint8).argmax(-1), self.cfg.n_bins).float()
        else:
            tokens = x[..., None]
        return TokenGroup(tokens, torch.ones(tokens.shape[:-1], dtype=torch.bool, device=x.device))


class LanguageTokenizer(nn.Module):
    """T5 encoder over ``tasks['language_instruction']`` = {input_ids, attention_mask} or precomputed embeddings."""

    def __init__(self, cfg: LanguageTokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.t5 = T5Encoder(cfg.t5) if cfg.t5 is not None else None

    @property
    def token_dim(self) -> int:
        return self.cfg.t5.d_model

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.t5 is None:
            raise ValueError("received language token ids but the model has no language encoder")
        return self.t5(input_ids, attention_mask)

    def forward(self, observations: Mapping, tasks: Mapping) -> Optional[TokenGroup]:
        lang = tasks.get("language_instruction")
        if lang is None:
            return None
        if isinstance(lang, Mapping):
            tokens = self.encode(lang["input_ids"], lang["attention_mask"])
        else:
            tokens = lang if lang.ndim == 3 else lang[:, None, :]
        if self.cfg.proper_pad_mask:
            mask = proper_pad_mask(tokens.shape[:-1], tasks.get("pad_mask_dict"), ("language_instruction",), tokens.device)
        else:
            mask = torch.ones(tokens.shape[:-1], dtype=torch.bool, device=tokens.device)
        return TokenGroup(tokens, mask)


def _same(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> bool:
    """Both None, or equal tensors of one shape."""
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and torch.equal(a, b)


def _is_array(x) -> bool:
    return isinstance(x, torch.Tensor)
