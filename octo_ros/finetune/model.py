"""The model to fine-tune: config edits (new head, new proprio tokenizer, dropped cameras),
parameter merge from the pretrained model, fresh initialisation, freezing and weight decay.

As ``scripts/finetune.py``: the new model is built from the edited config and every parameter
whose name and shape match the pretrained one is copied (``merge_params``); the rest keeps a
fresh initialisation (Flax's defaults: LeCun-normal Dense/conv kernels, zero biases, N(0, 0.02)
position embeddings, Xavier-uniform MAP probe, N(0, 0.2) Fourier kernel, unit LayerNorm scales).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from octo_ros.model.config import ImageTokenizerConfig, parse_config
from octo_ros.model.octo import OctoModule
from octo_ros.model.weights import parameter_table

HEADS_MODULE = "octo.model.components.action_heads"
TOKENIZERS_MODULE = "octo.model.components.tokenizers"
HEAD_CLASSES = {"diffusion": "DiffusionActionHead", "l1": "L1ActionHead", "mse": "MSEActionHead"}

# modes -> frozen parameter patterns (fnmatch on "."-joined Flax paths), scripts/configs/finetune_config.py;
# None: the pretrained config's optimizer.frozen_keys (Octo 1.5: the T5 encoder)
MODES = {
    "full": None,
    "head_only": ("octo_transformer.*",),
    "head_mlp_only": ("octo_transformer.*", "heads_*.map_head.probe", "heads_*.map_head.MultiHeadDotProductAttention_0.*"),
}
T5_FROZEN = ("*hf_model*",)


class ModelSetupError(ValueError):
    pass


def _spec(module: str, name: str, **kwargs) -> dict:
    return {"module": module, "name": name, "args": [], "kwargs": kwargs}


@dataclass
class ModelEdits:
    head: Optional[str] = None  # diffusion | l1 | mse: replace heads.action
    action_dim: Optional[int] = None
    action_horizon: Optional[int] = None
    add_proprio: bool = False  # add observation_tokenizers.proprio (LowdimObsTokenizer)
    drop_cameras: Tuple[str, ...] = ()  # delete these image tokenizers (as example 02 deletes "wrist")


def edit_config(raw: dict, edits: ModelEdits) -> dict:
    """The pretrained ``config.json`` with the edits applied, components named as Octo names them."""
    config = copy.deepcopy(raw)
    model = config["model"]
    obs = model.setdefault("observation_tokenizers", {})
    for cam in edits.drop_cameras:
        if cam not in obs:
            raise ModelSetupError(f"--drop-camera {cam}: the checkpoint has no observation tokenizer {cam!r}; "
                                  f"it has {sorted(obs)}")
        del obs[cam]
    if edits.add_proprio:
        # examples/02_finetune_new_observation_action.py
        obs["proprio"] = _spec(TOKENIZERS_MODULE, "LowdimObsTokenizer", n_bins=256, bin_type="normal",
                               low=-2.0, high=2.0, obs_keys=["proprio"])
    if edits.head:
        if edits.head not in HEAD_CLASSES:
            raise ModelSetupError(f"unknown head {edits.head!r}; choose from {sorted(HEAD_CLASSES)}")
        old = (model.get("heads") or {}).get("action") or {}
        old_kw = dict(old.get("kwargs") or {})
        readout = old_kw.get("readout_key", "readout_action")
        dim = edits.action_dim or old_kw.get("action_dim", 7)
        horizon = edits.action_horizon or old_kw.get("action_horizon", old_kw.get("pred_horizon", 4))
        if edits.head == "diffusion":
            kwargs = {k: v for k, v in old_kw.items() if old.get("name") == "DiffusionActionHead"}
            kwargs.update(readout_key=readout, use_map=kwargs.get("use_map", False), action_dim=dim, action_horizon=horizon,
                          n_diffusion_samples=kwargs.get("n_diffusion_samples", 1), dropout_rate=kwargs.get("dropout_rate", 0.0))
            kwargs.pop("pred_horizon", None)
        else:
            kwargs = dict(action_horizon=horizon, action_dim=dim, readout_key=readout)
        model.setdefault("heads", {})["action"] = _spec(HEADS_MODULE, HEAD_CLASSES[edits.head], **kwargs)
    return config


def build_module(pretrained: OctoModule, config: dict, proprio_dim: Optional[int]) -> Tuple[OctoModule, List[str]]:
    """New module for ``config`` with every matching (name, shape) pretrained parameter copied.
    Returns (module, names of freshly initialised parameters)."""
    cfg = parse_config(config)
    old_t5 = {t.name: t.t5 for t in pretrained.cfg.task_tokenizers}
    for t in cfg.task_tokenizers:
        if t.t5 is None and old_t5.get(t.name) is not None:
            t.t5 = copy.deepcopy(old_t5[t.name])
    counts = {f"task_{t.name}": pretrained.token_counts.get(f"task_{t.name}", 16) for t in cfg.task_tokenizers}
    channels = {}
    for o in cfg.observation_tokenizers:
        group = f"obs_{o.name}"
        if isinstance(o, ImageTokenizerConfig):
            if o.name not in pretrained.image_channels:
                raise ModelSetupError(f"observation tokenizer {o.name!r} is not in the pretrained model")
            channels[o.name] = pretrained.image_channels[o.name]
            counts[group] = pretrained.token_counts[group]
        elif proprio_dim:
            counts[group] = int(proprio_dim)
        elif group in pretrained.token_counts:
            counts[group] = pretrained.token_counts[group]
        else:
            raise ModelSetupError(f"low-dimensional tokenizer {o.name!r} needs the proprio dimension")
    module = OctoModule(cfg, counts, channels)
    norm_scales = {f"{m_name}.weight" for m_name, m in module.named_modules()
                   if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)) or type(m).__name__.endswith("LayerNorm")}
    old_state = pretrained.state_dict()
    fresh = []
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            src = old_state.get(name)
            if src is not None and tuple(src.shape) == tuple(p.shape):
                p.copy_(src)
            else:
                init_parameter(name, p, generator, name in norm_scales)
                fresh.append(name)
    return module, fresh


def init_parameter(name: str, p: torch.Tensor, generator: torch.Generator, norm_scale: bool = False) -> None:
    """Flax default initialisers by parameter role (see the module docstring)."""
    with torch.no_grad():
        if "pos_embeddings" in name:
            p.copy_(0.02 * torch.randn(p.shape, generator=generator))
        elif name.endswith("probe"):
            fan_in, fan_out = p.shape[-2], p.shape[-1]
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
        elif name.endswith("time_kernel"):
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
        elif p.ndim == 1:
            p.fill_(1.0 if norm_scale else 0.0)
        else:
            fan_in = int(torch.tensor(p.shape[1:]).prod())
            std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # lecun_normal: truncated at ±2 std
            w = torch.empty(p.shape)
            torch.nn.init.trunc_normal_(w, std=1.0, a=-2.0, b=2.0, generator=generator)
            p.copy_(w * std)


def frozen_patterns(mode: str, pretrained_config: dict) -> Tuple[str, ...]:
    if mode not in MODES:
        raise ModelSetupError(f"unknown mode {mode!r}; choose from {sorted(MODES)}")
    patterns = MODES[mode]
    if patterns is None:
        patterns = tuple((pretrained_config.get("optimizer") or {}).get("frozen_keys") or T5_FROZEN)
    # the T5 encoder is always frozen (its embeddings are computed once per instruction)
    return tuple(patterns) + tuple(p for p in T5_FROZEN if p not in patterns)


def parameter_roles(module: OctoModule, patterns: Sequence[str]) -> Tuple[List[str], List[str], List[str]]:
    """(trainable, frozen, weight-decayed) torch parameter names.  A parameter is frozen when its
    Flax path matches a pattern; decayed when its Flax name contains ``kernel`` (Octo's wd mask)."""
    flax_names: Dict[str, List[str]] = {}
    for e in parameter_table(module):
        flax_names.setdefault(e.torch, []).append(e.flax.replace("/", "."))
    trainable, frozen, decayed = [], [], []
    for name, _ in module.named_parameters():
        paths = flax_names.get(name, [])
        if paths and all(any(fnmatch(path, pat) for pat in patterns) for path in paths):
            frozen.append(name)
            continue
        trainable.append(name)
        if any("kernel" in path for path in paths):
            decayed.append(name)
    return trainable, frozen, decayed
