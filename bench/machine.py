"""The machine line every benchmark prints: CPU model, cores, the instruction sets that
decide onnxruntime's kernels (AVX2, AVX-512, VNNI, AMX) and the load average. Standard
library only, so runtime-only benchmarks can import it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train.versions import cpu_info  # noqa: E402  (standard library only)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def cpu(with_load: bool = True) -> str:
    info = cpu_info()
    flags = info["flags"]
    isa = "avx2" if "avx2" in flags else "no avx2"
    wanted = [f for f in flags if f != "avx2"]
    line = (f"{info['model']}, {info['cores']} cores, {isa}, avx512/vnni/amx flags: "
            f"{' '.join(wanted) or 'none'}")
    return f"{line}; load average {load_average()}" if with_load else line
