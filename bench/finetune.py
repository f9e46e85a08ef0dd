"""Fine-tuning throughput: optimizer steps per second and peak memory of ``octo-ros finetune``'s
training step (data sampling, augmentation, forward, loss, backward, AdamW) for octo-small and
octo-base sized models (random weights; T5 is a one-layer stand-in, it never runs in training
because instruction embeddings are cached), window 2, diffusion head, full fine-tuning.

    nice -n 10 .venv/bin/python bench/finetune.py                      # small+base, batch 8 and 32, CPU
    .venv/bin/python bench/finetune.py --sizes small --batches 8 --steps 5 --device cuda

Each configuration runs in its own process (peak RSS is per process); configurations are
interleaved over ``--rounds``.  CPU: peak resident memory of the process; CUDA: peak allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "test")]


def write_checkpoint(path: Path, size: str) -> Path:
    import torch

    from octo_ros.finetune.model import init_parameter
    from octo_ros.model.checkpoint import write_official_checkpoint
    from octo_ros.model.config import T5Config, parse_config
    from octo_ros.model.octo import OctoModule, shapes_from_images
    from octo_ros.model.testing import make_config, make_example_batch, random_statistics, write_tokenizer
    from octo_ros.model.weights import export_flax_params

    config = make_config(size, cameras=("primary", "wrist"))
    image_sizes = config.pop("image_sizes")
    cfg = parse_config(config)
    cfg.task_tokenizers[0].t5 = T5Config(vocab_size=64, num_layers=1)
    counts, channels = shapes_from_images(cfg, {c: (s, s, 3) for c, s in image_sizes.items()}, {})
    module = OctoModule(cfg, counts, channels)
    gen = torch.Generator().manual_seed(0)
    for name, p in module.named_parameters():
        init_parameter(name, p, gen, name.endswith("norm1.weight") or name.endswith("norm2.weight"))
    example = make_example_batch(config, image_sizes, 7, 4)
    write_official_checkpoint(path, config, export_flax_params(module), random_statistics(7), example)
    write_tokenizer(path)
    return path


def run_one(size: str, batch: int, steps: int, device: str, workdir: Path, threads) -> dict:
    import torch

    from octo_ros.finetune import FinetuneConfig, Finetuner

    ck = workdir / f"ck_{size}"
    if not (ck / "config.json").is_file():
        write_checkpoint(ck, size)
    cfg = FinetuneConfig(checkpoint=str(ck), datasets=[str(workdir / "dataset")], out=str(workdir / f"out_{size}_{batch}"),
                         cameras={"primary": "cam", "wrist": "cam"}, batch_size=batch, steps=steps + 1, device=device,
                         val_fraction=0.0, progress=False, threads=threads)
    tuner = Finetuner(cfg)
    tuner.module.train()
    cuda = tuner.device.type == "cuda"
    tuner.train_step()  # warm-up (allocator, kernels)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        tuner.train_step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trainable = sum(p.numel() for p in tuner.trainable_params)
    return {"size": size, "batch": batch, "device": str(tuner.device), "steps_per_s": steps / dt,
            "samples_per_s": steps * batch / dt, "peak_mib": peak, "trainable_params": trainable}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["small", "base"])
    ap.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration (after one warm-up step)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--workdir", default=None, help="keep checkpoints and the dataset here (default: a temp dir)")
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="octo_ft_bench_"))
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.steps, args.device, workdir, args.threads)))
        return 0
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "dataset" / "meta" / "info.json").is_file():
        from support.finetune_data import make_lerobot_dataset

        make_lerobot_dataset(workdir / "dataset", episodes=4, steps=40)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    print(f"CPU: {cpu} ({os.cpu_count()} logical cores); torch threads {args.threads or 'default'}; "
          f"load before: {os.getloadavg()}")
    rows = []
    for _ in range(args.rounds):
        for size in args.sizes:
            for batch in args.batches:
                cmd = [sys.executable, __file__, "--one", size, str(batch), "--steps", str(args.steps),
                       "--device", args.device, "--workdir", str(workdir)] + (["--threads", str(args.threads)] if args.threads else [])
                res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'test'}"))
                if res.returncode != 0:
                    print(f"{size} batch {batch}: failed\n{res.stderr[-2000:]}")
                    continue
                row = json.loads(res.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"{row['size']:>5}  batch {row['batch']:>3}  {row['device']:>5}  {row['steps_per_s']:.3f} steps/s  "
                      f"{row['samples_per_s']:.2f} samples/s  peak {row['peak_mib']:.0f} MiB  "
                      f"trainable {row['trainable_params'] / 1e6:.1f}M", flush=True)
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
