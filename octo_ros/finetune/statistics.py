"""``dataset_statistics.json`` of the training data, in Octo's flat single-dataset layout."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from octo_ros.recording.export import gripper_mask

from .lerobot import EpisodeData

CONSTANT_STD = 1e-6  # population std at or below this: the dimension never varied in the data


def _six(x: np.ndarray) -> dict:
    """mean, std (population), max, min, p99, p01 per dimension, as ``get_dataset_statistics``."""
    x = np.asarray(x, dtype=np.float64)
    return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "max": x.max(0).tolist(), "min": x.min(0).tolist(),
            "p99": np.quantile(x, 0.99, axis=0).tolist(), "p01": np.quantile(x, 0.01, axis=0).tolist()}


def compute_statistics(episodes: Sequence[EpisodeData], action_names: List[str], proprio: bool,
                       action_mask: Optional[Sequence[bool]] = None) -> dict:
    """Statistics over every transition of ``episodes``.  ``action.mask`` is False for gripper
    dimensions (by name, else the last of Octo's 7-D convention), which stay unnormalised."""
    actions = np.concatenate([e.action for e in episodes])
    mask = list(action_mask) if action_mask is not None else gripper_mask(action_names, actions.shape[1])
    if len(mask) != actions.shape[1]:
        raise ValueError(f"action mask has {len(mask)} entries for {actions.shape[1]}-D actions")
    stats = {"action": {**_six(actions), "mask": [bool(m) for m in mask]}}
    if proprio:
        stats["proprio"] = _six(np.concatenate([e.state for e in episodes]))
        # A dimension constant over the data (a joint the operator never turned, a gripper never
        # closed) is scaled by 1, not by its std 0: (x - mean) / (0 + 1e-8) would turn a
        # micro-radian of IK or encoder noise at deployment into a value of hundreds, which the
        # model never saw (in training the dimension is 0 either way).
        stats["proprio"]["std"] = [s if s > CONSTANT_STD else 1.0 for s in stats["proprio"]["std"]]
    stats["num_transitions"] = int(len(actions))
    stats["num_trajectories"] = int(len(episodes))
    return stats
