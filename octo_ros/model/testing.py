"""Random and untrained Octo checkpoints, for tests, the offline demo and the benchmarks: the
released weights cannot be downloaded everywhere, so these write their own.

:func:`make_random_checkpoint` builds a randomly initialised model of a given size in PyTorch and
writes it in the official layout.  :func:`make_untrained_checkpoint` writes (once) a tiny one with a
small sentencepiece tokenizer (``spiece.model``, T5's PAD=0/EOS=1 convention) trained on a few
instructions, so language tasks work end to end.  Their actions are meaningless: the models are
untrained.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import torch

from .checkpoint import jsonable, write_official_checkpoint
from .config import T5Config, parse_config
from .octo import OctoModule, shapes_from_images
from .policy import OctoPolicy
from .weights import export_flax_params


def _spec(module: str, name: str, **kwargs) -> dict:
    return {"module": module, "name": name, "args": [], "kwargs": kwargs}


SIZES = {
    # name: (D, layers, mlp, heads, image sizes primary/wrist, head kwargs, language encoder)
    "tiny": dict(d=64, layers=2, mlp=128, heads=2, primary=64, wrist=32, t5="t5_tiny",
                 head=dict(hidden_dim=64, num_blocks=2, time_dim=16, diffusion_steps=10)),
    # trains on a 2-core CPU in minutes (tools/train_demo_policy.sh): the blocks stay a few pixels wide
    "demo": dict(d=128, layers=4, mlp=256, heads=4, primary=128, wrist=64, t5="t5_tiny",
                 head=dict(hidden_dim=128, num_blocks=2, time_dim=16, diffusion_steps=10)),
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
    film: bool = False,
) -> dict:
    """An Octo-1.5-style ``config.json`` dict (ModuleSpec components) for a given size; with
    ``film`` the image stems are FiLM-conditioned on the instruction (Octo's ``use_film``)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    s = SIZES[size]
    if film and not language:
        raise ValueError("FiLM conditions the image stems on the instruction: it needs language")
    stem_kwargs, film_kwargs = (dict(use_film=True), dict(task_film_keys=["language_instruction"])) if film else ({}, {})
    obs = {}
    for cam in cameras:
        obs[cam] = _spec(
            "octo.model.components.tokenizers", "ImageTokenizer",
            encoder=_spec("octo.model.components.vit_encoders", "SmallStem16", **stem_kwargs),
            obs_stack_keys=[f"image_{cam}"], task_stack_keys=[f"image_{cam}"], **film_kwargs,
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
        return jsonable(out)
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
    window_size: int = 2,
    film: bool = False,
):
    """Build a randomly initialised Octo model in PyTorch and write it in the official layout.

    ``size`` is ``tiny`` (test-sized, tiny T5 stand-in), ``demo`` (the shipped demo policy's, same T5), ``small`` or ``base`` (release
    architectures with a t5-base encoder).  Returns ``(path, module)`` with the in-memory model.
    """
    path = Path(path)
    config = make_config(size, cameras, head, action_dim, action_horizon, proprio_dim, language, window_size, film=film)
    image_sizes = config.pop("image_sizes")
    tiny_t5 = SIZES.get(size, {}).get("t5") == "t5_tiny"
    if language and tiny_t5 and write_t5_config:
        t5_dir = path / "t5_tiny"
        t5_dir.mkdir(parents=True, exist_ok=True)
        (t5_dir / "config.json").write_text(json.dumps(dict(TINY_T5, model_type="t5")))
    cfg = parse_config(config, search_dirs=[path])
    if language and tiny_t5 and cfg.task_tokenizers[0].t5 is None:
        cfg.task_tokenizers[0].t5 = T5Config(**TINY_T5)
    counts, channels = shapes_from_images(
        cfg, {c: (s, s, 3) for c, s in image_sizes.items()}, {"proprio": proprio_dim or 0}
    )
    gen = torch.Generator().manual_seed(seed)
    module = OctoModule(cfg, counts, channels)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if ".film." in name:
                p.zero_()  # FiLM starts as the identity, as Octo initialises it
            elif p.ndim == 1 and name.endswith(".weight") and any("norm" in part for part in name.split(".")[:-1]):
                # every norm's scale (blocks, stem, the transformer's and the MAP head's final
                # LayerNorm, T5's RMSNorms) near 1, as flax and T5 initialise them: a scale near 0
                # starves what follows of signal (the frozen T5 would give the model tiny, nearly
                # identical instruction tokens)
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


def make_random_policy(size: str, cameras=("primary", "wrist"), dtype="float32", device="cpu", seed: int = 0) -> OctoPolicy:
    """An in-memory policy of a release architecture with random weights (benchmarks); its T5 is one
    layer deep: it runs once per instruction, outside what the benchmarks time."""
    config = make_config(size, cameras=cameras)
    image_sizes = config.pop("image_sizes")
    cfg = parse_config(config)
    cfg.task_tokenizers[0].t5 = T5Config(vocab_size=64, num_layers=1)
    counts, channels = shapes_from_images(cfg, {c: (s, s, 3) for c, s in image_sizes.items()}, {})
    torch.manual_seed(seed)
    module = OctoModule(cfg, counts, channels)
    spec = {f"observation/image_{c}": [[1, 2, s, s, 3], "uint8"] for c, s in image_sizes.items()}
    spec.update({f"task/image_{c}": [[1, s, s, 3], "uint8"] for c, s in image_sizes.items()})
    return OctoPolicy(module, random_statistics(), spec, device=device, dtype=dtype, model_id=f"random-{size}")


INSTRUCTIONS = [
    "pick up the spoon", "put the spoon in the bowl", "open the drawer", "close the drawer",
    "transfer the cube to the other arm", "insert the peg into the socket", "move the block to the left",
    "stack the red block on the blue block", "wipe the table", "fold the cloth", "push the button",
    "place the carrot on the plate", "put the eggplant in the pot", "sweep the beans into the dustpan",
    "pick up the red cube with the right arm",  # the bimanual simulator's task
]

MARKER = "octo_ros_untrained.json"
TOKENIZER_VERSION = 3  # bump when write_tokenizer changes, so cached checkpoints are rewritten


def write_tokenizer(path: Path) -> Path:
    """A word-level sentencepiece model whose vocabulary holds every word of INSTRUCTIONS and of the
    simulated tasks: a word outside it is <unk>, and instructions differing only in such words (the
    green and the yellow block) would reach the model as one."""
    import sentencepiece as spm

    from octo_ros.sim.reach import reach_instructions

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter((INSTRUCTIONS + reach_instructions()) * 20), model_writer=model, vocab_size=64, pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, model_type="word", hard_vocab_limit=False, minloglevel=2)
    target = path / "spiece.model"
    target.write_bytes(model.getvalue())
    return target


def make_untrained_checkpoint(path: Union[str, Path], *, cameras=("primary",), action_dim: int = 7,
                              action_horizon: int = 4, head: str = "diffusion", dataset: str = "untrained",
                              seed: int = 0, proprio_dim: Optional[int] = None) -> Path:
    """Write (once: an existing one with the same settings is kept) a tiny untrained
    Octo checkpoint with a tokenizer at ``path``."""
    path = Path(path)
    settings = dict(tokenizer=TOKENIZER_VERSION, cameras=list(cameras), action_dim=action_dim, action_horizon=action_horizon, head=head,
                    dataset=dataset, seed=seed, proprio_dim=proprio_dim)
    marker = path / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return path
    make_random_checkpoint(path, "tiny", seed=seed, cameras=tuple(cameras), head=head, action_dim=action_dim,
                           action_horizon=action_horizon, dataset=dataset, proprio_dim=proprio_dim)
    write_tokenizer(path)
    marker.write_text(json.dumps(settings))
    return path
