"""Octo on CUDA: parity on every golden case in float32 and bfloat16, and latency of octo-small/base.

    PYTHONPATH=. python3 bench/gpu.py                # on a CUDA machine: parity, then latency
    PYTHONPATH=. python3 bench/gpu.py --dry-check    # anywhere: the same code path on the CPU, one tiny case

Needs only torch, numpy, msgpack, safetensors and sentencepiece (no ROS, no venv, no cv2/yaml):
it imports nothing of octo_ros outside ``octo_ros.model``.  What it does on CUDA:

- TF32 off (``torch.backends.{cuda.matmul,cudnn}.allow_tf32 = False``) so that float32 parity is float32;
- the head's 20-step reverse diffusion loop captured once per batch size as a CUDA graph and as
  ``torch.compile(mode="reduce-overhead")``; both are timed and the faster one is used (eager when
  neither works), and parity runs through the chosen one;
- static shapes (fixed batch, window and cameras per run), page-locked host memory for the uploads
  (``OctoPolicy`` stages CUDA inputs in pinned memory), and the latency runs resize raw 640x480
  camera frames on the device (Lanczos-3, antialiased, the kernel of Octo's ``tf.image.resize``;
  frames are uploaded as uint8) inside the timed call.

Without CUDA it says so and runs ``--dry-check``: golden parity of the smallest case through the same
functions on the CPU (eager loop), so CI catches a broken code path (``test/test_bench_gpu.py``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from octo_ros.model import OctoPolicy  # noqa: E402
from octo_ros.model.cases import read_case, run_case  # noqa: E402
from octo_ros.model.hardware import describe_bf16  # noqa: E402
from octo_ros.model.testing import make_random_policy  # noqa: E402

GOLDEN = ROOT.parent / "shared" / "golden"
# test/test_model_parity.py's tolerances (max-abs): fp32 readouts / actions / random-init actions, bf16
READOUT_TOL, ACTION_TOL, RANDINIT_ACTION_TOL, BF16_TOL = 1e-5, 1e-4, 1e-3, 0.1
CAMERA_HW = (480, 640)


# ------------------------------------------------------------------------------------------------
# the reverse diffusion loop: eager, CUDA graph, torch.compile


class GraphedReverseDiffusion:
    """The head's reverse process replayed from a CUDA graph, one graph per input shape (static
    inputs copied in, the output copied out)."""

    def __init__(self, head):
        self.head = head
        self.graphs: Dict[tuple, tuple] = {}

    def __call__(self, embedding, initial_noise, step_noise, embodiment_action_dim=None):
        key = (tuple(embedding.shape), tuple(initial_noise.shape), len(step_noise), embodiment_action_dim)
        if key not in self.graphs:
            self.graphs[key] = self._capture(embedding, initial_noise, step_noise, embodiment_action_dim)
        graph, emb, init, steps, out = self.graphs[key]
        emb.copy_(embedding)
        init.copy_(initial_noise)
        steps.copy_(torch.stack(list(step_noise)))
        graph.replay()
        return out.clone()

    def _capture(self, embedding, initial_noise, step_noise, dim):
        emb, init = embedding.clone(), initial_noise.clone()
        steps = torch.stack(list(step_noise)).clone()
        run = lambda: self.head.predict(emb, init, list(steps.unbind(0)), dim)  # noqa: E731
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph (lazy initialisation, autotuning)
            for _ in range(3):
                run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = run()
        return graph, emb, init, steps, out


class CompiledReverseDiffusion:
    """The head's reverse process through ``torch.compile(mode="reduce-overhead")`` (CUDA graphs
    managed by inductor)."""

    def __init__(self, head):
        self.head = head
        self.compiled = torch.compile(self._run, mode="reduce-overhead", dynamic=False)

    def _run(self, embedding, initial_noise, steps, dim: Optional[int]):
        return self.head.predict(embedding, initial_noise, list(steps.unbind(0)), dim)

    def __call__(self, embedding, initial_noise, step_noise, embodiment_action_dim=None):
        return self.compiled(embedding, initial_noise, torch.stack(list(step_noise)), embodiment_action_dim).clone()


def time_call(fn: Callable, reps: int, sync: bool) -> float:
    """Median ms of ``fn()`` (after two warm-up calls)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def choose_reverse_diffusion(policy: OctoPolicy, batch: int, reps: int = 20) -> str:
    """Time eager / CUDA graph / compiled on this policy's head at ``batch``; install the fastest."""
    head = policy.action_head
    if not hasattr(head, "diffusion_model"):
        policy.reverse_diffusion = None
        return "eager (no diffusion head)"
    cuda = policy.device.type == "cuda"
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(batch, policy.cfg.token_embedding_size, generator=gen).to(policy.device)
    init = torch.randn(batch, head.flat_dim, generator=gen).to(policy.device)
    steps = list(torch.randn(head.cfg.diffusion_steps, batch, head.flat_dim, generator=gen).to(policy.device))
    candidates = {"eager": None}
    if cuda:
        candidates["cuda graph"] = GraphedReverseDiffusion(head)
        candidates["torch.compile reduce-overhead"] = CompiledReverseDiffusion(head)
    if len(candidates) == 1:
        policy.reverse_diffusion = None
        return "eager"
    timings = {}
    with torch.inference_mode():
        reference = head.predict(emb, init, steps, None)
        for name, runner in candidates.items():
            call = (lambda r=runner: (r or head.predict)(emb, init, steps, None))
            try:
                out = call()
                if not torch.allclose(out, reference, rtol=0, atol=1e-3):
                    raise RuntimeError(f"differs from the eager loop by {(out - reference).abs().max().item():.2e}")
                timings[name] = time_call(call, reps, cuda)
            except Exception as exc:  # noqa: BLE001 - report and fall back to the others
                print(f"#   {name}: unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
    best = min(timings, key=timings.get)
    policy.reverse_diffusion = candidates[best]
    print(f"#   reverse diffusion (batch {batch}, {head.cfg.diffusion_steps} steps): "
          + ", ".join(f"{n} {t:.2f} ms" for n, t in timings.items()) + f" -> {best}")
    return best


# ------------------------------------------------------------------------------------------------
# image resize on the device


def _lanczos3(x: torch.Tensor) -> torch.Tensor:
    x = x.abs()
    safe = torch.where(x < 1e-3, torch.ones_like(x), x)
    val = 3 * torch.sin(math.pi * safe) * torch.sin(math.pi * safe / 3) / (math.pi ** 2 * safe ** 2)
    return torch.where(x < 1e-3, torch.ones_like(x), torch.where(x > 3, torch.zeros_like(x), val))


def resize_matrix(n_in: int, n_out: int, device) -> torch.Tensor:
    """(n_out, n_in) float32 weights of TF's antialiased Lanczos-3 ``ScaleAndTranslate`` (scale
    n_out / n_in, no translation): the kernel widened by the downscale factor, rows summing to 1."""
    scale = n_out / n_in
    kernel_scale = max(1.0 / scale, 1.0)
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) / scale  # in input pixels
    source = torch.arange(n_in, dtype=torch.float64) + 0.5
    w = _lanczos3((source[None, :] - centre[:, None]) / kernel_scale)
    w = w * ((source[None, :] - centre[:, None]).abs() <= 3 * kernel_scale)
    return (w / w.sum(1, keepdim=True)).float().to(device)


