"""Latency benchmark of ``OctoPolicy.sample_actions`` (random weights; T5 embedding cached).

    .venv/bin/python bench/inference.py                 # full table
    .venv/bin/python bench/inference.py --sizes small --dtypes bfloat16 --batches 1 --reps 20

Median wall time of one call (transformer once + 20 DDPM steps + un-normalisation), after warm-up.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from octo_ros.model import OctoPolicy  # noqa: E402
from octo_ros.model.checkpoint import make_config, random_statistics  # noqa: E402
from octo_ros.model.config import T5Config, parse_config  # noqa: E402
from octo_ros.model.octo import OctoModule, shapes_from_images  # noqa: E402


def build_policy(size: str, cameras, dtype: str, device: str) -> OctoPolicy:
    config = make_config(size, cameras=cameras)
    image_sizes = config.pop("image_sizes")
    cfg = parse_config(config)
    # T5 runs once per instruction (cached) and is outside the timed call: keep it one layer deep
    cfg.task_tokenizers[0].t5 = T5Config(vocab_size=64, num_layers=1)
    counts, channels = shapes_from_images(cfg, {c: (s, s, 3) for c, s in image_sizes.items()}, {})
    torch.manual_seed(0)
    module = OctoModule(cfg, counts, channels)
    spec = {f"observation/image_{c}": [[1, 2, s, s, 3], "uint8"] for c, s in image_sizes.items()}
    spec.update({f"task/image_{c}": [[1, s, s, 3], "uint8"] for c, s in image_sizes.items()})
    return OctoPolicy(module, random_statistics(), spec, device=device, dtype=dtype, model_id=f"random-{size}")


def bench_one(policy: OctoPolicy, cameras, window: int, batch: int, reps: int, warmup: int) -> float:
    rng = np.random.default_rng(0)
    sizes = {"primary": 256, "wrist": 128}
    obs = {f"image_{c}": rng.integers(0, 256, (batch, window, sizes[c], sizes[c], 3), dtype=np.uint8) for c in cameras}
    obs["timestep_pad_mask"] = np.ones((batch, window), bool)
    ids = np.zeros((batch, 16), np.int64)
    ids[:, :5] = [7, 8, 9, 10, 1]
    tasks = policy.create_tasks(tokens={"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)})
    for _ in range(warmup):
        policy.sample_actions(obs, tasks, seed=0)
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        policy.sample_actions(obs, tasks, seed=i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["small", "base"])
    p.add_argument("--cameras", nargs="+", type=int, default=[1, 2], help="1 = primary, 2 = primary + wrist")
    p.add_argument("--windows", nargs="+", type=int, default=[1, 2])
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the timed reps this many times, interleaving the configurations (shared boxes)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    load = lambda: "/".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads {torch.get_num_threads()}, device {args.device}, cpu count {os.cpu_count()}, load {load()}")
    print("| model | cameras | window | dtype | batch | median ms |")
    print("|---|---|---|---|---|---|")
    configs = list(itertools.product(args.sizes, args.cameras, args.dtypes))
    if args.rounds <= 1:
        for size, ncam, dtype in configs:
            cams = ("primary", "wrist")[:ncam]
            policy = build_policy(size, cams, dtype, args.device)
            for window, batch in itertools.product(args.windows, args.batches):
                ms = bench_one(policy, cams, window, batch, args.reps, args.warmup)
                print(f"| octo-{size} | {ncam} | {window} | {dtype} | {batch} | {ms:.1f} |", flush=True)
            del policy
    else:  # keep every policy alive and interleave, so that a burst of foreign load hits all alike
        policies = {c: build_policy(c[0], ("primary", "wrist")[: c[1]], c[2], args.device) for c in configs}
        runs = [(c, w, b) for c in configs for w, b in itertools.product(args.windows, args.batches)]
        medians = {r: [] for r in runs}
        for _ in range(args.rounds):
            for (size, ncam, dtype), window, batch in runs:
                cams = ("primary", "wrist")[:ncam]
                medians[((size, ncam, dtype), window, batch)].append(
                    bench_one(policies[(size, ncam, dtype)], cams, window, batch, args.reps, args.warmup))
        for ((size, ncam, dtype), window, batch), ms in medians.items():
            print(f"| octo-{size} | {ncam} | {window} | {dtype} | {batch} | {statistics.median(ms):.1f} "
                  f"(rounds {' '.join(f'{m:.0f}' for m in ms)}) |", flush=True)
    print(f"# load at the end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
