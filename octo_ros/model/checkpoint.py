"""Reading and writing Octo checkpoints in the official on-disk layout, without JAX.

Layout (what ``OctoModel.save_pretrained`` writes)::

    <root>/config.json
    <root>/dataset_statistics.json
    <root>/example_batch.msgpack
    <root>/<step>/default/checkpoint      # msgpack: nested dict, arrays as ExtType 1
    <root>/<step>/default/_METADATA       # orbax tree metadata (optional for reading)

Checkpoints written by newer orbax (user fine-tunes) keep the arrays in an OCDBT or zarr store
next to ``_METADATA`` instead; those are read with ``tensorstore`` when it is installed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import msgpack
import numpy as np

log = logging.getLogger(__name__)

EXT_NDARRAY = 1
EXT_NPSCALAR = 3
CHUNKED = "__msgpack_chunked_array__"
PLACEHOLDER = "PLACEHOLDER://"


class CheckpointError(Exception):
    """A checkpoint cannot be read."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A file or step directory the checkpoint needs is missing."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file exists but cannot be decoded (e.g. truncated)."""


# --------------------------------------------------------------------------------------------
# msgpack (flax / orbax encoding)


def _dtype(name: str):
    if name == "bfloat16":
        try:
            import ml_dtypes  # noqa: WPS433
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CheckpointError("bfloat16 arrays need the ml_dtypes package") from exc
        return ml_dtypes.bfloat16
    return np.dtype(name)


def _ext_hook(code: int, data: bytes):
    if code in (EXT_NDARRAY, EXT_NPSCALAR):
        shape, dtype, buf = msgpack.unpackb(data, raw=True)
        dtype = dtype.decode() if isinstance(dtype, bytes) else dtype
        arr = np.frombuffer(buf, dtype=_dtype(dtype))
        return arr.reshape(shape) if code == EXT_NDARRAY else arr[0]
    if code == 2:  # complex scalar
        re_, im = msgpack.unpackb(data)
        return complex(re_, im)
    return msgpack.ExtType(code, data)


def _unchunk(tree):
    if isinstance(tree, dict):
        if tree.get(CHUNKED):
            chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
            shape = [tree["shape"][str(i)] for i in range(len(tree["shape"]))]
            return np.concatenate([c.reshape(-1) for c in chunks]).reshape(shape)
        return {k: _unchunk(v) for k, v in tree.items()}
    return tree


def read_msgpack(path: Union[str, Path]) -> dict:
    """Decode a flax/orbax msgpack file into a nested dict of numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"missing checkpoint file: {path}")
    data = path.read_bytes()
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (ValueError, msgpack.exceptions.UnpackException, msgpack.exceptions.ExtraData, TypeError) as exc:
        raise CorruptCheckpointError(f"{path} is truncated or not a msgpack checkpoint ({exc})") from None
    if not isinstance(tree, dict):
        raise CorruptCheckpointError(f"{path} does not hold a parameter tree")
    return _unchunk(tree)


def _pack_array(a: np.ndarray) -> msgpack.ExtType:
    a = np.ascontiguousarray(a)
    payload = msgpack.packb((list(a.shape), a.dtype.name, a.tobytes()), use_bin_type=True)
    return msgpack.ExtType(EXT_NDARRAY, payload)


