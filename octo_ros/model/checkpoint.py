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


def _jsonable(x):
    if isinstance(x, Mapping):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
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
    (root / "config.json").write_text(json.dumps(_jsonable(config)))
    (root / "dataset_statistics.json").write_text(json.dumps(_jsonable(dataset_statistics or {}), sort_keys=True))
    if example_batch is not None:
        write_msgpack(example_batch, root / "example_batch.msgpack")
    item = root / str(int(step)) / "default"
    item.mkdir(parents=True, exist_ok=True)
    write_msgpack(unflatten(flat), item / "checkpoint")
    (item / "_METADATA").write_text(json.dumps(_tree_metadata(flat)))
    return root


# --------------------------------------------------------------------------------------------
# random checkpoints (tests, demos, benchmarks)


def _spec(module: str, name: str, **kwargs) -> dict:
    return {"module": module, "name": name, "args": [], "kwargs": kwargs}


SIZES = {
    # name: (D, layers, mlp, heads, image sizes primary/wrist, head kwargs, language encoder)
    "tiny": dict(d=64, layers=2, mlp=128, heads=2, primary=64, wrist=32, t5="t5_tiny",
                 head=dict(hidden_dim=64, num_blocks=2, time_dim=16, diffusion_steps=10)),
    "small": dict(d=384, layers=12, mlp=1536, heads=6, primary=256, wrist=128, t5="t5-base", head={}),
    "base": dict(d=768, layers=12, mlp=3072, heads=12, primary=256, wrist=128, t5="t5-base", head={}),
}

TINY_T5 = dict(vocab_size=32128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
               relative_attention_num_buckets=32, relative_attention_max_distance=128,
               layer_norm_epsilon=1e-6, feed_forward_proj="relu")