def resize_on_device(frames: torch.Tensor, out_hw, matrices: Dict[tuple, torch.Tensor]) -> torch.Tensor:
    """uint8 (..., H, W, 3) on the device -> uint8 (..., out_h, out_w, 3): rows, then columns."""
    h, w = frames.shape[-3:-1]
    rows = matrices.setdefault((h, out_hw[0]), resize_matrix(h, out_hw[0], frames.device))
    cols = matrices.setdefault((w, out_hw[1]), resize_matrix(w, out_hw[1], frames.device))
    x = frames.float()
    x = torch.einsum("oh,...hwc->...owc", rows, x)
    x = torch.einsum("pw,...owc->...opc", cols, x)
    return x.round().clamp_(0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------------------
# parity and latency


def golden_cases(only_smallest: bool = False):
    cases = sorted(p for p in GOLDEN.glob("*/case*.npz") if not p.stem.endswith("_debug"))
    if only_smallest:
        cases = sorted(cases, key=lambda p: p.stat().st_size)[:1]
    return cases


def parity(device: str, dtypes, only_smallest: bool) -> bool:
    """Every golden case through ``OctoPolicy`` on ``device`` with the chosen reverse-diffusion loop."""
    ok = True
    print("| variant | case | dtype | loop | readout max err | action max err | tolerance | holds |")
    print("|---|---|---|---|---|---|---|---|")
    policies = {}
    for path in golden_cases(only_smallest):
        variant = path.parent.name
        case = read_case(path)
        batch = case["input/observation/timestep_pad_mask"].shape[0]
        for dtype in dtypes:
            key = (variant, dtype, batch)
            if key not in policies:
                policy = OctoPolicy.load(GOLDEN / variant / "checkpoint", device=device, dtype=dtype)
                policies[key] = (policy, choose_reverse_diffusion(policy, batch))
            policy, loop = policies[key]
            out = run_case(policy, case)
            readout = float(np.abs(out["head/readout_embedding"] - case["head/readout_embedding"]).max())
            action = max(float(np.abs(out[k] - case[k]).max()) for k in ("actions/normalized", "actions/unnormalized"))
            ran = policy.describe()["dtype"]
            if ran == "bfloat16":
                compared = variant != "tiny_randinit"  # random-init heads are chaotic in bf16 (test_model_parity)
                tol = (BF16_TOL, BF16_TOL)
            else:
                compared = True
                tol = (READOUT_TOL, RANDINIT_ACTION_TOL if variant == "tiny_randinit" else ACTION_TOL)
            holds = (readout <= tol[0] and action <= tol[1]) if compared else None
            ok &= holds is not False
            verdict = {True: "yes", False: "**NO**", None: "not compared"}[holds]
            print(f"| {variant} | {path.stem} | {ran} | {loop} | {readout:.2e} | {action:.2e} | {tol[0]:g} / {tol[1]:g} | {verdict} |",
                  flush=True)
    return ok


def latency(device: str, sizes, dtypes, batches, reps: int) -> None:
    """Median ms of one call: raw 640x480 uint8 frames uploaded, resized on the device, the
    transformer, the chosen reverse-diffusion loop, actions back on the host."""
    sync = device.startswith("cuda")
    print("| model | dtype | batch | loop | median ms (raw frames -> actions) | calls/s |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for size in sizes:
        for dtype in dtypes:
            policy = make_random_policy(size, ("primary", "wrist"), dtype, device)
            shapes = policy.observation_keys
            matrices: Dict[tuple, torch.Tensor] = {}
            for batch in batches:
                loop = choose_reverse_diffusion(policy, batch)
                raw = {k: rng.integers(0, 256, (batch, 2, *CAMERA_HW, 3), dtype=np.uint8) for k in shapes}
                staged = {k: torch.from_numpy(v).pin_memory() if sync else torch.from_numpy(v) for k, v in raw.items()}
                ids = np.zeros((batch, 16), np.int64)
                ids[:, :5] = [7, 8, 9, 10, 1]
                tasks = policy.create_tasks(tokens={"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)})

                def call():
                    with torch.inference_mode():
                        obs = {k: resize_on_device(v.to(device, non_blocking=True), shapes[k][:2], matrices)
                               for k, v in staged.items()}
                    obs["timestep_pad_mask"] = np.ones((batch, 2), bool)
                    return policy.sample_actions(obs, tasks, seed=0).normalized

                ms = time_call(call, reps, sync)
                print(f"| octo-{size} | {policy.describe()['dtype']} | {batch} | {loop} | {ms:.2f} | {1000 / ms:.1f} |", flush=True)
            policy = None  # free it before the next model is built


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-check", action="store_true", help="CPU: the code path on the smallest golden case")
    p.add_argument("--sizes", nargs="+", default=["small", "base"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8])
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--reps", type=int, default=50)
    args = p.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 parity means float32 arithmetic
    torch.backends.cudnn.allow_tf32 = False
    print(f"# torch {torch.__version__}, cuda {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device'}, cpu count {os.cpu_count()}")
    if not (GOLDEN / "README.md").is_file():
        print(f"SKIP: golden data not found at {GOLDEN}")
        return 0
    if args.dry_check or not torch.cuda.is_available():
        if not args.dry_check:
            print("SKIP: no CUDA device; running the dry check on the CPU instead (--dry-check)")
        print(f"# {describe_bf16('cpu')}")
        ok = parity("cpu", ["float32"], only_smallest=True)
        resized = resize_on_device(torch.full((1, 48, 64, 3), 200, dtype=torch.uint8), (24, 32), {})
        ok &= bool((resized == 200).all())  # a flat image stays flat: rows of the weights sum to 1
        print(f"# dry check {'passed' if ok else 'FAILED'}")
        return 0 if ok else 1
    print(f"# {describe_bf16('cuda')}; TF32 off")
    ok = parity("cuda", args.dtypes, only_smallest=False)
    latency("cuda", args.sizes, args.dtypes, args.batches, args.reps)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
