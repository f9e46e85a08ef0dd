"""Dataset statistics selection and (un)normalisation of actions / proprio, as in Octo."""

from __future__ import annotations

from enum import Enum
from typing import Mapping, Optional, Union

import numpy as np


class NormalizationType(str, Enum):
    NORMAL = "normal"  # mean / std
    BOUNDS = "bounds"  # p01 / p99 -> [-1, 1]


def is_flat_statistics(stats: Mapping) -> bool:
    """Fine-tunes store ``{"action": ..., "proprio": ...}`` instead of ``{dataset: {...}}``."""
    return "action" in stats and isinstance(stats["action"], Mapping) and "mean" in stats["action"]


def dataset_keys(stats: Mapping) -> list:
    if is_flat_statistics(stats):
        return []
    return sorted(k for k, v in stats.items() if isinstance(v, Mapping) and "action" in v)


def select_statistics(stats: Mapping, dataset_key: Optional[str] = None) -> Mapping:
    """The entry holding ``action`` (and maybe ``proprio``) statistics for ``dataset_key``.

    Flat statistics (single-dataset fine-tunes) are returned as they are; for multi-dataset
    statistics the key is required unless there is exactly one dataset.
    """
    if is_flat_statistics(stats):
        if dataset_key not in (None, "", "default"):
            raise KeyError(f"this checkpoint has single-dataset statistics; dataset key {dataset_key!r} is not valid")
        return stats
    keys = dataset_keys(stats)
    if dataset_key is None:
        if len(keys) == 1:
            return stats[keys[0]]
        raise KeyError(f"dataset key required; available: {keys}")
    if dataset_key not in keys:
        raise KeyError(f"unknown dataset key {dataset_key!r}; available: {keys}")
    return stats[dataset_key]


def _mask(stats: Mapping, n: int) -> np.ndarray:
    if stats.get("mask") is not None:
        return np.asarray(stats["mask"], dtype=bool)
    return np.ones(n, dtype=bool)


def unnormalize_actions(
    actions: np.ndarray,
    stats: Mapping,
    normalization_type: Union[str, NormalizationType] = NormalizationType.NORMAL,
) -> np.ndarray:
    """Octo's ``sample_actions`` un-normalisation: dims with ``mask=False`` are returned as produced."""
    ntype = NormalizationType(normalization_type)
    key = "mean" if ntype is NormalizationType.NORMAL else "p01"
    n = len(stats[key])
    mask = _mask(stats, n)
    a = np.asarray(actions, dtype=np.float32)[..., : len(mask)]
    if ntype is NormalizationType.NORMAL:
        mean, std = (np.asarray(stats[k], dtype=np.float32) for k in ("mean", "std"))
        out = a * std + mean
    else:
        lo, hi = (np.asarray(stats[k], dtype=np.float32) for k in ("p01", "p99"))
        out = (a + 1) * (hi - lo) / 2 + lo
    return np.where(mask, out, a).astype(np.float32)


def normalize(x: np.ndarray, stats: Mapping, normalization_type=NormalizationType.NORMAL) -> np.ndarray:
    """Forward normalisation (training convention), e.g. for proprio inputs of fine-tuned models."""
    ntype = NormalizationType(normalization_type)
    x = np.asarray(x, dtype=np.float32)
    key = "mean" if ntype is NormalizationType.NORMAL else "p01"
    mask = _mask(stats, len(stats[key]))
    if ntype is NormalizationType.NORMAL:
        mean, std = (np.asarray(stats[k], dtype=np.float32) for k in ("mean", "std"))
        out = (x - mean) / (std + 1e-8)
    else:
        lo, hi = (np.asarray(stats[k], dtype=np.float32) for k in ("p01", "p99"))
        out = np.clip(2 * (x - lo) / (hi - lo + 1e-8) - 1, -1, 1)
    return np.where(mask, out, x).astype(np.float32)
