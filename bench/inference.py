"""Latency benchmark of ``OctoPolicy.sample_actions`` (random weights; T5 embedding cached).

    .venv/bin/python bench/inference.py                 # full table
    .venv/bin/python bench/inference.py --sizes small --dtypes bfloat16 --batches 1 --reps 20
    .venv/bin/python bench/inference.py --against /tmp/old-tree ...   # before/after in one process
    .venv/bin/python bench/inference.py --cuts ...                    # FLOPs the model need not spend

Median wall time of one call (transformer once + 20 DDPM steps + un-normalisation), after warm-up.
``--against DIR`` loads the ``octo_ros/model`` package of another checkout (e.g. ``git worktree add
/tmp/old-tree <commit>``) under another name, gives it the same weights, and alternates calls to
both call by call, so that foreign load on a shared box hits both alike.
``--cuts`` counts FLOPs (``torch.utils.flop_counter``) and times, interleaved, consecutive calls on a
stream of frames (window t+1 = window t shifted by one frame) with: the last block on every row and
no stem reuse; the last block on the readout rows only; and that plus the stem outputs reused.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import itertools
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from octo_ros.model import OctoPolicy, tune_malloc  # noqa: E402
from octo_ros.model.hardware import describe_bf16  # noqa: E402
from octo_ros.model.testing import make_random_policy  # noqa: E402
from octo_ros.model.tokenizers import StemCache  # noqa: E402


def build_policy(size: str, cameras, dtype: str, device: str) -> OctoPolicy:
    policy = make_random_policy(size, cameras, dtype, device)
    if policy.describe()["dtype"] != dtype:
        print(f"# octo-{size} {dtype} runs as {policy.describe()['dtype']} here (no native bf16)")
    return policy


def inputs(policy, cameras, window: int, batch: int):
    rng = np.random.default_rng(0)
    shapes = policy.observation_keys
    obs = {f"image_{c}": rng.integers(0, 256, (batch, window, *shapes[f"image_{c}"]), dtype=np.uint8) for c in cameras}
    obs["timestep_pad_mask"] = np.ones((batch, window), bool)
    ids = np.zeros((batch, 16), np.int64)
    ids[:, :5] = [7, 8, 9, 10, 1]
    return obs, policy.create_tasks(tokens={"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)})


def bench_one(policy: OctoPolicy, cameras, window: int, batch: int, reps: int, warmup: int) -> float:
    obs, tasks = inputs(policy, cameras, window, batch)
    for _ in range(warmup):
        policy.sample_actions(obs, tasks, seed=0)
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        policy.sample_actions(obs, tasks, seed=i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def sample_all_rows(policy: OctoPolicy, observations, tasks, seed: int):
    """``sample_actions`` without the readouts-only cut: the last block computes every row."""
    groups = policy.run_transformer(observations, tasks)
    head = policy.action_head
    embedding = head.embed(groups[policy.cfg.action_head.readout_key])
    with torch.inference_mode():
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((head.cfg.diffusion_steps + 1, embedding.shape[0], head.flat_dim), generator=generator)
        return head.predict(embedding[:, -1], noise[0].to(policy.device), list(noise[1:].to(policy.device)))


def bench_cuts(size, cameras, dtype, device, window, batch, reps, warmup):
    """{variant: (GFLOP per call, median ms, min ms)} for the three variants (see the module note)."""
    policy = build_policy(size, cameras, dtype, device)
    policy.stem_cache = None
    reusing = copy.copy(policy)  # same module, its own stem cache
    reusing.stem_cache = StemCache()
    rng = np.random.default_rng(0)
    shapes = policy.observation_keys
    n = 2 + warmup + reps + window - 1
    stream = {f"image_{c}": rng.integers(0, 256, (batch, n, *shapes[f"image_{c}"]), dtype=np.uint8) for c in cameras}
    windows = [{k: v[:, i:i + window] for k, v in stream.items()} for i in range(n - window + 1)]
    _, tasks = inputs(policy, cameras, window, batch)
    variants = {
        "last block: all rows; stems: every frame": lambda i: sample_all_rows(policy, windows[i], tasks, i),
        "last block: readout rows; stems: every frame": lambda i: policy.sample_actions(windows[i], tasks, seed=i),
        "last block: readout rows; stems: new frames only": lambda i: reusing.sample_actions(windows[i], tasks, seed=i),
    }
    flops, times = {}, {name: [] for name in variants}
    for name, call in variants.items():
        call(0)  # the stem cache's first window
        with FlopCounterMode(display=False) as counter:
            call(1)
        flops[name] = counter.get_total_flops() / 1e9
    for i in range(2, n - window + 1):
        order = list(variants) if i % 2 else list(variants)[::-1]
        for name in order:
            t0 = time.perf_counter()
            variants[name](i)
            if i >= 2 + warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: (flops[name], statistics.median(t) * 1000, min(t) * 1000) for name, t in times.items()}


def load_other_model(tree: Path):
    """``octo_ros.model`` of another checkout, imported as ``octo_ros_against.model`` (its modules
    import each other relatively, so nothing of this checkout leaks in)."""
    package = types.ModuleType("octo_ros_against")
    package.__path__ = [str(tree / "octo_ros")]
    sys.modules["octo_ros_against"] = package
    return importlib.import_module("octo_ros_against.model")


def other_policy(other, policy: OctoPolicy, dtype: str, device: str):
    """The same config, weights, statistics and example spec in the other checkout's model code."""
    config = importlib.import_module(f"{other.__name__}.config")
    cfg = config.parse_config(policy.cfg.raw)
    for mine, theirs in zip(policy.cfg.task_tokenizers, cfg.task_tokenizers):
        theirs.t5 = config.T5Config(**dataclasses.asdict(mine.t5))
    module = importlib.import_module(f"{other.__name__}.octo").OctoModule(cfg, policy.module.token_counts,
                                                                         policy.module.image_channels)
    module.load_state_dict({k: v.float() for k, v in policy.module.state_dict().items()})
    return other.OctoPolicy(module, policy.dataset_statistics, policy.example_spec, device=device, dtype=dtype,
                            model_id="against")


