"""Native checkpoint format: ``model.safetensors`` (torch names, float32) + ``octo_ros.json``.

Converting once from the official msgpack layout removes the msgpack decode and the Flax->torch
re-layout from start-up; the safetensors file is memory-mapped at load time.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from .checkpoint import CheckpointNotFoundError, CorruptCheckpointError, flatten
from .config import T5Config, parse_config
from .octo import OctoModule

NATIVE_WEIGHTS = "model.safetensors"
NATIVE_META = "octo_ros.json"
FORMAT = "octo_ros.native"
VERSION = 1


def is_native(path: Union[str, Path]) -> bool:
    path = Path(path)
    return (path / NATIVE_META).is_file()


def example_batch_spec(example_batch: Optional[dict]) -> dict:
    """``{"observation/image_primary": [shape, dtype], ...}`` of an example batch."""
    if not example_batch:
        return {}
    return {k: [list(np.shape(v)), str(np.asarray(v).dtype)] for k, v in flatten(example_batch).items()}


def save_native(
    path: Union[str, Path],
    module: OctoModule,
    dataset_statistics: dict,
    example_spec: Optional[dict] = None,
    source: Optional[dict] = None,
) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in module.state_dict().items()}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": module.cfg.raw,
        "token_counts": module.token_counts,
        "image_channels": module.image_channels,
        "t5": {t.name: asdict(t.t5) for t in module.cfg.task_tokenizers if t.t5 is not None},
        "dataset_statistics": dataset_statistics,
        "example_batch_spec": example_spec or {},
        "source": source or {},
    }
    save_file(state, str(path / NATIVE_WEIGHTS), metadata={"format": FORMAT})
    (path / NATIVE_META).write_text(json.dumps(meta))
    return path


def load_native(path: Union[str, Path]):
    """Returns ``(module, meta)``; the module is in eval mode on the CPU, float32."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta_file, weights = path / NATIVE_META, path / NATIVE_WEIGHTS
    for f in (meta_file, weights):
        if not f.is_file():
            raise CheckpointNotFoundError(f"missing native checkpoint file: {f}")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as exc:
        raise CorruptCheckpointError(f"{meta_file} is not valid JSON ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CorruptCheckpointError(f"{meta_file}: unsupported format {meta.get('format')!r} v{meta.get('version')}")
    cfg = parse_config(meta["config"])
    for t in cfg.task_tokenizers:
        if t.name in meta["t5"]:
            t.t5 = T5Config(**meta["t5"][t.name])
    with torch.device("meta"):
        module = OctoModule(cfg, meta["token_counts"], meta["image_channels"])
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptCheckpointError(f"{weights} is truncated or corrupt ({exc})") from None
    expected = {n: tuple(p.shape) for n, p in module.state_dict().items()}
    for name, shape in expected.items():
        if name not in state:
            raise CorruptCheckpointError(f"{weights} lacks parameter {name}")
        if tuple(state[name].shape) != shape:
            raise CorruptCheckpointError(f"{weights}: parameter {name} has shape {tuple(state[name].shape)}, expected {shape}")
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval(), meta