def _encode(tree):
    if isinstance(tree, Mapping):
        return {str(k): _encode(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        return _pack_array(tree)
    if isinstance(tree, np.generic):
        payload = msgpack.packb(((), tree.dtype.name, tree.tobytes()), use_bin_type=True)
        return msgpack.ExtType(EXT_NPSCALAR, payload)
    return tree


def write_msgpack(tree: Mapping, path: Union[str, Path]) -> None:
    """Encode a nested dict of numpy arrays the way flax's ``msgpack_serialize`` does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(msgpack.packb(_encode(tree), use_bin_type=True))
    os.replace(tmp, path)


def flatten(tree: Mapping, prefix: str = "", sep: str = "/") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out


def unflatten(flat: Mapping[str, Any], sep: str = "/") -> dict:
    tree: dict = {}
    for key, v in flat.items():
        node = tree
        parts = key.split(sep)
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return tree


# --------------------------------------------------------------------------------------------
# OCDBT / zarr (newer orbax) via tensorstore


def _read_tensorstore_leaf(item_dir: Path, name: str, zarr3: bool):
    try:
        import tensorstore as ts
    except ImportError:
        raise CheckpointError(
            f"{item_dir} stores arrays in an OCDBT/zarr layout; install tensorstore to read it"
        ) from None
    driver = "zarr3" if zarr3 else "zarr"
    specs = []
    if (item_dir / "manifest.ocdbt").exists():
        specs.append({"driver": driver, "kvstore": {"driver": "ocdbt", "base": f"file://{item_dir}/", "path": name}})
    for proc in sorted(item_dir.glob("ocdbt.process_*")):
        specs.append({"driver": driver, "kvstore": {"driver": "ocdbt", "base": f"file://{proc}/", "path": name}})
    specs.append({"driver": driver, "kvstore": {"driver": "file", "path": str(item_dir / name)}})
    errors = []
    for spec in specs:
        try:
            return np.asarray(ts.open(spec, open=True).result().read().result())
        except Exception as exc:  # noqa: BLE001 - try the next layout
            errors.append(str(exc))
    raise CorruptCheckpointError(f"cannot read parameter {name!r} from {item_dir}: {errors[-1]}")


def _read_orbax_item(item_dir: Path) -> Dict[str, np.ndarray]:
    """Flat ``/``-joined parameter dict of one orbax item directory (msgpack and/or tensorstore)."""
    ckpt = item_dir / "checkpoint"
    meta_file = item_dir / "_METADATA"
    flat: Dict[str, Any] = {}
    if ckpt.exists():
        flat = flatten(read_msgpack(ckpt))
    placeholders = {k: v for k, v in flat.items() if isinstance(v, str) and v.startswith(PLACEHOLDER)}
    if flat and not placeholders:
        return flat
    if not meta_file.exists():
        if not flat:
            raise CheckpointNotFoundError(f"missing checkpoint file: {ckpt} (and no _METADATA in {item_dir})")
        raise CheckpointNotFoundError(f"{ckpt} refers to external arrays but {meta_file} is missing")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as exc:
        raise CorruptCheckpointError(f"{meta_file} is not valid JSON ({exc})") from None
    zarr3 = bool(meta.get("use_zarr3", False))
    for entry in meta.get("tree_metadata", {}).values():
        keys = [str(k["key"]) for k in entry["key_metadata"]]
        name = "/".join(keys)
        value_meta = entry.get("value_metadata", {})
        if value_meta.get("skip_deserialize") and name in flat and not isinstance(flat[name], str):
            continue
        flat[name] = _read_tensorstore_leaf(item_dir, ".".join(keys), zarr3)
    return flat


# --------------------------------------------------------------------------------------------
# the checkpoint directory


def available_steps(root: Union[str, Path]):
    root = Path(root)
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def step_dir(root: Union[str, Path], step: Optional[int] = None) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise CheckpointNotFoundError(f"checkpoint directory not found: {root}")
    steps = available_steps(root)
    if step is None:
        if not steps:
            raise CheckpointNotFoundError(f"no step directory (e.g. {root}/300000/default) in {root}")
        step = steps[-1]
    elif int(step) not in steps:
        raise CheckpointNotFoundError(
            f"step {step} not found in {root}; available steps: {steps or 'none'}"
        )
    item = root / str(int(step)) / "default"
    if not item.is_dir():
        raise CheckpointNotFoundError(f"missing directory {item}")
    return item


@dataclass
class OfficialCheckpoint:
    path: Path
    step: int
    config: dict
    dataset_statistics: dict
    example_batch: Optional[dict]
    params: Dict[str, np.ndarray] = field(repr=False)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointNotFoundError(f"missing {what}: {path}")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise CorruptCheckpointError(f"{path} is not valid JSON ({exc})") from None


def read_example_batch(root: Union[str, Path]) -> Optional[dict]:
    path = Path(root) / "example_batch.msgpack"
    if not path.exists():
        return None
    batch = read_msgpack(path)
    if "tasks" in batch and "task" not in batch:  # shims of the official loader
        batch["task"] = batch.pop("tasks")
    obs = batch.get("observation", {})
    if "timestep_pad_mask" not in obs and "pad_mask" in obs:
        obs["timestep_pad_mask"] = obs["pad_mask"]
    return batch


def read_official_checkpoint(root: Union[str, Path], step: Optional[int] = None) -> OfficialCheckpoint:
    """Read config, statistics, example batch and the flat Flax parameter dict of a checkpoint."""
    root = Path(root)
    if not root.is_dir():
        raise CheckpointNotFoundError(f"checkpoint directory not found: {root}")
    config = _read_json(root / "config.json", "config.json")
    stats_path = root / "dataset_statistics.json"
    stats = _read_json(stats_path, "dataset_statistics.json") if stats_path.exists() else {}
    example = read_example_batch(root)
    item = step_dir(root, step)
    params = _read_orbax_item(item)
    bad = [k for k, v in params.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise CorruptCheckpointError(f"non-array leaves in {item}: {bad[:5]}")
    return OfficialCheckpoint(root, int(item.parent.name), config, stats, example, params)


# --------------------------------------------------------------------------------------------
# writer


def _tree_metadata(flat: Mapping[str, np.ndarray]) -> dict:
    tree = {}
    for name in sorted(flat):
        keys = name.split("/")
        tree[str(tuple(keys))] = {
            "key_metadata": [{"key": k, "key_type": 2} for k in keys],
            "value_metadata": {"value_type": "jax.Array", "skip_deserialize": True},
        }
    return {"tree_metadata": tree, "use_zarr3": False}


def jsonable(x):
    if isinstance(x, Mapping):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_official_checkpoint(
    root: Union[str, Path],
    config: Mapping,
    params: Mapping,
    dataset_statistics: Optional[Mapping] = None,
    example_batch: Optional[Mapping] = None,
    step: int = 0,
) -> Path:
    """Write a checkpoint in the layout of the official ``save_pretrained`` (aggregated msgpack).

    ``params`` is a flat ``/``-joined or nested dict of Flax-named arrays (see
    :func:`octo_ros.model.weights.export_flax_params`).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    flat = params if all(isinstance(v, np.ndarray) for v in params.values()) else flatten(params)
    flat = {k: np.ascontiguousarray(np.asarray(v, dtype=np.float32)) for k, v in flat.items()}
    (root / "config.json").write_text(json.dumps(jsonable(config)))
    (root / "dataset_statistics.json").write_text(json.dumps(jsonable(dataset_statistics or {}), sort_keys=True))
    if example_batch is not None:
        write_msgpack(example_batch, root / "example_batch.msgpack")
    item = root / str(int(step)) / "default"
    item.mkdir(parents=True, exist_ok=True)
    write_msgpack(unflatten(flat), item / "checkpoint")
    (item / "_METADATA").write_text(json.dumps(_tree_metadata(flat)))
    return root
