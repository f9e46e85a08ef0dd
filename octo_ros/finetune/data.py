"""Training samples as Octo's data pipeline builds them (``octo/data/traj_transforms.py``,
``utils/goal_relabeling.py``, ``utils/task_augmentation.py``), one (episode, step) at a time.

For step ``t`` of an episode of length ``T`` with window ``W`` and action horizon ``H``:

* observation history ``idx[w] = t - W + 1 + w``; ``timestep_pad_mask = idx >= 0``; negative
  indices repeat the first frame;
* action chunk ``chunk[j, h] = action[min(j + h, T - 1)]`` gathered at the history indices,
  giving ``(W, H, A)``;
* goal relabelling ``uniform``: goal step ``int(u * (T - t) + t)`` (``u ~ U[0, 1)``), clipped to
  ``T - 1``; the goal images are that step's frames, ``task.timestep`` the goal step;
* task augmentation ``delete_task_conditioning(keep_image_prob)``: only when there is both
  language and a goal image; keeps the goal images with that probability (or when the
  language is empty) and then drops the language, else drops the goal images and sets the goal
  step to ``T - 1``;
* ``task_completed[w, h] = goal - (t - (W + 1) + w + h) <= 0`` (written exactly as the official
  code), ``action_pad_mask = not task_completed`` on every action dimension.

Actions and proprio are normalised with the dataset statistics before chunking, as Octo does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from octo_ros.model.normalization import normalize

from .lerobot import EpisodeData, FrameStore

# modality -> (goal relabelling strategy, keep_image_prob), as scripts/configs/finetune_config.py
TASK_MODALITIES = {
    "image_conditioned": ("uniform", 1.0),
    "language_conditioned": (None, 0.0),
    "multimodal": ("uniform", 0.5),
}


@dataclass(frozen=True)
class CameraSource:
    """Model camera ``name`` (``image_<name>``) read from ``stores[i]`` for the i-th dataset."""

    name: str
    size_hw: tuple
    goal: bool  # whether the image tokenizer stacks a goal image (task_stack_keys)


@dataclass
class PreparedEpisode:
    action: np.ndarray  # (T, A) normalised
    proprio: Optional[np.ndarray]  # (T, P) normalised
    instruction_id: int  # row of the instruction table; language is absent when the text is ""
    frames: Dict[str, tuple]  # camera name -> (FrameStore, slots (T,))

    @property
    def length(self) -> int:
        return len(self.action)


class InstructionTable:
    """Distinct instructions (index 0 is always the empty string: 'no language')."""

    def __init__(self):
        self.texts: List[str] = [""]
        self._ids = {"": 0}

    def id(self, text: str) -> int:
        if text not in self._ids:
            self._ids[text] = len(self.texts)
            self.texts.append(text)
        return self._ids[text]


def prepare_episodes(episodes: Sequence[EpisodeData], stores: Mapping[int, Mapping[str, FrameStore]],
                     cameras: Mapping[str, str], statistics: Mapping, instructions: InstructionTable,
                     use_proprio: bool) -> List[PreparedEpisode]:
    """Normalise and link frames.  ``stores[id(dataset)][model camera name]``; ``cameras``: model
    camera name -> dataset camera key."""
    out = []
    for ep in episodes:
        action = normalize(ep.action, statistics["action"])
        proprio = normalize(ep.state, statistics["proprio"]) if use_proprio else None
        frames = {}
        for name, key in cameras.items():
            frames[name] = (stores[id(ep.dataset)][name], ep.frame_slots[key])
        out.append(PreparedEpisode(action.astype(np.float32), None if proprio is None else proprio.astype(np.float32),
                                   instructions.id(ep.instruction), frames))
    return out


class SampleBuilder:
    """Builds batches of training samples (numpy) from prepared episodes."""

    def __init__(self, episodes: Sequence[PreparedEpisode], cameras: Sequence[CameraSource], window: int,
                 horizon: int, modality: str, task_augmentation: bool, language: bool):
        if modality not in TASK_MODALITIES:
            raise ValueError(f"unknown task modality {modality!r}; choose from {sorted(TASK_MODALITIES)}")
        self.episodes = list(episodes)
        self.cameras = list(cameras)
        self.window, self.horizon = int(window), int(horizon)
        self.relabeling, self.keep_image_prob = TASK_MODALITIES[modality]
        self.task_augmentation = task_augmentation
        self.language = language
        lengths = np.array([e.length for e in self.episodes], np.int64)
        self._episode_of = np.repeat(np.arange(len(self.episodes)), lengths)
        self._step_of = np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else np.zeros(0, np.int64)

    @property
    def num_transitions(self) -> int:
        return len(self._episode_of)

    def draw(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """Transitions drawn uniformly (Octo shuffles single frames after unbatching)."""
        return rng.integers(0, self.num_transitions, size=batch_size)

    def batch(self, transitions: Sequence[int], rng: np.random.Generator, train: bool) -> dict:
        samples = [self.sample(int(self._episode_of[i]), int(self._step_of[i]), rng, train) for i in transitions]
        return collate(samples)

    def sample(self, e: int, t: int, rng: np.random.Generator, train: bool) -> dict:
        ep = self.episodes[e]
        T, W, H = ep.length, self.window, self.horizon
        hist = t - W + 1 + np.arange(W)
        tpm = hist >= 0
        hist = np.maximum(hist, 0)

        # task: goal relabelling, then (training only) task augmentation
        goal_step = T - 1
        goal_images = self.relabeling == "uniform"
        if goal_images:
            goal_step = min(int(rng.random() * (T - t) + t), T - 1)
        lang_id = ep.instruction_id if self.language else 0
        goal_valid = goal_images
        lang_valid = lang_id != 0
        if train and self.task_augmentation and goal_images and self.language:
            keep_images = rng.random() < self.keep_image_prob or not lang_valid
            if keep_images:
                lang_id, lang_valid = 0, False
            else:
                goal_valid = False
                goal_step = T - 1

        obs: dict = {"timestep_pad_mask": tpm, "timestep": hist.astype(np.int32)}
        task: dict = {"language_id": lang_id, "timestep": np.int32(goal_step),
                      "pad_mask_dict": {"language_instruction": lang_valid}}
        for cam in self.cameras:
            store, slots = ep.frames[cam.name]
            obs[f"image_{cam.name}"] = store.frames[slots[hist]]
            if cam.goal:
                key = f"image_{cam.name}"
                task[key] = store.frames[slots[goal_step]] if goal_valid else np.zeros(cam.size_hw + (3,), np.uint8)
                task["pad_mask_dict"][key] = goal_valid
        if ep.proprio is not None:
            obs["proprio"] = ep.proprio[hist]

        idx = np.minimum(hist[:, None] + np.arange(H)[None, :], T - 1)  # (W, H)
        action = ep.action[idx]
        w, h = np.meshgrid(np.arange(W), np.arange(H), indexing="ij")
        completed = (goal_step - (t - (W + 1) + w + h)) <= 0
        obs["task_completed"] = completed
        pad = np.broadcast_to(~completed[:, :, None], action.shape).copy()
        return {"observation": obs, "task": task, "action": action, "action_pad_mask": pad}


def collate(samples: Sequence[dict]) -> dict:
    def stack(items):
        first = items[0]
        if isinstance(first, Mapping):
            return {k: stack([it[k] for it in items]) for k in first}
        return np.stack([np.asarray(it) for it in items])

    return stack(list(samples))


def split_episodes(n: int, val_fraction: float, rng_seed: int) -> tuple:
    """(train, val) episode positions: a seeded random ``val_fraction`` held out (at least one
    episode when there are two or more), the rest for training."""
    order = np.random.default_rng(rng_seed).permutation(n)
    n_val = int(np.ceil(n * val_fraction)) if n >= 2 and val_fraction > 0 else 0
    n_val = min(n_val, n - 1)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
