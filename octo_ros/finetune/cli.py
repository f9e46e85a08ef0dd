"""``octo-ros finetune``: argument parsing into :class:`FinetuneConfig` (defaults live there)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .train import FinetuneConfig


def _camera(item: str) -> tuple:
    if "=" not in item:
        raise argparse.ArgumentTypeError(f"--camera expects NAME=DATASET_KEY (e.g. primary=observation.images.top), got {item!r}")
    name, key = item.split("=", 1)
    return name.strip(), key.strip()


def _cmd_finetune(args: argparse.Namespace) -> int:
    from .train import FinetuneError, finetune

    defaults = {f.name: f.default for f in dataclasses.fields(FinetuneConfig) if f.default is not dataclasses.MISSING}
    values = {k: getattr(args, k) for k in defaults if getattr(args, k, None) is not None}
    cfg = FinetuneConfig(checkpoint=args.checkpoint, datasets=args.dataset, out=args.out,
                         cameras=dict(args.camera or []), drop_cameras=list(args.drop_camera or []), **values)
    try:
        out = finetune(cfg)
    except FinetuneError as exc:
        print(f"octo-ros finetune: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(out), "native": str(out / "native"), "steps": cfg.steps}))
    return 0


def register(subparsers) -> None:
    d = FinetuneConfig
    p = subparsers.add_parser("finetune", help="fine-tune an Octo checkpoint on LeRobot v3 datasets",
                              description="Octo's fine-tuning recipe in PyTorch; OUT gets the official checkpoint "
                                          "layout, native/, log.json and loss.png.")
    p.add_argument("--checkpoint", required=True, help="official or native Octo checkpoint directory")
    p.add_argument("--dataset", required=True, action="append", help="LeRobot v3 dataset directory (repeatable)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--mode", choices=["full", "head_only", "head_mlp_only"], help=f"what trains (default {d.mode})")
    p.add_argument("--task", choices=["multimodal", "language_conditioned", "image_conditioned"],
                   help=f"task conditioning, goal relabelling and task augmentation (default {d.task})")
    p.add_argument("--head", choices=["diffusion", "l1", "mse"], help="replace the action head (new action space)")
    p.add_argument("--action-dim", type=int, help="action dimension of the new head (default: the dataset's)")
    p.add_argument("--action-horizon", type=int, help="action chunk length of the new head")
    p.add_argument("--proprio", action="store_true", default=None, help="add a proprio input (LowdimObsTokenizer) from observation.state")
    p.add_argument("--camera", action="append", type=_camera, metavar="NAME=KEY", help="model camera NAME reads dataset camera KEY")
    p.add_argument("--drop-camera", action="append", metavar="NAME", help="remove the model's image input NAME")
    p.add_argument("--window", type=int, help="observation window (default: the checkpoint's window_size)")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--steps", type=int, help=f"optimizer steps (default {d.steps})")
    p.add_argument("--learning-rate", type=float, help=f"peak learning rate (default {d.learning_rate})")
    p.add_argument("--lr-schedule", choices=["cosine", "rsqrt", "constant"], help=f"default {d.lr_schedule}")
    p.add_argument("--warmup-steps", type=int, help=f"linear warm-up (default {d.warmup_steps}, at most steps/10)")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    p.add_argument("--clip-gradient", type=float, help=f"global gradient-norm clip (default {d.clip_gradient}; 0: off)")
    p.add_argument("--grad-accumulation", type=int, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--log-interval", type=int, help=f"default {d.log_interval}")
    p.add_argument("--eval-interval", type=int, help=f"validation every N steps (default {d.eval_interval})")
    p.add_argument("--save-interval", type=int, help=f"checkpoint every N steps (default {d.save_interval})")
    p.add_argument("--val-batches", type=int, help=f"default {d.val_batches}")
    p.add_argument("--val-fraction", type=float, help=f"held-out episodes without a 'val' split (default {d.val_fraction})")
    p.add_argument("--no-image-augmentation", dest="image_augmentation", action="store_false", default=None)
    p.add_argument("--no-task-augmentation", dest="task_augmentation", action="store_false", default=None)
    p.add_argument("--device", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    p.add_argument("--tokenizer", help="T5 tokenizer (spiece.model / tokenizer.json / folder); default: the checkpoint folder's")
    p.add_argument("--dataset-key", help="store the statistics under this dataset name (default: flat, as Octo's fine-tunes)")
    p.add_argument("--resume", action="store_true", default=None, help="continue the run in OUT")
    p.add_argument("--quiet", dest="progress", action="store_false", default=None, help="no progress bar")
    p.set_defaults(func=_cmd_finetune)
