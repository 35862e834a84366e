"""The machine line every benchmark prints: CPU model, cores, the instruction sets that
decide onnxruntime's kernels (AVX2, AVX-512, VNNI, AMX) and the load average. Standard
library only, so runtime-only benchmarks can import it."""
from __future__ import annotations

import os
from pathlib import Path


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def cpu(with_load: bool = True) -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    wanted = sorted(f for f in flags if any(k in f for k in ("avx512", "vnni", "amx")))
    isa = "avx2" if "avx2" in flags else "no avx2"
    line = (f"{model}, {os.cpu_count()} cores, {isa}, avx512/vnni/amx flags: "
            f"{' '.join(wanted) or 'none'}")
    return f"{line}; load average {load_average()}" if with_load else line
