"""Which dtype the machine can run fast: native bf16 arithmetic on the CPU or GPU.

bfloat16 on a CPU without bf16 instructions is a trap: torch emulates it, and a bf16 matmul on
an AVX2 CPU runs at 1-2 GFLOP/s against 46-67 GFLOP/s in float32 (issue #17), so octo-small goes
from 0.5 s to 20 s per call.  Native bf16 on x86 means AVX512-BF16 or AMX-BF16, on ARM the BF16
extension; on CUDA a GPU with bf16 units (Ampere and newer).

Choice: on a machine without native bf16, a bfloat16 request **falls back to float32 with a
warning** rather than being refused.  bfloat16 is only ever asked for speed (the models were
trained in float32, which is the reference numerics), and on such a machine float32 is both faster
and more accurate, so the fallback gives what the request was for; refusing would make one
configuration shared by a fleet (AMX servers, AVX2 laptops) fail to start on some of its machines.
The effective dtype is what :attr:`OctoPolicy.dtype` and ``describe()`` report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, FrozenSet, Optional, Union

import torch

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 AVX512-BF16, AMX; ARM BF16

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def cpu_flags() -> Optional[FrozenSet[str]]:
    """The CPU feature flags the kernel reports (``flags`` on x86, ``Features`` on ARM), None
    where there is no ``/proc/cpuinfo`` to read."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(device: Union[str, torch.device]) -> Optional[bool]:
    """Whether ``device`` computes bf16 natively; None when it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return None
    flags = cpu_flags()
    return None if flags is None else bool(flags & NATIVE_BF16_FLAGS)


def describe_bf16(device: Union[str, torch.device]) -> str:
    """One line for logs and benchmarks: the bf16 capability of ``device``."""
    device = torch.device(device)
    native = native_bf16(device)
    verdict = {True: "native bf16", False: "no native bf16 (bfloat16 runs as float32)", None: "bf16 support unknown"}[native]
    if device.type == "cpu":
        flags = cpu_flags()
        shown = "unreadable"
        if flags is not None:
            shown = " ".join(sorted(flags & (NATIVE_BF16_FLAGS | {"avx2", "avx512f", "amx_tile"}))) or "none"
        return f"cpu ({torch.backends.cpu.get_cpu_capability()}; flags: {shown}): {verdict}"
    return f"{device}: {verdict}"


def choose_dtype(
    requested: Union[str, torch.dtype],
    device: Union[str, torch.device],
    native: Callable[[torch.device], Optional[bool]] = native_bf16,
) -> torch.dtype:
    """The dtype to run ``requested`` with on ``device``: bfloat16 falls back to float32 (with a
    warning) where ``native(device)`` says the device has no bf16 arithmetic (see the module note);
    kept where that cannot be told."""
    if isinstance(requested, torch.dtype):
        dtype = requested
    else:
        try:
            dtype = DTYPES[str(requested).lower()]
        except KeyError:
            raise ValueError(f"unsupported dtype {requested!r}; use float32 or bfloat16") from None
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"unsupported dtype {dtype}; use float32 or bfloat16")
    device = torch.device(device)
    if dtype == torch.bfloat16 and native(device) is False:
        log.warning("bfloat16 requested but %s has no native bf16 arithmetic (emulated bf16 is ~40x slower "
                    "than float32 there): running float32", device)
        return torch.float32
    return dtype
