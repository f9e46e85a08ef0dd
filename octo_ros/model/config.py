"""Model configuration parsed from an Octo ``config.json``.

Octo stores every component as a ``ModuleSpec`` dict (``module``, ``name``, ``args``, ``kwargs``).
This module turns the ``model`` section into plain dataclasses that the PyTorch modules are built
from, applying the same defaults as the official Flax classes.  Components this port does not
implement raise :class:`UnsupportedComponentError` naming the component.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union


class OctoConfigError(ValueError):
    """The checkpoint configuration is malformed."""


class UnsupportedComponentError(OctoConfigError):
    """The configuration names a tokenizer, encoder or head this port does not implement."""


# --------------------------------------------------------------------------------------------
# component configs


@dataclass
class StemConfig:
    """``SmallStem`` (``SmallStem16`` / ``SmallStem32``) image encoder."""

    patch_size: int = 16
    kernel_sizes: Tuple[int, ...] = (3, 3, 3, 3)
    strides: Tuple[int, ...] = (2, 2, 2, 2)
    features: Tuple[int, ...] = (32, 96, 192, 384)
    padding: Tuple[int, ...] = (1, 1, 1, 1)
    num_features: int = 512
    img_norm_type: str = "default"
    name: str = "SmallStem16"
    use_film: bool = False  # FiLM on the patch embeddings, conditioned on ImageTokenizerConfig.task_film_keys


@dataclass
class ImageTokenizerConfig:
    name: str
    stem: StemConfig
    obs_stack_keys: Tuple[str, ...] = ("image_.*", "depth_.*")
    task_stack_keys: Tuple[str, ...] = ()
    # Non-spatial task inputs the stem's FiLM layer is conditioned on; only the language
    # instruction is one here (its encoder tokens, flattened to one vector per row)
    task_film_keys: Tuple[str, ...] = ()
    proper_pad_mask: bool = True
    kind: str = "image"


@dataclass
class LowdimTokenizerConfig:
    name: str
    obs_keys: Tuple[str, ...] = ()
    discretize: bool = False
    n_bins: int = 256
    bin_type: str = "uniform"
    low: float = 0.0
    high: float = 1.0
    proper_pad_mask: bool = True
    kind: str = "lowdim"


@dataclass
class T5Config:
    """Encoder-only T5 hyper-parameters (defaults: t5-base)."""

    vocab_size: int = 32128
    d_model: int = 768
    d_kv: int = 64
    d_ff: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"


@dataclass
class LanguageTokenizerConfig:
    name: str
    encoder: Optional[str] = None
    t5: Optional[T5Config] = None
    proper_pad_mask: bool = True
    kind: str = "language"


@dataclass
class HeadConfig:
    """An action head.  ``kind`` is ``diffusion`` or ``continuous`` (L1 / MSE / plain)."""

    name: str
    kind: str
    class_name: str
    readout_key: str
    use_map: bool = False
    action_horizon: int = 1
    action_dim: int = 7
    max_action: float = 5.0
    loss_type: str = "mse"
    # diffusion only
    time_dim: int = 32
    num_blocks: int = 3
    hidden_dim: int = 256
    use_layer_norm: bool = True
    diffusion_steps: int = 20
    n_diffusion_samples: int = 1


@dataclass
class TransformerConfig:
    num_layers: int
    mlp_dim: int
    num_attention_heads: int


@dataclass
class OctoConfig:
    token_embedding_size: int
    transformer: TransformerConfig
    observation_tokenizers: List[Union[ImageTokenizerConfig, LowdimTokenizerConfig]]
    task_tokenizers: List[LanguageTokenizerConfig]
    heads: List[HeadConfig]
    readouts: Dict[str, int]
    max_horizon: int = 10
    repeat_task_tokens: bool = False
    use_correct_attention: bool = False
    window_size: Optional[int] = None
    text_processor: Optional[dict] = None
    raw: dict = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- helpers
    @property
    def action_head(self) -> HeadConfig:
        for head in self.heads:
            if head.name == "action":
                return head
        raise OctoConfigError("config has no 'action' head")


# --------------------------------------------------------------------------------------------
# T5 presets (the architecture of the public checkpoints; weights always come from Octo's params)

T5_PRESETS = {
    "t5-small": T5Config(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8),
    "t5-base": T5Config(),
    "t5-large": T5Config(d_model=1024, d_kv=64, d_ff=4096, num_layers=24, num_heads=16),
}


def _spec_kwargs(spec: Any, where: str) -> Tuple[str, dict]:
    if not isinstance(spec, dict) or "name" not in spec:
        raise OctoConfigError(f"{where}: expected a ModuleSpec dict with 'name', got {spec!r}")
    if spec.get("args"):
        raise OctoConfigError(f"{where}: positional ModuleSpec args are not supported: {spec['args']!r}")
    return spec["name"], dict(spec.get("kwargs") or {})


def _tuple(x) -> tuple:
    if isinstance(x, str):
        return (x,)
    return tuple(x)


def load_t5_config(encoder: str, search_dirs: Sequence[Path] = ()) -> Optional[T5Config]:
    """Resolve the T5 config named by ``LanguageTokenizer.encoder``.

    Known hub names use built-in presets.  Otherwise a folder with that name holding a
    ``config.json`` is searched in ``search_dirs`` (e.g. the checkpoint folder and its parents).
    Returns None when nothing is found: the shapes are then inferred from the parameters.
    """
    key = encoder.split("/")[-1]
    if key in T5_PRESETS:
        return copy.deepcopy(T5_PRESETS[key])
    candidates = [Path(encoder)] + [Path(d) / encoder for d in search_dirs]
    for cand in candidates:
        cfg_file = cand / "config.json" if cand.is_dir() else None
        if cfg_file is not None and cfg_file.is_file():
            data = json.loads(cfg_file.read_text())
            known = {f for f in T5Config.__dataclass_fields__}
            return T5Config(**{k: v for k, v in data.items() if k in known})
    return None


def _parse_obs_tokenizer(name: str, spec: dict):
    cls, kw = _spec_kwargs(spec, f"observation_tokenizers.{name}")
    if cls == "ImageTokenizer":
        if kw.get("use_token_learner"):
            raise UnsupportedComponentError(f"observation tokenizer {name!r}: use_token_learner=True is not supported")
        if kw.get("conditioning_type", "none") != "none":
            raise UnsupportedComponentError(
                f"observation tokenizer {name!r}: conditioning_type {kw['conditioning_type']!r} is not supported")
        film_keys = _tuple(kw.get("task_film_keys", ()))
        if any(k != "language_instruction" for k in film_keys):
            raise UnsupportedComponentError(
                f"observation tokenizer {name!r}: task_film_keys {list(film_keys)} (supported: ['language_instruction'])")
        enc_name, enc_kw = _spec_kwargs(kw.get("encoder"), f"observation_tokenizers.{name}.encoder")
        if enc_name not in ("SmallStem16", "SmallStem32", "SmallStem"):
            raise UnsupportedComponentError(
                f"observation tokenizer {name!r}: unknown image encoder {enc_name!r} "
                "(supported: SmallStem16, SmallStem32)"
            )
        stem = StemConfig(name=enc_name, patch_size={"SmallStem16": 16, "SmallStem32": 32}.get(enc_name, 32),
                          use_film=bool(enc_kw.get("use_film", False)))
        if stem.use_film != bool(film_keys):  # the official stem asserts a conditioning input iff use_film
            raise UnsupportedComponentError(
                f"observation tokenizer {name!r}: the encoder's use_film={stem.use_film} but task_film_keys={list(film_keys)}")
        for key in ("patch_size", "num_features", "img_norm_type"):
            if key in enc_kw:
                setattr(stem, key, enc_kw[key])
        for key in ("kernel_sizes", "strides", "features", "padding"):
            if key in enc_kw:
                setattr(stem, key, tuple(enc_kw[key]))
        if stem.img_norm_type not in ("default", "imagenet"):
            raise UnsupportedComponentError(f"observation tokenizer {name!r}: img_norm_type {stem.img_norm_type!r}")
        return ImageTokenizerConfig(
            name=name,
            stem=stem,
            obs_stack_keys=_tuple(kw.get("obs_stack_keys", ("image_.*", "depth_.*"))),
            task_stack_keys=_tuple(kw.get("task_stack_keys", ())),
            task_film_keys=film_keys,
            proper_pad_mask=bool(kw.get("proper_pad_mask", True)),
        )
    if cls == "LowdimObsTokenizer":
        cfg = LowdimTokenizerConfig(name=name)
        for key in ("discretize", "n_bins", "bin_type", "low", "high", "proper_pad_mask"):
            if key in kw:
                setattr(cfg, key, kw[key])
        cfg.obs_keys = _tuple(kw.get("obs_keys", ()))
        if not cfg.obs_keys:
            raise OctoConfigError(f"observation tokenizer {name!r}: LowdimObsTokenizer needs obs_keys")
        if cfg.bin_type not in ("uniform", "normal"):
            raise UnsupportedComponentError(f"observation tokenizer {name!r}: bin_type {cfg.bin_type!r}")
        return cfg
    raise UnsupportedComponentError(
        f"unknown observation tokenizer {cls!r} for {name!r} (supported: ImageTokenizer, LowdimObsTokenizer)"
    )


def _parse_task_tokenizer(name: str, spec: dict, search_dirs: Sequence[Path]):
    cls, kw = _spec_kwargs(spec, f"task_tokenizers.{name}")
    if cls != "LanguageTokenizer":
        raise UnsupportedComponentError(f"unknown task tokenizer {cls!r} for {name!r} (supported: LanguageTokenizer)")
    encoder = kw.get("encoder")
    t5 = None
    if encoder is not None:
        if "t5" not in str(encoder):
            raise UnsupportedComponentError(f"task tokenizer {name!r}: only T5 language encoders are supported, got {encoder!r}")
        t5 = load_t5_config(str(encoder), search_dirs)
    return LanguageTokenizerConfig(name=name, encoder=encoder, t5=t5, proper_pad_mask=bool(kw.get("proper_pad_mask", True)))


_HEADS = {
    "DiffusionActionHead": ("diffusion", None, False),
    "ContinuousActionHead": ("continuous", "mse", False),
    "MSEActionHead": ("continuous", "mse", True),
    "L1ActionHead": ("continuous", "l1", True),
}


def _parse_head(name: str, spec: dict) -> HeadConfig:
    cls, kw = _spec_kwargs(spec, f"heads.{name}")
    if cls not in _HEADS:
        raise UnsupportedComponentError(
            f"unknown action head {cls!r} for head {name!r} (supported: {', '.join(sorted(_HEADS))})"
        )
    kind, loss, use_map_default = _HEADS[cls]
    if "pred_horizon" in kw:  # shim of the official loader for old checkpoints
        kw["action_horizon"] = kw.pop("pred_horizon")
    if "readout_key" not in kw:
        raise OctoConfigError(f"head {name!r}: missing readout_key")
    head = HeadConfig(name=name, kind=kind, class_name=cls, readout_key=kw["readout_key"], use_map=use_map_default)
    if loss is not None:
        head.loss_type = loss
    for key in (
        "use_map", "action_horizon", "action_dim", "max_action", "loss_type", "time_dim",
        "num_blocks", "hidden_dim", "use_layer_norm", "diffusion_steps", "n_diffusion_samples",
    ):
        if key in kw:
            setattr(head, key, kw[key])
    return head


def parse_config(config: dict, search_dirs: Sequence[Union[str, Path]] = ()) -> OctoConfig:
    """Build an :class:`OctoConfig` from the parsed ``config.json``."""
    if "model" not in config:
        raise OctoConfigError("config.json has no 'model' section")
    m = config["model"]
    dirs = [Path(d) for d in search_dirs]
    try:
        tk = m["transformer_kwargs"]
        transformer = TransformerConfig(
            num_layers=int(tk["num_layers"]),
            mlp_dim=int(tk["mlp_dim"]),
            num_attention_heads=int(tk["num_attention_heads"]),
        )
        if tk.get("add_position_embedding", False):
            raise UnsupportedComponentError("transformer_kwargs.add_position_embedding=True is not supported")
        obs = [_parse_obs_tokenizer(n, s) for n, s in (m.get("observation_tokenizers") or {}).items()]
        tasks = [_parse_task_tokenizer(n, s, dirs) for n, s in (m.get("task_tokenizers") or {}).items()]
        heads = [_parse_head(n, s) for n, s in (m.get("heads") or {}).items()]
        window = config.get("window_size")
        if window is None:
            window = (
                config.get("dataset_kwargs", {}).get("traj_transform_kwargs", {}).get("window_size")
            )
        return OctoConfig(
            token_embedding_size=int(m["token_embedding_size"]),
            transformer=transformer,
            observation_tokenizers=obs,
            task_tokenizers=tasks,
            heads=heads,
            readouts=dict(m.get("readouts") or {}),
            max_horizon=int(m.get("max_horizon", 10)),
            repeat_task_tokens=bool(m.get("repeat_task_tokens", False)),
            use_correct_attention=bool(m.get("use_correct_attention", False)),
            window_size=int(window) if window is not None else None,
            text_processor=config.get("text_processor"),
            raw=config,
        )
    except KeyError as exc:
        raise OctoConfigError(f"config.json is missing the key {exc}") from None
