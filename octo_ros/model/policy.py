"""Public inference API: load an Octo checkpoint once, build tasks, sample action chunks.

Typical use (e.g. from the ROS policy node)::

    policy = OctoPolicy.load("/models/octo-small-1.5", device="cpu", dtype="bfloat16", threads=2,
                             tokenizer="/models/t5-base")  # folder with spiece.model
    tasks = policy.create_tasks(texts=["pick up the spoon"])    # T5 runs once per new instruction
    out = policy.sample_actions(obs_window, tasks, dataset_key="bridge_dataset", seed=0)
    out.unnormalized  # (B, action_horizon, action_dim) float32 numpy

Observation windows are numpy dicts with a batch and a window axis: ``image_<cam>`` uint8
(B, W, H, W, 3), optional ``proprio`` float32 (B, W, P), ``timestep_pad_mask`` bool (B, W) and
optionally ``pad_mask_dict`` {key: bool (B, W)}.

A policy serves one caller at a time: it keeps the previous call's image-stem outputs
(``stem_cache``) so that consecutive windows, which share frames, encode each frame once.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .checkpoint import CheckpointError, read_official_checkpoint
from .config import OctoConfig, parse_config
from .hardware import choose_dtype
from .heads import DiffusionActionHead
from .native import example_batch_spec, is_native, load_native, save_native
from .normalization import NormalizationType, dataset_keys, select_statistics, unnormalize_actions
from .octo import OctoModule, shapes_from_params
from .text import EOS_ID, T5TextTokenizer
from .tokenizers import StemCache, TokenGroup
from .weights import flax_to_state_dict

log = logging.getLogger(__name__)

@dataclass
class SampledActions:
    """Output of :meth:`OctoPolicy.sample_actions` (numpy, float32), one action chunk per batch row."""

    normalized: np.ndarray  # (B, horizon, action_dim) as produced by the head
    unnormalized: Optional[np.ndarray]  # (B, horizon, len(stats)) or None without statistics
    readout_embedding: np.ndarray  # (B, W, D) float32 (what the head is conditioned on)
    latency_s: float = 0.0


_MALLOC_TUNED = False


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Keep tensor-sized blocks on the glibc heap instead of fresh ``mmap``s (process-wide, idempotent).

    For the owner of the process to call (the policy node, ``octo-ros infer``, the benchmarks), not
    for a library: it changes how every allocation of the process is served.

    By default glibc serves allocations above a (dynamic) threshold with ``mmap`` and unmaps them on
    free, so every forward pass page-faults and zero-fills its activations again (~8,000-13,000 minor
    faults per octo-small call, tens of ms on a 2-vCPU VM).  Raising the mmap and trim thresholds keeps
    the freed blocks for reuse (0-80 faults per call); the cost is that up to one call's worth of
    activation memory stays reserved.  No-op (False) outside glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    except (OSError, AttributeError):
        ok = False
    _MALLOC_TUNED = ok
    return ok


def load_module(path: Union[str, Path], step: Optional[int] = None, strict: bool = True, progress: bool = False):
    """``(module, dataset_statistics, example_spec, info)`` from a native or official checkpoint."""
    path = Path(path)
    if is_native(path):
        if step is not None:
            raise CheckpointError("a native checkpoint holds one step; do not pass step")
        module, meta = load_native(path)
        info = dict(meta.get("source") or {})
        info.setdefault("format", "native")
        return module, meta["dataset_statistics"], meta["example_batch_spec"], info
    ck = read_official_checkpoint(path, step)
    search = [path, path.parent, path.parent.parent]
    cfg = parse_config(ck.config, search_dirs=search)
    counts, channels = shapes_from_params(cfg, ck.params)
    with torch.device("meta"):
        module = OctoModule(cfg, counts, channels)
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = lambda it: tqdm(it, desc="converting parameters", unit="tensor")  # noqa: E731
        except ImportError:  # pragma: no cover
            bar = None
    state = flax_to_state_dict(module, ck.params, strict=strict, progress=bar)
    module.load_state_dict(state, strict=True, assign=True)
    info = {"format": "official", "path": str(path), "step": ck.step}
    return module.eval(), ck.dataset_statistics, example_batch_spec(ck.example_batch), info


def convert_checkpoint(src: Union[str, Path], dst: Union[str, Path], step: Optional[int] = None, progress: bool = True) -> Path:
    """One-time conversion official layout -> native (safetensors + JSON)."""
    t0 = time.perf_counter()
    module, stats, spec, info = load_module(src, step=step, progress=progress)
    out = save_native(dst, module, stats, spec, source=info)
    log.info("converted %s -> %s in %.1f s", src, dst, time.perf_counter() - t0)
    return out


class OctoPolicy:
    def __init__(
        self,
        module: OctoModule,
        dataset_statistics: Mapping,
        example_spec: Optional[Mapping] = None,
        *,
        device: Union[str, torch.device] = "cpu",
        dtype="float32",
        text_tokenizer: Optional[T5TextTokenizer] = None,
        model_id: Optional[str] = None,
        cache_size: int = 64,
    ):
        """``dtype`` float32 or bfloat16; bfloat16 runs as float32 on a device without native bf16
        (see :mod:`.hardware`), :attr:`dtype` is what runs."""
        self.device = torch.device(device)
        self.dtype = choose_dtype(dtype, self.device)
        self.module = module.eval()  # eval: the image stems keep their standardised kernels
        self.cfg: OctoConfig = module.cfg
        self.dataset_statistics = dict(dataset_statistics or {})
        self.example_spec = dict(example_spec or {})
        self.text_tokenizer = text_tokenizer
        self.model_id = model_id or "octo"
        self._lang_cache: "OrderedDict[bytes, torch.Tensor]" = OrderedDict()
        self._cache_size = cache_size
        # consecutive windows share frames: each is encoded by the image stems once (None: every call)
        self.stem_cache: Optional[StemCache] = StemCache()
        # the diffusion head's reverse process: (embedding, initial noise, step noise list,
        # embodiment_action_dim) -> actions; None: the head's eager loop (bench/gpu.py replays a CUDA graph)
        self.reverse_diffusion: Optional[Callable] = None
        self.module.to(self.device)
        if self.dtype != torch.float32:
            # the transformer (stems included) runs in low precision; T5 and heads stay float32
            for name, child in self.module.transformer.named_children():
                if name != "task_tokenizers":
                    child.to(self.dtype)

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(
        cls,
        path: Union[str, Path],
        device: Union[str, torch.device] = "cpu",
        dtype="float32",
        threads: Optional[int] = None,
        *,
        step: Optional[int] = None,
        tokenizer: Union[None, str, Path, T5TextTokenizer] = None,
        strict: bool = True,
        progress: bool = False,
    ) -> "OctoPolicy":
        """Load a native (``octo_ros.json``) or official (``config.json`` + ``<step>/default``) checkpoint.

        ``threads`` sets ``torch.set_num_threads`` (process-wide).  ``tokenizer``: a ``spiece.model``
        / ``tokenizer.json`` file, a folder with one, a hub name, or a :class:`T5TextTokenizer`; needed
        only for text instructions.
        """
        if threads is not None:
            torch.set_num_threads(int(threads))
        module, stats, spec, info = load_module(path, step=step, strict=strict, progress=progress)
        text_tok = None
        if isinstance(tokenizer, T5TextTokenizer):
            text_tok = tokenizer
        elif tokenizer is not None:
            max_len = module.token_counts.get("task_language", 16)
            text_tok = T5TextTokenizer.from_pretrained(tokenizer, max_length=max_len)
        p = Path(path)
        step_s = f"@{info['step']}" if info.get("step") is not None else ""
        model_id = f"{Path(info.get('path', p)).name}{step_s}"
        return cls(module, stats, spec, device=device, dtype=dtype, text_tokenizer=text_tok, model_id=model_id)

    def save_native(self, path: Union[str, Path]) -> Path:
        """Write the loaded weights in the native format (float32; a bf16 policy saves bf16-rounded values)."""
        return save_native(path, self.module, self.dataset_statistics, self.example_spec,
                           source={"model_id": self.model_id})

    # ------------------------------------------------------------------ description
    @property
    def action_head(self):
        return self.module.heads["action"]

    @property
    def action_dim(self) -> int:
        return self.cfg.action_head.action_dim

    @property
    def action_horizon(self) -> int:
        return self.cfg.action_head.action_horizon

    @property
    def head_kind(self) -> str:
        return self.cfg.action_head.kind

    @property
    def max_window(self) -> int:
        return self.cfg.max_horizon

    @property
    def window_size(self) -> int:
        """The window the model was trained with (``config.window_size``; 2 for Octo 1.5)."""
        return self.cfg.window_size or 2

    @property
    def dataset_keys(self) -> list:
        return dataset_keys(self.dataset_statistics)

    @property
    def has_language(self) -> bool:
        return any(t.t5 is not None for t in self.cfg.task_tokenizers)

    @property
    def observation_keys(self) -> Dict[str, tuple]:
        """Expected observation keys -> per-step shape (H, W, 3) or (P,), from the example batch."""
        out = {}
        for key, (shape, dtype) in self.example_spec.items():
            if key.startswith("observation/") and key.count("/") == 1:
                name = key.split("/", 1)[1]
                if name.startswith("image_") or name == "proprio" or name.startswith("depth_"):
                    out[name] = tuple(shape[2:])
        return out

    def proprio_statistics(self, dataset_key: Optional[str] = None) -> Optional[Mapping]:
        """The chosen dataset's ``proprio`` statistics (None when the checkpoint has none)."""
        return select_statistics(self.dataset_statistics, dataset_key).get("proprio")

    def action_info(self, dataset_key: Optional[str] = None) -> dict:
        """Per-dimension statistics and mask of the chosen dataset (for logging / safety limits)."""
        stats = select_statistics(self.dataset_statistics, dataset_key)["action"]
        return {k: np.asarray(v).tolist() for k, v in stats.items()}

    def describe(self) -> dict:
        return {
            "model_id": self.model_id,
            "head": self.cfg.action_head.class_name,
            "action_dim": self.action_dim,
            "action_horizon": self.action_horizon,
            "window_size": self.window_size,
            "max_window": self.max_window,
            "observation_keys": self.observation_keys,
            "dataset_keys": self.dataset_keys,
            "language": self.has_language,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
        }

    # ------------------------------------------------------------------ tasks
    def tokenize(self, texts: Sequence[str]) -> Dict[str, np.ndarray]:
        if self.text_tokenizer is None:
            raise RuntimeError("no text tokenizer configured: pass tokenizer=... to OctoPolicy.load")
        return self.text_tokenizer(list(texts))

    def _language_tokenizer(self):
        for name, tok in self.module.transformer.task_tokenizers.items():
            if tok.t5 is not None:
                return tok
        raise RuntimeError("this model has no language encoder")

    @torch.inference_mode()
    def encode_tokens(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> torch.Tensor:
        """T5 embeddings (B, L, d_model) for token ids, cached per row."""
        tok = self._language_tokenizer()
        ids = np.asarray(input_ids, dtype=np.int64)
        mask = np.asarray(attention_mask, dtype=np.int64)
        rows, todo = [None] * len(ids), []
        for i in range(len(ids)):
            key = ids[i].tobytes() + b"|" + mask[i].tobytes()
            if key in self._lang_cache:
                self._lang_cache.move_to_end(key)
                rows[i] = self._lang_cache[key]
            else:
                todo.append((i, key))
        if todo:
            idx = [i for i, _ in todo]
            emb = tok.encode(torch.from_numpy(ids[idx]).to(self.device), torch.from_numpy(mask[idx]).to(self.device))
            for j, (i, key) in enumerate(todo):
                rows[i] = emb[j]
                self._lang_cache[key] = emb[j]
                while len(self._lang_cache) > self._cache_size:
                    self._lang_cache.popitem(last=False)
        return torch.stack(rows)

    def create_tasks(
        self,
        texts: Optional[Sequence[str]] = None,
        goals: Optional[Mapping[str, np.ndarray]] = None,
        tokens: Optional[Mapping[str, np.ndarray]] = None,
        batch_size: Optional[int] = None,
    ) -> dict:
        """Octo's ``create_tasks``: language (``texts`` or pre-tokenized ``tokens``), goal images, both, or none.

        The T5 embedding replaces the token ids in ``language_instruction`` (cached per
        instruction).  Absent modalities get Octo's padding flags (False) and placeholders.
        """
        if texts is not None and tokens is not None:
            raise ValueError("pass texts or tokens, not both")
        if isinstance(texts, str):
            texts = [texts]
        n = None
        for src in (texts, tokens and tokens["input_ids"], *(goals or {}).values()):
            if src is not None:
                n = len(src)
                break
        n = n or batch_size or 1
        tasks: dict = {"pad_mask_dict": {}}
        for key, g in (goals or {}).items():
            g = np.asarray(g)
            if g.dtype != np.uint8:
                raise ValueError(f"goal {key} must be uint8, got {g.dtype}")
            tasks[key] = g
            tasks["pad_mask_dict"][key] = np.ones(n, dtype=bool)
        for key, (shape, _) in self.example_spec.items():  # zero placeholders for absent goal images
            if key.startswith("task/image_") and key.count("/") == 1:
                name = key.split("/", 1)[1]
                if name not in tasks:
                    tasks[name] = np.zeros((n, *shape[1:]), dtype=np.uint8)
                    tasks["pad_mask_dict"][name] = np.zeros(n, dtype=bool)
        if self.cfg.task_tokenizers:
            has_text = texts is not None or tokens is not None
            if texts is not None:
                tokens = self.tokenize(texts)
            elif tokens is None:  # "" -> [EOS, PAD, ...] for every T5 vocabulary
                length = self.module.token_counts.get("task_language", 16)
                ids = np.zeros((n, length), np.int64)
                ids[:, 0] = EOS_ID
                tokens = {"input_ids": ids, "attention_mask": (ids == EOS_ID).astype(np.int64)}
            if self.has_language:
                tasks["language_instruction"] = self.encode_tokens(tokens["input_ids"], tokens["attention_mask"])
            tasks["pad_mask_dict"]["language_instruction"] = np.full(n, has_text, dtype=bool)
        return tasks

    # ------------------------------------------------------------------ inference
    def _tensor(self, x, key: str = ""):
        if isinstance(x, Mapping):
            return {k: self._tensor(v, k) for k, v in x.items()}
        if isinstance(x, torch.Tensor):
            return x.to(self.device)
        a = np.asarray(x)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(a))
        if self.device.type == "cuda":  # page-locked staging: an asynchronous DMA instead of a bounce copy
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _check_observations(self, observations: Mapping) -> None:
        expected = self.observation_keys
        for key, shape in expected.items():
            if key in observations:
                got = tuple(np.shape(observations[key]))
                if len(got) < 2 or got[2:] != shape:
                    raise ValueError(f"observation {key} has shape {got}; expected (batch, window, *{shape})")
        windows = {np.shape(v)[1] for k, v in observations.items() if k != "pad_mask_dict" and np.ndim(v) >= 2}
        if len(windows) > 1:
            raise ValueError(f"observations disagree on the window size: {sorted(windows)}")
        if windows and max(windows) > self.max_window:
            raise ValueError(f"window {max(windows)} exceeds the model's maximum {self.max_window}")

    @torch.inference_mode()
    def run_transformer(self, observations: Mapping, tasks: Mapping, readouts_only: bool = False) -> Dict[str, TokenGroup]:
        """Token groups of the transformer output (float32); all groups unless ``readouts_only``."""
        self._check_observations(observations)
        obs = self._tensor(observations)
        tsk = self._tensor(tasks)
        if "timestep_pad_mask" in obs:
            tpm = obs["timestep_pad_mask"].bool()
        else:
            first = next(v for k, v in obs.items() if isinstance(v, torch.Tensor))
            tpm = torch.ones(first.shape[:2], dtype=torch.bool, device=self.device)
        out = self.module.transformer(obs, tsk, tpm, readouts_only=readouts_only, stem_cache=self.stem_cache)
        return {k: TokenGroup(v.tokens.float(), v.mask) for k, v in out.items()}

    def _noise(self, noise: Optional[Mapping], generator, seed, batch: int, window: int):
        head: DiffusionActionHead = self.action_head
        steps, flat = head.cfg.diffusion_steps, head.flat_dim
        if noise is not None:
            get = lambda k: noise[k] if k in noise else noise[f"ddpm/{k}"]  # noqa: E731
            init = torch.as_tensor(np.asarray(get("initial_noise"), dtype=np.float32))
            step = torch.as_tensor(np.asarray(get("step_noise"), dtype=np.float32))
            if init.ndim == 3:  # (B, W, HA): Octo samples every window position, returns the last
                init = init[:, -1]
            if step.ndim == 4:
                step = step[:, :, -1]
            if tuple(init.shape) != (batch, flat) or tuple(step.shape) != (steps, batch, flat):
                raise ValueError(
                    f"injected noise must be initial (B[, W], {flat}) and step ({steps}, B[, W], {flat}); "
                    f"got {tuple(init.shape)} and {tuple(step.shape)}"
                )
            return init.to(self.device), list(step.to(self.device))
        if isinstance(generator, Sequence):  # one per row: each row draws what it would draw alone
            if len(generator) != batch:
                raise ValueError(f"{len(generator)} generators for a batch of {batch}")
            draws = torch.cat([torch.randn((steps + 1, 1, flat), generator=g, dtype=torch.float32) for g in generator], 1)
            return draws[0].to(self.device), list(draws[1:].to(self.device))
        if generator is None:
            generator = torch.Generator(device="cpu")
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(int(seed))
        draws = torch.randn((steps + 1, batch, flat), generator=generator, dtype=torch.float32).to(self.device)
        return draws[0], list(draws[1:])

    @torch.inference_mode()
    def sample_actions(
        self,
        observations: Mapping,
        tasks: Mapping,
        *,
        dataset_key: Optional[str] = None,
        unnormalization_statistics: Optional[Mapping] = None,
        normalization_type: Union[str, NormalizationType] = NormalizationType.NORMAL,
        unnormalize: bool = True,
        noise: Optional[Mapping] = None,
        generator: Union[None, torch.Generator, Sequence[torch.Generator]] = None,
        seed: Optional[int] = None,
    ) -> SampledActions:
        """Sample one action chunk per batch element for the last observation of the window.

        Statistics: ``unnormalization_statistics`` (an ``action`` stats dict) or the checkpoint's
        statistics for ``dataset_key``; ``unnormalize=False`` skips un-normalisation.
        Diffusion noise: ``noise`` = {``initial_noise``: (B[, W], H*A), ``step_noise``: (T, B[, W], H*A)}
        (the golden files' convention), else drawn from ``generator`` / ``seed`` (CPU torch generator;
        or one generator per batch row, so that a row's actions are those of its call alone).
        """
        t0 = time.perf_counter()
        stats = unnormalization_statistics
        if stats is None and unnormalize and self.dataset_statistics:
            stats = select_statistics(self.dataset_statistics, dataset_key)["action"]
        groups = self.run_transformer(observations, tasks, readouts_only=True)
        head = self.action_head
        hcfg = self.cfg.action_head
        group = groups[hcfg.readout_key]
        embedding = head.embed(group)  # (B, W, D)
        batch, window = embedding.shape[:2]
        if isinstance(head, DiffusionActionHead):
            init, steps = self._noise(noise, generator, seed, batch, window)
            emb_dim = len(stats["mean"] if "mean" in stats else stats["p01"]) if stats is not None else None
            actions = (self.reverse_diffusion or head.predict)(embedding[:, -1], init, steps, emb_dim)
        else:
            actions = head.predict(embedding[:, -1])
        normalized = actions.float().cpu().numpy()
        unnorm = unnormalize_actions(normalized, stats, normalization_type) if stats is not None else None
        return SampledActions(normalized, unnorm, embedding.float().cpu().numpy(), time.perf_counter() - t0)
