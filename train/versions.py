"""The versions and the machine a run, an export or a benchmark records: one helper for
each. Standard library only (bench/machine.py imports it in runtime-only benchmarks)."""
from __future__ import annotations

import importlib
import os
import platform
from pathlib import Path


def versions(*modules: str) -> dict[str, str]:
    """{"python": ..., module: module.__version__ for each module named} (imports them:
    call it where TensorFlow is meant to be loaded anyway).

    Example: versions("tensorflow", "keras", "numpy").
    """
    found = {"python": platform.python_version()}
    for name in modules:
        found[name] = str(getattr(importlib.import_module(name), "__version__", "unknown"))
    return found


def cpu_info() -> dict[str, object]:
    """{"model": CPU model name, "cores": usable cores, "flags": the instruction sets that
    decide TensorFlow's and onnxruntime's kernels (avx2, avx512*, *vnni*, amx*)}, read
    from /proc/cpuinfo ("unknown" and no flags where there is none).

    The same recipe trained at 13 steps/s for the shipped MNIST model (machine not
    recorded then) and at 2.7 steps/s on an AVX2-only AMD EPYC: a run's seconds mean
    little without the machine they were measured on."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    wanted = sorted(f for f in flags
                    if f == "avx2" or any(k in f for k in ("avx512", "vnni", "amx")))
    return {"model": model, "cores": len(os.sched_getaffinity(0)), "flags": wanted}


# The flags that give bfloat16 arithmetic on x86: elsewhere TensorFlow's CPU kernels emulate
# it, slower than float32 (6.3x in a probe on an AVX2-only AMD EPYC; README).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def has_bf16_arithmetic(cpu: dict[str, object]) -> bool:
    """Whether a cpu_info() result lists bfloat16 arithmetic (AMX or AVX512-BF16)."""
    return any(flag in BF16_FLAGS for flag in cpu.get("flags", []))  # type: ignore[union-attr]