def make_config(
    size: str = "tiny",
    cameras=("primary", "wrist"),
    head: str = "diffusion",
    action_dim: int = 7,
    action_horizon: int = 4,
    proprio_dim: Optional[int] = None,
    language: bool = True,
    window_size: int = 2,
    t5_encoder: Optional[str] = None,
) -> dict:
    """An Octo-1.5-style ``config.json`` dict (ModuleSpec components) for a given size."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    s = SIZES[size]
    obs = {}
    for cam in cameras:
        obs[cam] = _spec(
            "octo.model.components.tokenizers", "ImageTokenizer",
            encoder=_spec("octo.model.components.vit_encoders", "SmallStem16"),
            obs_stack_keys=[f"image_{cam}"], task_stack_keys=[f"image_{cam}"],
        )
    if proprio_dim:
        obs["proprio"] = _spec("octo.model.components.tokenizers", "LowdimObsTokenizer",
                               n_bins=256, bin_type="normal", low=-2.0, high=2.0, obs_keys=["proprio"])
    tasks = {}
    if language:
        tasks["language"] = _spec("octo.model.components.tokenizers", "LanguageTokenizer",
                                  encoder=t5_encoder or s["t5"], finetune_encoder=False)
    if head == "diffusion":
        heads = {"action": _spec("octo.model.components.action_heads", "DiffusionActionHead",
                                 action_dim=action_dim, action_horizon=action_horizon, dropout_rate=0.0,
                                 n_diffusion_samples=1, readout_key="readout_action", use_map=False, **s["head"])}
    elif head in ("l1", "mse"):
        heads = {"action": _spec("octo.model.components.action_heads",
                                 "L1ActionHead" if head == "l1" else "MSEActionHead",
                                 action_dim=action_dim, action_horizon=action_horizon, readout_key="readout_action")}
    else:
        raise ValueError(f"unknown head {head!r}")
    return {
        "model": {
            "heads": heads,
            "max_horizon": 10,
            "observation_tokenizers": obs,
            "readouts": {"action": 1},
            "repeat_task_tokens": True,
            "task_tokenizers": tasks,
            "token_embedding_size": s["d"],
            "transformer_kwargs": {"num_layers": s["layers"], "mlp_dim": s["mlp"], "num_attention_heads": s["heads"],
                                   "dropout_rate": 0.0, "attention_dropout_rate": 0.0, "add_position_embedding": False},
            "use_correct_attention": True,
        },
        "window_size": window_size,
        "text_processor": None,
        "image_sizes": {cam: s[cam] if cam in s else s["primary"] for cam in cameras},
    }


def random_statistics(action_dim: int = 7, proprio_dim: Optional[int] = None, seed: int = 0,
                      dataset: str = "bridge_dataset") -> dict:
    rng = np.random.default_rng(seed)
    def stats(n, mask=True):
        mean = rng.normal(0, 0.01, n)
        std = rng.uniform(0.01, 0.1, n)
        out = {"mean": mean, "std": std, "min": mean - 3 * std, "max": mean + 3 * std,
               "p01": mean - 2.3 * std, "p99": mean + 2.3 * std}
        if mask:
            out["mask"] = [True] * (n - 1) + [False]
        return _jsonable(out)
    entry = {"action": stats(action_dim), "num_transitions": 1000, "num_trajectories": 10}
    if proprio_dim:
        entry["proprio"] = stats(proprio_dim, mask=False)
    return {dataset: entry}


def make_example_batch(config: dict, image_sizes: Mapping[str, int], action_dim: int, action_horizon: int,
                       window: int = 2, proprio_dim: Optional[int] = None) -> dict:
    obs = {}
    task = {}
    for cam, size in image_sizes.items():
        obs[f"image_{cam}"] = np.zeros((1, window, size, size, 3), np.uint8)
        task[f"image_{cam}"] = np.zeros((1, size, size, 3), np.uint8)
    if proprio_dim:
        obs["proprio"] = np.zeros((1, window, proprio_dim), np.float32)
    obs["timestep"] = np.zeros((1, window), np.int32)
    obs["pad_mask_dict"] = {k: np.ones((1, window), bool) for k in obs if k != "pad_mask_dict"}
    obs["timestep_pad_mask"] = np.ones((1, window), bool)
    obs["task_completed"] = np.zeros((1, window, action_horizon), bool)
    task["timestep"] = np.zeros((1,), np.int32)
    if config["model"]["task_tokenizers"]:
        task["language_instruction"] = {"input_ids": np.zeros((1, 16), np.int64),
                                        "attention_mask": np.zeros((1, 16), np.int64)}
    task["pad_mask_dict"] = {k: np.ones((1,), bool) for k in task}
    return {"observation": obs, "task": task,
            "action": np.zeros((1, window, action_horizon, action_dim), np.float32),
            "action_pad_mask": np.ones((1, window, action_horizon, action_dim), bool)}


def make_random_checkpoint(
    path: Union[str, Path],
    size: str = "tiny",
    *,
    seed: int = 0,
    step: int = 0,
    cameras=("primary", "wrist"),
    head: str = "diffusion",
    action_dim: int = 7,
    action_horizon: int = 4,
    proprio_dim: Optional[int] = None,
    language: bool = True,
    dataset: str = "bridge_dataset",
    write_t5_config: bool = True,
):
    """Build a randomly initialised Octo model in PyTorch and write it in the official layout.

    ``size`` is ``tiny`` (test-sized, tiny T5 stand-in), ``small`` or ``base`` (release
    architectures with a t5-base encoder).  Returns ``(path, module)`` with the in-memory model.
    """
    import torch

    from .config import parse_config
    from .octo import OctoModule, shapes_from_images
    from .weights import export_flax_params

    path = Path(path)
    config = make_config(size, cameras, head, action_dim, action_horizon, proprio_dim, language)
    image_sizes = config.pop("image_sizes")
    if language and size == "tiny" and write_t5_config:
        t5_dir = path / "t5_tiny"
        t5_dir.mkdir(parents=True, exist_ok=True)
        (t5_dir / "config.json").write_text(json.dumps(dict(TINY_T5, model_type="t5")))
    cfg = parse_config(config, search_dirs=[path])
    if language and size == "tiny" and cfg.task_tokenizers[0].t5 is None:
        from .config import T5Config
        cfg.task_tokenizers[0].t5 = T5Config(**TINY_T5)
    counts, channels = shapes_from_images(
        cfg, {c: (s, s, 3) for c, s in image_sizes.items()}, {"proprio": proprio_dim or 0}
    )
    gen = torch.Generator().manual_seed(seed)
    module = OctoModule(cfg, counts, channels)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or ".norms." in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[1] if p.ndim >= 2 else 1
                if p.ndim == 4:
                    fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                scale = 0.02 if "pos_embeddings" in name or name.endswith("probe") or "shared" in name else fan_in ** -0.5
                if name.endswith("time_kernel"):
                    scale = 0.2
                p.copy_(scale * torch.randn(p.shape, generator=gen))
    example = make_example_batch(config, image_sizes, action_dim, action_horizon, proprio_dim=proprio_dim)
    stats = random_statistics(action_dim, proprio_dim, seed, dataset)
    write_official_checkpoint(path, config, export_flax_params(module), stats, example, step=step)
    return path, module.eval()
