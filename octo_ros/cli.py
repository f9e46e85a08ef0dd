"""``octo-ros`` command line (subcommands; others are added by other parts of the project)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Optional, Sequence


def _cmd_infer(args: argparse.Namespace) -> int:
    import numpy as np

    from octo_ros.model import OctoPolicy, tune_malloc
    from octo_ros.model.cases import read_case, run_case

    if args.device == "cpu":
        tune_malloc()  # this process only runs the model
    t0 = time.perf_counter()
    policy = OctoPolicy.load(args.checkpoint, device=args.device, dtype=args.dtype, threads=args.threads,
                             step=args.step, tokenizer=args.tokenizer)
    t1 = time.perf_counter()
    result = run_case(policy, read_case(args.inputs), dataset_key=args.dataset_key, seed=args.seed)
    t2 = time.perf_counter()
    np.savez(args.output, **result)
    print(json.dumps({"model": policy.model_id, "dtype": policy.describe()["dtype"], "output": args.output,
                      "load_s": round(t1 - t0, 3),
                      "infer_s": round(t2 - t1, 3), "keys": sorted(result)}))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from octo_ros.model import convert_checkpoint

    t0 = time.perf_counter()
    out = convert_checkpoint(args.checkpoint, args.output, step=args.step, progress=not args.quiet)
    print(json.dumps({"output": str(out), "seconds": round(time.perf_counter() - t0, 2)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="octo-ros", description="Octo policy tools")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("infer", help="run one case file (golden key convention) through a checkpoint")
    p.add_argument("checkpoint", help="official checkpoint directory or native (converted) directory")
    p.add_argument("inputs", help="case .npz with input/... keys and optional ddpm/initial_noise, ddpm/step_noise")
    p.add_argument("output", help="output .npz (head/readout_embedding, actions/normalized, actions/unnormalized)")
    p.add_argument("--dataset-key", default=None, help="dataset statistics key for un-normalisation")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="bfloat16 runs as float32 (with a warning) where the device has no native bf16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--step", type=int, default=None)
    p.add_argument("--seed", type=int, default=0, help="noise seed when the case has no injected noise")
    p.add_argument("--tokenizer", default=None, help="T5 tokenizer file/folder (only for text instructions)")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("convert", help="convert an official checkpoint to the native safetensors format")
    p.add_argument("checkpoint")
    p.add_argument("output")
    p.add_argument("--step", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_convert)

    from octo_ros.recording.cli import register as register_recording  # review, export, repair

    register_recording(sub)

    from octo_ros.finetune.cli import register as register_finetune

    register_finetune(sub)

    from octo_ros.ros.collect import register as register_collect
    from octo_ros.ros.demo import register as register_demo
    from octo_ros.ros.evaluate import register as register_evaluate
    from octo_ros.ros.launcher import register as register_launch

    register_launch(sub)
    register_demo(sub)
    register_collect(sub)
    register_evaluate(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    # key:=value items may follow options (`launch widowx --sim checkpoint:=...`), which
    # argparse does not give to a positional once an option came in between.
    args, extra = parser.parse_known_args(argv)
    # SIGTERM (a supervisor, `kill`) ends a command as Ctrl-C does, so the node processes a command
    # started (each in its own session) are stopped by its `finally`, not orphaned.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Ctrl-C stops a command even where its parent left SIGINT ignored (an ignored signal stays
    # ignored across exec: a test process or a shell's background job), as the nodes do.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if extra:
        if not hasattr(args, "assignments") or any(":=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.assignments = list(args.assignments) + extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
