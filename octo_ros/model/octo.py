"""The complete Octo network: transformer (tokenizers included) plus heads."""

from __future__ import annotations

import copy
from typing import Dict, Mapping, Optional

from torch import nn

from .config import ImageTokenizerConfig, OctoConfig, StemConfig, T5Config
from .heads import build_head
from .transformer import OctoTransformer

T5_PREFIX = "octo_transformer/task_tokenizers_{name}/hf_model/"


class OctoModule(nn.Module):
    def __init__(self, cfg: OctoConfig, token_counts: Mapping[str, int], image_channels: Mapping[str, int]):
        super().__init__()
        self.cfg = cfg
        self.token_counts = dict(token_counts)
        self.image_channels = dict(image_channels)
        self.transformer = OctoTransformer(cfg, token_counts, image_channels)
        self.heads = nn.ModuleDict({h.name: build_head(h, cfg.token_embedding_size) for h in cfg.heads})

    def forward(self, observations, tasks, timestep_pad_mask, readouts=None):
        return self.transformer(observations, tasks, timestep_pad_mask, readouts)


# --------------------------------------------------------------------------------------------
# shapes: from a parameter tree (loading) or from image sizes (building a fresh model)


def stem_output_hw(stem: StemConfig, h: int, w: int):
    for k, s, p in zip(stem.kernel_sizes, stem.strides, stem.padding):
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    patch = stem.patch_size // 16
    return h // patch, w // patch


def infer_t5_config(flat: Mapping[str, "object"], name: str, base: Optional[T5Config]) -> T5Config:
    """T5 dimensions from the stored encoder weights (keeps bucket settings of ``base`` if given)."""
    pre = T5_PREFIX.format(name=name)
    cfg = copy.deepcopy(base) if base is not None else T5Config()
    emb = flat.get(pre + "shared/embedding")
    rel = flat.get(pre + "encoder/block/0/layer/0/SelfAttention/relative_attention_bias/embedding")
    if emb is None or rel is None:
        return cfg  # shape checks at load time will name the missing parameters
    cfg.vocab_size, cfg.d_model = int(emb.shape[0]), int(emb.shape[1])
    cfg.relative_attention_num_buckets, cfg.num_heads = int(rel.shape[0]), int(rel.shape[1])
    q = flat.get(pre + "encoder/block/0/layer/0/SelfAttention/q/kernel")
    wi = flat.get(pre + "encoder/block/0/layer/1/DenseReluDense/wi/kernel")
    if q is not None:
        cfg.d_kv = int(q.shape[1]) // cfg.num_heads
    if wi is not None:
        cfg.d_ff = int(wi.shape[1])
    n = 0
    while (pre + f"encoder/block/{n}/layer/0/layer_norm/weight") in flat:
        n += 1
    cfg.num_layers = n
    return cfg


def shapes_from_params(cfg: OctoConfig, flat: Mapping[str, "object"]):
    """(token_counts, image_channels) of a stored model; also fills in T5 configs in ``cfg``."""
    counts: Dict[str, int] = {}
    channels: Dict[str, int] = {}
    for t in cfg.task_tokenizers:
        key = f"octo_transformer/task_{t.name}_pos_embedding"
        counts[f"task_{t.name}"] = int(flat[key].shape[-2]) if key in flat else 16
        if t.encoder is not None:
            t.t5 = infer_t5_config(flat, t.name, t.t5)
    for o in cfg.observation_tokenizers:
        key = f"octo_transformer/obs_{o.name}_pos_embedding"
        counts[f"obs_{o.name}"] = int(flat[key].shape[-2]) if key in flat else 1
        if isinstance(o, ImageTokenizerConfig):
            k0 = f"octo_transformer/observation_tokenizers_{o.name}/{o.stem.name}_0/StdConv_0/kernel"
            channels[o.name] = int(flat[k0].shape[2]) if k0 in flat else 3 * (1 + bool(o.task_stack_keys))
    return counts, channels


def shapes_from_images(cfg: OctoConfig, image_sizes: Mapping[str, tuple], lowdim_sizes: Mapping[str, int], lang_tokens: int = 16):
    """(token_counts, image_channels) for given per-tokenizer image sizes (H, W[, C]) and low-dim sizes."""
    counts: Dict[str, int] = {}
    channels: Dict[str, int] = {}
    for t in cfg.task_tokenizers:
        counts[f"task_{t.name}"] = lang_tokens
    for o in cfg.observation_tokenizers:
        if isinstance(o, ImageTokenizerConfig):
            size = image_sizes[o.name]
            h, w = stem_output_hw(o.stem, size[0], size[1])
            counts[f"obs_{o.name}"] = h * w
            c = size[2] if len(size) > 2 else 3
            channels[o.name] = c * (1 + bool(o.task_stack_keys))
        else:
            counts[f"obs_{o.name}"] = lowdim_sizes[o.name]
    return counts, channels
