"""``octo-ros finetune``: Octo's fine-tuning recipe (``scripts/finetune.py``) in PyTorch.

OUT ends up in the official checkpoint layout (``config.json``, ``dataset_statistics.json``,
``example_batch.msgpack``, ``<step>/default/``: what ``OctoModel.load_pretrained`` and
``read_official_checkpoint`` read), plus ``native/`` (the same weights in the native format,
loaded fastest by the policy node), ``finetune_config.json``, ``log.json`` and ``loss.png``
(training and validation loss), and ``state/`` (optimizer and RNG state for ``--resume``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from octo_ros.model.checkpoint import write_official_checkpoint
from octo_ros.model.config import T5_PRESETS, ImageTokenizerConfig, LowdimTokenizerConfig
from octo_ros.model.native import example_batch_spec, save_native
from octo_ros.model.octo import OctoModule
from octo_ros.model.policy import load_module
from octo_ros.model.text import T5TextTokenizer
from octo_ros.model.weights import export_flax_params

from . import augment as aug
from .data import CameraSource, InstructionTable, SampleBuilder, prepare_episodes, split_episodes
from .lerobot import IMAGE_PREFIX, DatasetError, FrameStore, LeRobotDataset
from .losses import head_loss
from .model import ModelEdits, build_module, edit_config, frozen_patterns, parameter_roles
from .statistics import compute_statistics

log = logging.getLogger(__name__)

STATE_FILE = "state/state.pt"


class FinetuneError(RuntimeError):
    """Fine-tuning cannot start or had to stop (the message says why and where)."""


@dataclass
class FinetuneConfig:
    """Every default of ``octo-ros finetune`` (official values from ``finetune_config.py``)."""

    checkpoint: str
    datasets: List[str]
    out: str
    mode: str = "full"  # full | head_only | head_mlp_only
    task: str = "multimodal"  # multimodal | language_conditioned | image_conditioned
    head: Optional[str] = None  # diffusion | l1 | mse: a new action head
    action_dim: Optional[int] = None
    action_horizon: Optional[int] = None
    proprio: bool = False  # add a LowdimObsTokenizer for observation.state
    cameras: Dict[str, str] = field(default_factory=dict)  # model camera -> dataset camera key
    drop_cameras: List[str] = field(default_factory=list)
    window: Optional[int] = None  # None: the checkpoint's window_size
    batch_size: int = 256
    steps: int = 50_000
    learning_rate: float = 3e-4
    lr_schedule: str = "cosine"  # cosine | rsqrt | constant
    warmup_steps: int = 2000  # capped at steps // 10 for short runs
    weight_decay: float = 0.01
    clip_gradient: float = 1.0
    grad_accumulation: int = 1
    seed: int = 42
    log_interval: int = 100
    eval_interval: int = 5000
    save_interval: int = 5000
    val_batches: int = 16
    val_fraction: float = 0.05  # held-out episodes when a dataset has no "val" split
    image_augmentation: bool = True
    task_augmentation: bool = True
    device: str = "auto"
    threads: Optional[int] = None  # torch CPU threads (None: torch's default, all cores)
    tokenizer: Optional[str] = None
    dataset_key: Optional[str] = None  # None: flat statistics (Octo's single-dataset layout)
    resume: bool = False
    progress: bool = True

    def identity(self) -> dict:
        """The settings a resumed run must share with the original."""
        d = dataclasses.asdict(self)
        for k in ("steps", "resume", "progress", "device", "threads", "log_interval", "eval_interval", "save_interval"):
            d.pop(k)
        return d


def lr_at(cfg: FinetuneConfig, update: int) -> float:
    """Learning rate of optimizer update ``update`` (0-based, as optax counts)."""
    warmup = min(cfg.warmup_steps, max(cfg.steps // 10, 1))
    peak = cfg.learning_rate
    if update < warmup:
        return peak * update / warmup
    if cfg.lr_schedule == "constant":
        return peak
    if cfg.lr_schedule == "rsqrt":
        timescale = 10_000
        return peak / math.sqrt((update - warmup + timescale) / timescale)
    if cfg.lr_schedule == "cosine":  # optax.warmup_cosine_decay_schedule, decay_steps = steps (incl. warmup)
        frac = min((update - warmup) / max(cfg.steps - warmup, 1), 1.0)
        return peak * 0.5 * (1 + math.cos(math.pi * frac))
    raise FinetuneError(f"unknown learning-rate schedule {cfg.lr_schedule!r} (cosine, rsqrt, constant)")


# --------------------------------------------------------------------------- set-up


TOKENIZER_FILES = ("spiece.model", "tokenizer.json")


def _find_tokenizer(cfg: FinetuneConfig) -> tuple:
    """(tokenizer, its file if local) from --tokenizer, else the checkpoint folder; (None, None)."""
    candidates = [cfg.tokenizer] if cfg.tokenizer else []
    root = Path(cfg.checkpoint)
    candidates += [str(root / n) for n in TOKENIZER_FILES if (root / n).is_file()]
    for c in candidates:
        path = Path(c)
        if path.is_dir():
            path = next((path / n for n in TOKENIZER_FILES if (path / n).is_file()), None)
        return T5TextTokenizer.from_pretrained(c), (path if path is not None and path.is_file() else None)
    return None, None


def _refuse_merged_instructions(texts: Sequence[str], input_ids: np.ndarray, tokenizer) -> None:
    """Distinct instructions must reach the model as distinct tokens: words outside a tokenizer's
    vocabulary become <unk> (and long ones are cut at the model's token count), which would train
    one policy for two tasks."""
    seen: Dict[bytes, str] = {}
    for text, ids in zip(texts, np.asarray(input_ids)):
        other = seen.setdefault(ids.tobytes(), text)
        if other != text:
            raise FinetuneError(f"the instructions {other!r} and {text!r} give the same tokens with the tokenizer {tokenizer} "
                                f"({ids.tolist()}): words outside its vocabulary, or beyond the model's {len(ids)} "
                                "language tokens; use a tokenizer that tells them apart (--tokenizer)")


def _camera_keys(model_cameras: Sequence[str], datasets: Sequence[LeRobotDataset], explicit: Dict[str, str]) -> Dict[str, str]:
    """Model camera name -> dataset camera key (explicit ``--camera``, or the key named like the
    camera, or the only camera of the dataset for ``primary``)."""
    available = datasets[0].cameras
    for ds in datasets[1:]:
        if ds.cameras != available:
            raise FinetuneError(f"datasets have different cameras: {available} vs {ds.cameras} ({ds.root})")
    out = {}
    for name, key in explicit.items():
        if name not in model_cameras:
            raise FinetuneError(f"--camera {name}=...: the model has no camera {name!r}; its cameras: {list(model_cameras)}")
        full = key if key in available else IMAGE_PREFIX + key
        if full not in available:
            raise FinetuneError(f"--camera {name}={key}: the dataset has no camera {key!r}; it has {available}")
        out[name] = full
    for name in model_cameras:
        if name in out:
            continue
        if IMAGE_PREFIX + name in available:
            out[name] = IMAGE_PREFIX + name
        elif name == "primary" and len(available) == 1:
            out[name] = available[0]
    missing = [n for n in model_cameras if n not in out]
    if missing:
        raise FinetuneError(
            f"the dataset has no camera for the model's image input(s) {', '.join('image_' + m for m in missing)}; "
            f"dataset cameras: {available or 'none'}. Map one with --camera {missing[0]}=<dataset camera> "
            f"or remove the input with --drop-camera {missing[0]}")
    return out


def _image_size(module: OctoModule, spec: dict, name: str) -> tuple:
    shape = spec.get(f"observation/image_{name}")
    if shape:
        return int(shape[0][2]), int(shape[0][3])
    side = int(round(math.sqrt(module.token_counts[f"obs_{name}"]))) * 16  # square image, 16-pixel patches
    return side, side


def _to_torch(tree, device):
    if isinstance(tree, dict):
        return {k: _to_torch(v, device) for k, v in tree.items()}
    return torch.as_tensor(np.asarray(tree)).to(device, non_blocking=True)


class Finetuner:
    def __init__(self, cfg: FinetuneConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        if cfg.grad_accumulation < 1 or cfg.batch_size < 1 or cfg.steps < 1:
            raise FinetuneError("--batch-size, --steps and --grad-accumulation must be >= 1")
        if not cfg.datasets:
            raise FinetuneError("no dataset given (--dataset DIR)")
        self.device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if cfg.device == "auto" else cfg.device))
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        torch.manual_seed(cfg.seed)
        pretrained, _, spec, info = load_module(cfg.checkpoint)
        self.source = info
        try:
            self.datasets = [LeRobotDataset(d) for d in cfg.datasets]
        except DatasetError as exc:
            raise FinetuneError(str(exc)) from None
        ds0 = self.datasets[0]
        for ds in self.datasets[1:]:
            if (ds.action_dim, ds.state_dim) != (ds0.action_dim, ds0.state_dim):
                raise FinetuneError(f"{ds.root}: action/state dimensions differ from {ds0.root}")

        # ---- model: edits, merge, freeze
        head_cfg = pretrained.cfg.action_head
        if cfg.head is None and ds0.action_dim != head_cfg.action_dim:
            raise FinetuneError(
                f"the dataset's actions are {ds0.action_dim}-D but the checkpoint's head predicts {head_cfg.action_dim}-D "
                f"actions; fine-tune a new head: --head l1|mse|diffusion --action-dim {ds0.action_dim} --action-horizon H")
        if cfg.head is not None and cfg.action_dim is not None and cfg.action_dim != ds0.action_dim:
            raise FinetuneError(f"--action-dim {cfg.action_dim} does not match the dataset's {ds0.action_dim}-D actions")
        has_proprio_tok = any(isinstance(o, LowdimTokenizerConfig) for o in pretrained.cfg.observation_tokenizers)
        self.use_proprio = cfg.proprio or has_proprio_tok
        if self.use_proprio and ds0.state_dim is None:
            raise FinetuneError(f"{ds0.root}: the model needs proprio but the dataset has no observation.state")
        proprio_dim = ds0.state_dim if self.use_proprio else None
        edits = ModelEdits(head=cfg.head, action_dim=cfg.action_dim or (ds0.action_dim if cfg.head else None),
                           action_horizon=cfg.action_horizon, add_proprio=cfg.proprio and not has_proprio_tok,
                           drop_cameras=tuple(cfg.drop_cameras))
        try:
            self.config = edit_config(pretrained.cfg.raw, edits)
            module, self.fresh = build_module(pretrained, self.config, proprio_dim)
        except ValueError as exc:
            raise FinetuneError(str(exc)) from None
        self.window = int(cfg.window or pretrained.cfg.window_size or 2)
        if self.window > module.cfg.max_horizon:
            raise FinetuneError(f"window {self.window} exceeds the model's max_horizon {module.cfg.max_horizon}")
        self.config["window_size"] = self.window
        self.module = module
        self.head = module.heads["action"]
        self.head_cfg = module.cfg.action_head
        patterns = frozen_patterns(cfg.mode, pretrained.cfg.raw)
        self.trainable, self.frozen, decayed = parameter_roles(module, patterns)
        params = dict(module.named_parameters())
        for name in self.frozen:
            params[name].requires_grad_(False)
        if cfg.mode == "head_only" and any(n.startswith("transformer.") for n in self.fresh):
            log.warning("head_only keeps the new tokenizer parameters %s at their initial values (frozen, as Octo)",
                        [n for n in self.fresh if n.startswith("transformer.")][:3])
        del pretrained

        # ---- data
        image_cfgs = [o for o in module.cfg.observation_tokenizers if isinstance(o, ImageTokenizerConfig)]
        self.camera_keys = _camera_keys([o.name for o in image_cfgs], self.datasets, cfg.cameras)
        self.cameras = [CameraSource(o.name, _image_size(module, spec, o.name), bool(o.task_stack_keys)) for o in image_cfgs]
        episodes = []
        for ds in self.datasets:
            episodes += ds.episodes()
        if not episodes or sum(e.length for e in episodes) == 0:
            raise FinetuneError(f"the dataset(s) {cfg.datasets} hold no frames")
        self.statistics = compute_statistics(episodes, ds0.action_names, self.use_proprio)
        train_idx, val_idx = self._split(episodes)
        cache = self.out / "frame_cache"
        stores: Dict[int, Dict[str, FrameStore]] = {}
        for ds in self.datasets:
            mine = [e for e in episodes if e.dataset is ds]
            stores[id(ds)] = {}
            for cam in self.cameras:
                key = self.camera_keys[cam.name]
                try:
                    stores[id(ds)][cam.name] = FrameStore.build(cache, ds, key, mine, cam.size_hw, progress=cfg.progress)
                except DatasetError as exc:
                    raise FinetuneError(str(exc)) from None
        self.instructions = InstructionTable()
        prepared = prepare_episodes(episodes, stores, self.camera_keys, self.statistics, self.instructions, self.use_proprio)
        self.language = bool(module.cfg.task_tokenizers) and any(t.t5 is not None for t in module.cfg.task_tokenizers)
        horizon = self.head_cfg.action_horizon
        self.train_data = SampleBuilder([prepared[i] for i in train_idx], self.cameras, self.window, horizon,
                                        cfg.task, cfg.task_augmentation, self.language)
        self.val_data = SampleBuilder([prepared[i] for i in val_idx], self.cameras, self.window, horizon,
                                      cfg.task, False, self.language) if val_idx else None
        self.num_episodes = (len(train_idx), len(val_idx))

        # ---- language: T5 once per distinct instruction
        self.text_tokenizer, self.tokenizer_file = _find_tokenizer(cfg) if self.language else (None, None)
        self.module.to(self.device)
        self.lang_embeddings = self._encode_instructions() if self.language else None

        # ---- optimizer (AdamW; decay only on kernels; frozen parameters are not in it)
        decay = set(decayed)
        groups = [{"params": [params[n] for n in self.trainable if n in decay], "weight_decay": cfg.weight_decay},
                  {"params": [params[n] for n in self.trainable if n not in decay], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=0.0, betas=(0.9, 0.999), eps=1e-8,
                                           foreach=True)
        self.trainable_params = [params[n] for n in self.trainable]
        # batches are built one step ahead in a worker thread, overlapping the model's compute
        self._prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="finetune-data")
        self._pending: Dict[tuple, concurrent.futures.Future] = {}
        self.step = 0
        self.history = {"train": [], "val": []}
        self.last_saved: Optional[Path] = None
        self.example_batch = None

    # ------------------------------------------------------------------ helpers
    def _split(self, episodes) -> tuple:
        vals = []
        for ds in self.datasets:
            named = ds.split_episodes("val") or ds.split_episodes("validation")
            if named:
                vals += [i for i, e in enumerate(episodes) if e.dataset is ds and e.index in set(named)]
        if vals:
            return [i for i in range(len(episodes)) if i not in set(vals)], vals
        return split_episodes(len(episodes), self.cfg.val_fraction, self.cfg.seed)

    def _encode_instructions(self) -> torch.Tensor:
        texts = self.instructions.texts
        if self.text_tokenizer is None:
            if any(texts[1:]):
                raise FinetuneError("the model reads language instructions: pass --tokenizer (a T5 spiece.model or "
                                    "tokenizer.json, or a folder holding one); none was found in the checkpoint folder")
            max_len = self.module.token_counts.get("task_language", 16)
            tokens = {"input_ids": np.zeros((len(texts), max_len), np.int64), "attention_mask": np.zeros((len(texts), max_len), np.int64)}
            tokens["input_ids"][:, 0] = 1
            tokens["attention_mask"][:, 0] = 1
        else:
            self.text_tokenizer.max_length = self.module.token_counts.get("task_language", 16)
            tokens = self.text_tokenizer(texts)
            _refuse_merged_instructions(texts, tokens["input_ids"], self.tokenizer_file or self.cfg.tokenizer or self.cfg.checkpoint)
        self.tokens = tokens
        tok = next(t for t in self.module.transformer.task_tokenizers.values() if t.t5 is not None)
        with torch.no_grad():
            return tok.encode(torch.from_numpy(tokens["input_ids"]).to(self.device),
                              torch.from_numpy(tokens["attention_mask"]).to(self.device)).float()

    def model_inputs(self, batch: dict, generator: torch.Generator, augment_images: bool):
        """numpy batch -> (observations, tasks, timestep_pad_mask) tensors on the device."""
        obs = _to_torch({k: v for k, v in batch["observation"].items() if k not in ("timestep", "task_completed")}, self.device)
        task_np = batch["task"]
        tasks = {"pad_mask_dict": _to_torch(task_np["pad_mask_dict"], self.device)}
        for cam in self.cameras:
            key = f"image_{cam.name}"
            frames = obs[key]
            goal = _to_torch(task_np[key], self.device) if cam.goal else None
            if augment_images:
                stack = frames if goal is None else torch.cat([frames, goal[:, None]], 1)
                keep = torch.ones(stack.shape[:2], dtype=torch.bool)
                if goal is not None:
                    keep[:, -1] = torch.as_tensor(task_np["pad_mask_dict"][key])
                stack = aug.augment(stack, aug.for_camera(cam.name), generator, keep)
                frames, goal = (stack, None) if goal is None else (stack[:, :-1], stack[:, -1])
            obs[key] = frames
            if goal is not None:
                tasks[key] = goal
        if self.language:
            tasks["language_instruction"] = self.lang_embeddings[torch.as_tensor(task_np["language_id"]).to(self.device)]
        return obs, tasks, obs.pop("timestep_pad_mask")

    def loss(self, batch: dict, generator: torch.Generator, train: bool):
        obs, tasks, tpm = self.model_inputs(batch, generator, train and self.cfg.image_augmentation)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()
        with autocast:
            groups = self.module.transformer(obs, tasks, tpm, readouts_only=True)
            embedding = self.head.embed(groups[self.head_cfg.readout_key])
            actions = torch.as_tensor(batch["action"]).to(self.device)
            apm = torch.as_tensor(batch["action_pad_mask"]).to(self.device)
            return head_loss(self.head, embedding, actions, tpm, apm, generator)

    # ------------------------------------------------------------------ training
    def validate(self) -> Optional[float]:
        if self.val_data is None:
            return None
        rng = np.random.default_rng(self.cfg.seed + 1)  # the same batches and noise at every evaluation
        gen = torch.Generator().manual_seed(self.cfg.seed + 1)
        self.module.eval()
        total = 0.0
        with torch.no_grad():
            for _ in range(self.cfg.val_batches):
                batch = self.val_data.batch(self.val_data.draw(rng, self.cfg.batch_size), rng, train=False)
                total += float(self.loss(batch, gen, train=False)[0])
        self.module.train()
        return total / self.cfg.val_batches

    def step_random(self, step: int, micro: int) -> tuple:
        """(numpy, torch) generators of one micro-batch, from (seed, step, micro) alone: a run is
        reproducible and a resumed run continues exactly, whatever ran before."""
        rng = np.random.default_rng([self.cfg.seed, step, micro])
        return rng, torch.Generator().manual_seed(int(rng.integers(2**62)))

    def _make_batch(self, step: int, micro: int) -> tuple:
        rng, gen = self.step_random(step, micro)
        return self.train_data.batch(self.train_data.draw(rng, self.cfg.batch_size), rng, train=True), gen

    def _batch(self, step: int, micro: int) -> tuple:
        key = (step, micro)
        future = self._pending.pop(key, None) or self._prefetch.submit(self._make_batch, step, micro)
        nxt = (step, micro + 1) if micro + 1 < self.cfg.grad_accumulation else (step + 1, 0)
        if nxt not in self._pending and nxt[0] < self.cfg.steps:  # build the next one meanwhile
            self._pending[nxt] = self._prefetch.submit(self._make_batch, *nxt)
        return future.result()

    def train_step(self) -> dict:
        cfg = self.cfg
        for g in self.optimizer.param_groups:
            g["lr"] = lr_at(cfg, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        losses = []
        for micro in range(cfg.grad_accumulation):
            batch, gen = self._batch(self.step, micro)
            if self.example_batch is None:
                self.example_batch = self._example(batch)
            loss, _ = self.loss(batch, gen, train=True)
            value = float(loss.detach())
            if not math.isfinite(value):
                where = str(self.last_saved) if self.last_saved else "none (no checkpoint was saved yet)"
                raise FinetuneError(f"non-finite training loss ({value}) at step {self.step + 1}: training stopped; "
                                    f"last good checkpoint: {where}")
            (loss / cfg.grad_accumulation).backward()
            losses.append(value)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable_params, cfg.clip_gradient) if cfg.clip_gradient > 0 else \
            torch.nn.utils.clip_grad_norm_(self.trainable_params, float("inf"))
        self.optimizer.step()
        self.step += 1
        return {"loss": float(np.mean(losses)), "grad_norm": float(grad_norm), "lr": self.optimizer.param_groups[0]["lr"]}

    def run(self) -> Path:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.resume:
            self._load_state()
        else:
            if (self.out / STATE_FILE).exists():
                raise FinetuneError(f"{self.out} holds a previous run: pass --resume to continue it, or choose a new --out")
            (self.out / "finetune_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
            initial = self.validate()  # the pretrained model's validation loss, for comparison
            if initial is not None:
                self.history["val"].append({"step": 0, "loss": initial})
        self.module.train()
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc="finetune", unit="step")
        t_log, n_log, window = time.perf_counter(), 0, []
        try:
            while self.step < cfg.steps:
                m = self.train_step()
                window.append(m["loss"])
                n_log += cfg.batch_size * cfg.grad_accumulation
                if bar is not None:
                    bar.update(1)
                last = self.step == cfg.steps
                if self.step % cfg.log_interval == 0 or last:
                    rate = n_log / max(time.perf_counter() - t_log, 1e-9)
                    self.history["train"].append({"step": self.step, "loss": float(np.mean(window)), "lr": m["lr"],
                                                  "grad_norm": m["grad_norm"], "samples_per_s": rate})
                    if bar is not None:
                        bar.set_postfix(loss=f"{np.mean(window):.4f}", samples_s=f"{rate:.1f}")
                    t_log, n_log, window = time.perf_counter(), 0, []
                if self.step % cfg.eval_interval == 0 or last:
                    val = self.validate()
                    if val is not None:
                        self.history["val"].append({"step": self.step, "loss": val})
                        if not math.isfinite(val):
                            raise FinetuneError(f"non-finite validation loss at step {self.step}: training stopped; "
                                                f"last good checkpoint: {self.last_saved or 'none'}")
                if self.step % cfg.save_interval == 0 or last:
                    self.save()
        finally:
            if bar is not None:
                bar.close()
            self._prefetch.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
            self.write_log()
        return self.out

    # ------------------------------------------------------------------ output
    def _example(self, batch: dict) -> dict:
        """One training example (batch dimension 1), as ``example_batch.msgpack`` holds it."""
        one = lambda x: np.asarray(x)[:1]  # noqa: E731
        obs = {k: one(v) for k, v in batch["observation"].items()}
        obs["pad_mask_dict"] = {k: np.ones(obs["timestep_pad_mask"].shape, bool) for k in batch["observation"]
                                if k.startswith("image_") or k == "proprio"}
        task = {k: one(v) for k, v in batch["task"].items() if k.startswith("image_")}
        task["timestep"] = one(batch["task"]["timestep"])
        task["pad_mask_dict"] = {k: one(v) for k, v in batch["task"]["pad_mask_dict"].items()}
        if self.language:
            i = int(batch["task"]["language_id"][0])
            task["language_instruction"] = {k: np.asarray(v[i : i + 1]) for k, v in self.tokens.items()}
        return {"observation": obs, "task": task, "action": one(batch["action"]).astype(np.float32),
                "action_pad_mask": one(batch["action_pad_mask"])}

    def saved_statistics(self) -> dict:
        return {self.cfg.dataset_key: self.statistics} if self.cfg.dataset_key else self.statistics

    def save(self) -> Path:
        stats = self.saved_statistics()
        module = self.module
        write_official_checkpoint(self.out, self.config, export_flax_params(module), stats, self.example_batch, step=self.step)
        for t in module.cfg.task_tokenizers:  # an encoder that is not a hub preset: its config next to the checkpoint
            if t.t5 is not None and t.encoder and str(t.encoder).split("/")[-1] not in T5_PRESETS:
                d = self.out / str(t.encoder)
                d.mkdir(parents=True, exist_ok=True)
                (d / "config.json").write_text(json.dumps(dict(dataclasses.asdict(t.t5), model_type="t5")))
        # which camera inputs saw the random resized crop: the observation buffer applies its
        # average (Octo's eval-time crop) to those only
        crop = {f"image_{c.name}": bool(self.cfg.image_augmentation and aug.for_camera(c.name).crop) for c in self.cameras}
        source = {"format": "native", "finetuned_from": self.source, "step": self.step, "average_crop": crop}
        save_native(self.out / "native", module, stats, example_batch_spec(self.example_batch), source=source)
        if self.tokenizer_file is not None:  # the policy node finds a tokenizer shipped in the checkpoint folder
            for d in (self.out, self.out / "native"):
                if not (d / self.tokenizer_file.name).is_file():
                    shutil.copyfile(self.tokenizer_file, d / self.tokenizer_file.name)
        self._save_state()
        self.last_saved = self.out / str(self.step)
        return self.last_saved

    def _save_state(self) -> None:
        path = self.out / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"step": self.step, "model": {n: p.detach().cpu() for n, p in self.module.named_parameters() if n in set(self.trainable)},
                 "optimizer": self.optimizer.state_dict(), "history": self.history, "identity": self.cfg.identity(),
                 "example_batch": self.example_batch, "last_saved": str(self.last_saved or "")}
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def _load_state(self) -> None:
        path = self.out / STATE_FILE
        if not path.is_file():
            raise FinetuneError(f"--resume: no training state in {path}")
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["identity"] != self.cfg.identity():
            diff = sorted(k for k in state["identity"] if state["identity"][k] != self.cfg.identity().get(k))
            raise FinetuneError(f"--resume: settings differ from the run in {self.out}: {diff}")
        params = dict(self.module.named_parameters())
        with torch.no_grad():
            for n, v in state["model"].items():
                params[n].copy_(v.to(params[n].device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = state["history"]
        self.example_batch = state["example_batch"]
        self.last_saved = Path(state["last_saved"]) if state["last_saved"] else None

    def write_log(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        info = {"steps": self.step, "episodes": {"train": self.num_episodes[0], "val": self.num_episodes[1]},
                "device": str(self.device), "mode": self.cfg.mode, "trainable_parameters": int(sum(p.numel() for p in self.trainable_params)),
                "new_parameters": self.fresh, "train": self.history["train"], "val": self.history["val"]}
        tmp = self.out / "log.json.tmp"
        tmp.write_text(json.dumps(info, indent=1))
        os.replace(tmp, self.out / "log.json")
        if not self.history["train"]:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([r["step"] for r in self.history["train"]], [r["loss"] for r in self.history["train"]], label="train")
        if self.history["val"]:
            ax.plot([r["step"] for r in self.history["val"]], [r["loss"] for r in self.history["val"]], "o-", label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel(f"{self.head_cfg.class_name} loss")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(self.out / "loss.png", dpi=100)
        plt.close(fig)


def finetune(cfg: FinetuneConfig) -> Path:
    return Finetuner(cfg).run()