def frame_stream(policy, cameras, window: int, batch: int, calls: int):
    """``calls`` consecutive windows of a stream of random frames (each the last shifted by one)."""
    rng = np.random.default_rng(0)
    shapes = policy.observation_keys
    stream = {f"image_{c}": rng.integers(0, 256, (batch, calls + window - 1, *shapes[f"image_{c}"]), dtype=np.uint8)
              for c in cameras}
    return [{k: v[:, i:i + window] for k, v in stream.items()} for i in range(calls)]


def bench_against(other, size, cameras, dtype, device, window, batch, reps, warmup, rounds):
    """{this, other: (median ms, min ms, median thread-CPU ms)}, the calls alternating (order swapped
    every call) on the same stream of shifted windows.  Thread CPU time counts the work of the
    calling thread only: with ``--threads 1`` all of it, and little of other processes' load."""
    policy = build_policy(size, cameras, dtype, device)
    against = other_policy(other, policy, dtype, device)
    _, tasks = inputs(policy, cameras, window, batch)
    runs = {"this": (policy, tasks), "other": (against, inputs(against, cameras, window, batch)[1])}
    windows = frame_stream(policy, cameras, window, batch, warmup + reps * rounds + 1)
    outputs = [pol.sample_actions(windows[0], tasks, seed=0).normalized for pol, tasks in runs.values()]
    print(f"# octo-{size} {dtype} W{window} B{batch}: max |this - other| of the actions {np.abs(outputs[0] - outputs[1]).max():.2e}")
    times = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for i in range(1, len(windows)):
        for name in (("this", "other") if i % 2 else ("other", "this")):
            pol, tasks = runs[name]
            t0, c0 = time.perf_counter(), time.thread_time()
            pol.sample_actions(windows[i], tasks, seed=i)
            if i > warmup:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.thread_time() - c0)
    return {name: (statistics.median(t) * 1000, min(t) * 1000, statistics.median(cpu[name]) * 1000)
            for name, t in times.items()}


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
    p.add_argument("--cuts", action="store_true", help="FLOPs and latency with and without the FLOP cuts")
    p.add_argument("--against", type=Path, default=None,
                   help="another checkout (e.g. a worktree of an older commit): before/after in this process")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.device == "cpu":
        tune_malloc()
    load = lambda: "/".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads {torch.get_num_threads()}, device {args.device}, cpu count {os.cpu_count()}, load {load()}")
    print(f"# bf16: {describe_bf16(args.device)}")
    configs = list(itertools.product(args.sizes, args.cameras, args.dtypes))
    if args.cuts:
        print(f"# {args.reps} calls per variant, interleaved, on a stream of frames")
        print("| model | cameras | window | dtype | batch | variant | GFLOP per call | median / min ms |")
        print("|---|---|---|---|---|---|---|---|")
        for (size, ncam, dtype), window, batch in itertools.product(configs, args.windows, args.batches):
            r = bench_cuts(size, ("primary", "wrist")[:ncam], dtype, args.device, window, batch, args.reps, args.warmup)
            for name, (gflop, median, best) in r.items():
                print(f"| octo-{size} | {ncam} | {window} | {dtype} | {batch} | {name} | {gflop:.2f} | {median:.1f} / {best:.1f} |",
                      flush=True)
        print(f"# load at the end {load()}")
        return 0
    if args.against is not None:
        other = load_other_model(args.against.resolve())
        print(f"# this: {Path(__file__).resolve().parents[1]}, other: {args.against}; calls alternate, "
              f"{args.reps * args.rounds} each")
        print("| model | cameras | window | dtype | batch | other: median / min ms | this: median / min ms | this/other (medians) "
              "| thread CPU other / this ms | this/other (CPU) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for (size, ncam, dtype), window, batch in itertools.product(configs, args.windows, args.batches):
            r = bench_against(other, size, ("primary", "wrist")[:ncam], dtype, args.device, window, batch,
                              args.reps, args.warmup, args.rounds)
            (om, ob, oc), (tm, tb, tc) = r["other"], r["this"]
            print(f"| octo-{size} | {ncam} | {window} | {dtype} | {batch} | {om:.1f} / {ob:.1f} | {tm:.1f} / {tb:.1f} "
                  f"| {tm / om:.3f} | {oc:.1f} / {tc:.1f} | {tc / oc:.3f} |", flush=True)
        print(f"# load at the end {load()}")
        return 0
    print("| model | cameras | window | dtype | batch | median ms |")
    print("|---|---|---|---|---|---|")
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
