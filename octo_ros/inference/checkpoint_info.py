"""Facts about a checkpoint that nodes other than the policy need, without loading the model:
the image size of each camera input (from the example batch) and whether it takes Octo's average
crop, the datasets it has statistics for, and a content hash (the evidence recorded with every episode)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from octo_ros.model.checkpoint import read_example_batch
from octo_ros.model.native import NATIVE_META, example_batch_spec, is_native


def _native_meta(path: Path) -> dict:
    return json.loads((path / NATIVE_META).read_text())


def _example_spec(path: str | Path) -> dict:
    """``{"group/key": (shape, dtype)}`` of the checkpoint's example batch, native or official."""
    path = Path(path)
    if is_native(path):
        return _native_meta(path).get("example_batch_spec", {})
    return example_batch_spec(read_example_batch(path))


def checkpoint_image_sizes(path: str | Path) -> dict[str, tuple[int, int]]:
    """``{"image_primary": (height, width), ...}`` of an official or native checkpoint; {} when it
    has no example batch."""
    spec = _example_spec(path)
    sizes = {}
    for key, (shape, _) in spec.items():
        group, _, name = key.partition("/")
        if group == "observation" and name.startswith("image_") and "/" not in name:
            sizes[name] = (int(shape[2]), int(shape[3]))  # (batch, window, height, width, channels)
    return sizes


def checkpoint_average_crop(path: str | Path) -> dict[str, bool]:
    """``{"image_primary": True, ...}``: which camera inputs were trained with the random resized
    crop (so take its average at deployment), where the checkpoint says: an octo_ros fine-tune
    records it, an official checkpoint's ``config.json`` lists ``random_resized_crop`` in its
    ``image_augment_kwargs``. {} when it does not say."""
    path = Path(path)
    if is_native(path):
        return dict(_native_meta(path).get("source", {}).get("average_crop", {}))
    config = path / "config.json"
    augment = json.loads(config.read_text()).get("dataset_kwargs", {}).get("frame_transform_kwargs", {}).get(
        "image_augment_kwargs", {}) if config.is_file() else {}
    return {f"image_{name}": "random_resized_crop" in kwargs.get("augment_order", ())
            for name, kwargs in augment.items() if isinstance(kwargs, dict)}


def checkpoint_observation_keys(path: str | Path) -> set[str]:
    """The observation inputs of an official or native checkpoint (``image_primary``, ``proprio``, ...)."""
    return {key.split("/")[1] for key in _example_spec(path) if key.startswith("observation/") and key.count("/") == 1}


def checkpoint_dataset_keys(path: str | Path) -> list[str]:
    """The dataset-statistics keys of an official or native checkpoint ([] when it has none)."""
    path = Path(path)
    if is_native(path):
        return list(_native_meta(path).get("dataset_statistics", {}))
    stats = path / "dataset_statistics.json"
    return list(json.loads(stats.read_text())) if stats.is_file() else []


def checkpoint_content_hash(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """``sha256:<hex>`` over every file of the checkpoint folder (relative path and content, in
    path order): equal hashes, equal checkpoints, wherever they were copied."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as handle:
            while block := handle.read(chunk_bytes):
                digest.update(block)
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()
