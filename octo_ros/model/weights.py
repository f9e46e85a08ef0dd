"""Mapping between Octo's Flax parameter tree (``/``-joined names) and the PyTorch modules.

Every PyTorch tensor is described by one or more :class:`Entry` rows (flax name, torch name, layout
kind, expected flax shape, optional row slice for fused q/k/v).  The same table drives loading
(with shape checks that name the offending parameter) and writing (the official-layout writer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from .config import ImageTokenizerConfig
from .heads import ContinuousActionHead, DiffusionActionHead, MAPHead
from .octo import OctoModule


class ParameterError(ValueError):
    """Parameters in a checkpoint do not match the model built from its config."""


class ParameterShapeError(ParameterError):
    pass


class MissingParameterError(ParameterError):
    pass


class UnexpectedParameterError(ParameterError):
    pass


@dataclass(frozen=True)
class Entry:
    flax: str
    torch: str
    kind: str  # copy | dense | conv | mha_in_kernel | mha_in_bias | mha_out_kernel
    flax_shape: Tuple[int, ...]
    rows: Optional[Tuple[int, int]] = None  # slice of dim 0 of the torch tensor


def _flax_shape(kind: str, t_shape, heads: int = 1) -> Tuple[int, ...]:
    if kind == "copy":
        return tuple(t_shape)
    if kind == "dense":
        return tuple(t_shape[::-1])
    if kind == "conv":
        o, i, kh, kw = t_shape
        return (kh, kw, i, o)
    if kind == "mha_in_kernel":  # torch (H*hd, D) rows -> flax (D, H, hd)
        return (t_shape[1], heads, t_shape[0] // heads)
    if kind == "mha_in_bias":
        return (heads, t_shape[0] // heads)
    if kind == "mha_out_kernel":  # torch (D, H*hd) -> flax (H, hd, D)
        return (heads, t_shape[1] // heads, t_shape[0])
    raise ValueError(kind)


def to_torch(kind: str, a: np.ndarray, flax_shape) -> np.ndarray:
    if kind == "copy":
        return a
    if kind == "dense":
        return a.T
    if kind == "conv":
        return a.transpose(3, 2, 0, 1)
    if kind == "mha_in_kernel":
        return a.reshape(a.shape[0], -1).T
    if kind == "mha_in_bias":
        return a.reshape(-1)
    if kind == "mha_out_kernel":
        return a.reshape(-1, a.shape[-1]).T
    raise ValueError(kind)


def to_flax(kind: str, t: np.ndarray, flax_shape) -> np.ndarray:
    if kind == "copy":
        return t
    if kind == "dense":
        return t.T
    if kind == "conv":
        return t.transpose(2, 3, 1, 0)
    if kind in ("mha_in_kernel",):
        return t.T.reshape(flax_shape)
    if kind == "mha_in_bias":
        return t.reshape(flax_shape)
    if kind == "mha_out_kernel":
        return t.T.reshape(flax_shape)
    raise ValueError(kind)


class _Builder:
    def __init__(self, module: OctoModule):
        self.params = dict(module.named_parameters())
        self.entries: List[Entry] = []

    def add(self, flax: str, torch_name: str, kind: str, heads: int = 1, rows=None):
        shape = tuple(self.params[torch_name].shape)
        if rows is not None:
            shape = (rows[1] - rows[0],) + shape[1:]
        self.entries.append(Entry(flax, torch_name, kind, _flax_shape(kind, shape, heads), rows))

    def dense(self, flax: str, torch_prefix: str, bias: bool = True):
        self.add(f"{flax}/kernel", f"{torch_prefix}.weight", "dense")
        if bias:
            self.add(f"{flax}/bias", f"{torch_prefix}.bias", "copy")

    def norm(self, flax: str, torch_prefix: str):
        self.add(f"{flax}/scale", f"{torch_prefix}.weight", "copy")
        self.add(f"{flax}/bias", f"{torch_prefix}.bias", "copy")

    def mha(self, flax: str, q: str, k: str, v: str, out: str, heads: int):
        """q/k/v are (torch_prefix, rows) pairs."""
        for name, (prefix, rows) in (("query", q), ("key", k), ("value", v)):
            self.add(f"{flax}/{name}/kernel", f"{prefix}.weight", "mha_in_kernel", heads, rows)
            self.add(f"{flax}/{name}/bias", f"{prefix}.bias", "mha_in_bias", heads, rows)
        self.add(f"{flax}/out/kernel", f"{out}.weight", "mha_out_kernel", heads)
        self.add(f"{flax}/out/bias", f"{out}.bias", "copy")

    def map_head(self, flax: str, prefix: str, m: MAPHead):
        self.add(f"{flax}/probe", f"{prefix}.probe", "copy")
        self.mha(
            f"{flax}/MultiHeadDotProductAttention_0",
            (f"{prefix}.query", None), (f"{prefix}.key", None), (f"{prefix}.value", None), f"{prefix}.out", m.num_heads,
        )
        self.norm(f"{flax}/LayerNorm_0", f"{prefix}.norm")
        self.dense(f"{flax}/MlpBlock_0/Dense_0", f"{prefix}.mlp.fc1")
        self.dense(f"{flax}/MlpBlock_0/Dense_1", f"{prefix}.mlp.fc2")


def parameter_table(module: OctoModule) -> List[Entry]:
    """All (flax name <-> torch name) rows for ``module``."""
    b = _Builder(module)
    cfg = module.cfg
    tr = module.transformer
    ot = "octo_transformer"
    for tcfg in cfg.task_tokenizers:
        tok = tr.task_tokenizers[tcfg.name]
        if tok.t5 is not None:
            pre = f"{ot}/task_tokenizers_{tcfg.name}/hf_model"
            tp = f"transformer.task_tokenizers.{tcfg.name}.t5"
            b.add(f"{pre}/shared/embedding", f"{tp}.shared.weight", "copy")
            for i in range(len(tok.t5.blocks)):
                bp, tb = f"{pre}/encoder/block/{i}/layer", f"{tp}.blocks.{i}"
                for n in "qkvo":
                    b.add(f"{bp}/0/SelfAttention/{n}/kernel", f"{tb}.attn.{n}.weight", "dense")
                if i == 0:
                    b.add(f"{bp}/0/SelfAttention/relative_attention_bias/embedding",
                          f"{tb}.attn.relative_attention_bias.weight", "copy")
                b.add(f"{bp}/0/layer_norm/weight", f"{tb}.attn_norm.weight", "copy")
                b.add(f"{bp}/1/DenseReluDense/wi/kernel", f"{tb}.wi.weight", "dense")
                b.add(f"{bp}/1/DenseReluDense/wo/kernel", f"{tb}.wo.weight", "dense")
                b.add(f"{bp}/1/layer_norm/weight", f"{tb}.ff_norm.weight", "copy")
            b.add(f"{pre}/encoder/final_layer_norm/weight", f"{tp}.final_layer_norm.weight", "copy")
        group = f"task_{tcfg.name}"
        b.dense(f"{ot}/{group}_projection", f"transformer.projections.{group}")
        b.add(f"{ot}/{group}_pos_embedding", f"transformer.pos_embeddings.{group}", "copy")
    for ocfg in cfg.observation_tokenizers:
        group = f"obs_{ocfg.name}"
        if isinstance(ocfg, ImageTokenizerConfig):
            pre = f"{ot}/observation_tokenizers_{ocfg.name}/{ocfg.stem.name}_0"
            sp = f"transformer.obs_tokenizers.{ocfg.name}.stem"
            for i in range(len(ocfg.stem.features)):
                b.add(f"{pre}/StdConv_{i}/kernel", f"{sp}.convs.{i}.weight", "conv")
                b.add(f"{pre}/StdConv_{i}/bias", f"{sp}.convs.{i}.bias", "copy")
                b.norm(f"{pre}/GroupNorm_{i}", f"{sp}.norms.{i}")
            b.add(f"{pre}/embedding/kernel", f"{sp}.embedding.weight", "conv")
            b.add(f"{pre}/embedding/bias", f"{sp}.embedding.bias", "copy")
            if ocfg.stem.use_film:  # Dense_0 multiplies, Dense_1 adds (see FilmConditioning)
                b.dense(f"{pre}/FilmConditioning_0/Dense_0", f"{sp}.film.scale")
                b.dense(f"{pre}/FilmConditioning_0/Dense_1", f"{sp}.film.shift")
        b.dense(f"{ot}/{group}_projection", f"transformer.projections.{group}")
        b.add(f"{ot}/{group}_pos_embedding", f"transformer.pos_embeddings.{group}", "copy")
    for name in cfg.readouts:
        b.add(f"{ot}/readout_{name}_pos_embedding", f"transformer.pos_embeddings.readout_{name}", "copy")
    bt = f"{ot}/BlockTransformer_0/Transformer_0"
    d = cfg.token_embedding_size
    heads = cfg.transformer.num_attention_heads
    for i in range(cfg.transformer.num_layers):
        fp, tp = f"{bt}/encoderblock_{i}", f"transformer.blocks.{i}"
        b.norm(f"{fp}/LayerNorm_0", f"{tp}.norm1")
        qkv = f"{tp}.attn.qkv"
        b.mha(f"{fp}/MultiHeadDotProductAttention_0", (qkv, (0, d)), (qkv, (d, 2 * d)), (qkv, (2 * d, 3 * d)),
              f"{tp}.attn.out", heads)
        b.norm(f"{fp}/LayerNorm_1", f"{tp}.norm2")
        b.dense(f"{fp}/MlpBlock_0/Dense_0", f"{tp}.mlp.fc1")
        b.dense(f"{fp}/MlpBlock_0/Dense_1", f"{tp}.mlp.fc2")
    b.norm(f"{bt}/encoder_norm", "transformer.encoder_norm")
    for hcfg in cfg.heads:
        head = module.heads[hcfg.name]
        fp, tp = f"heads_{hcfg.name}", f"heads.{hcfg.name}"
        if head.map_head is not None:
            b.map_head(f"{fp}/map_head", f"{tp}.map_head", head.map_head)
        if isinstance(head, DiffusionActionHead):
            dp, dm = f"{fp}/diffusion_model", f"{tp}.diffusion_model"
            b.add(f"{dp}/time_preprocess/kernel", f"{dm}.time_kernel", "copy")
            b.dense(f"{dp}/cond_encoder/Dense_0", f"{dm}.cond_fc1")
            b.dense(f"{dp}/cond_encoder/Dense_1", f"{dm}.cond_fc2")
            rn = f"{dp}/reverse_network"
            b.dense(f"{rn}/Dense_0", f"{dm}.input_fc")
            for j in range(hcfg.num_blocks):
                if hcfg.use_layer_norm:
                    b.norm(f"{rn}/MLPResNetBlock_{j}/LayerNorm_0", f"{dm}.block_norms.{j}")
                b.dense(f"{rn}/MLPResNetBlock_{j}/Dense_0", f"{dm}.block_fc1.{j}")
                b.dense(f"{rn}/MLPResNetBlock_{j}/Dense_1", f"{dm}.block_fc2.{j}")
            b.dense(f"{rn}/Dense_1", f"{dm}.output_fc")
        elif isinstance(head, ContinuousActionHead):
            b.dense(f"{fp}/mean_proj", f"{tp}.mean_proj")
    return b.entries


def flax_to_state_dict(module: OctoModule, flat: Mapping[str, np.ndarray], strict: bool = True, progress=None):
    """Torch state dict for ``module`` from a flat Flax parameter dict (shape-checked, names in errors).

    ``module`` may live on the meta device: only parameter shapes are read from it.
    """
    table = parameter_table(module)
    missing = [e.flax for e in table if e.flax not in flat]
    if missing:
        raise MissingParameterError(
            f"checkpoint lacks {len(missing)} parameter(s) the config requires, e.g. " + ", ".join(missing[:5])
        )
    if strict:
        known = {e.flax for e in table}
        extra = sorted(k for k in flat if k not in known)
        if extra:
            raise UnexpectedParameterError(
                f"checkpoint has {len(extra)} parameter(s) the config does not use, e.g. " + ", ".join(extra[:5])
            )
    for e in table:
        a = flat[e.flax]
        if tuple(a.shape) != e.flax_shape:
            raise ParameterShapeError(
                f"parameter {e.flax}: checkpoint shape {tuple(a.shape)} != expected {e.flax_shape} "
                f"(torch {e.torch})"
            )
    shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    state: Dict[str, torch.Tensor] = {}
    for e in (progress(table) if progress else table):
        a = np.ascontiguousarray(to_torch(e.kind, np.asarray(flat[e.flax], dtype=np.float32), e.flax_shape))
        if e.rows is None:
            state[e.torch] = torch.from_numpy(a.copy() if not a.flags.writeable else a)
        else:
            if e.torch not in state:
                state[e.torch] = torch.empty(shapes[e.torch], dtype=torch.float32)
            state[e.torch][e.rows[0] : e.rows[1]] = torch.from_numpy(a.copy())
    uncovered = [n for n in shapes if n not in state]
    if uncovered:  # would be a bug in the table
        raise RuntimeError(f"torch parameters without a checkpoint mapping: {uncovered[:5]}")
    return state


def export_flax_params(module: OctoModule) -> Dict[str, np.ndarray]:
    """Flat Flax parameter dict (float32) of ``module`` — the inverse of :func:`flax_to_state_dict`."""
    params = {n: p.detach().float().cpu().numpy() for n, p in module.named_parameters()}
    out: Dict[str, np.ndarray] = {}
    for e in parameter_table(module):
        t = params[e.torch]
        if e.rows is not None:
            t = t[e.rows[0] : e.rows[1]]
        out[e.flax] = np.ascontiguousarray(to_flax(e.kind, t, e.flax_shape), dtype=np.float32)
    return out
