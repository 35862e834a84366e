"""The export job as a frozen, validated dataclass, and the command line that makes it."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from ganlite.modelfile import MAX_TEXT

from .errors import ExportConfigError

# Samples for standing statistics (export/standing.py): 0 = off; fewer than the minimum
# would estimate thousands of channel variances from too few images.
STANDING_STATS_RANGE = (1_000, 200_000)


def _path(name: str, value: object) -> Path:
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text or "\0" in text:
        raise ExportConfigError(f"{name} must be a path, got {value!r}")
    return Path(text)


@dataclass(frozen=True)
class ExportConfig:
    """Export the final model of run folder `run_dir` to `out` (NAME.onnx), named `name`
    in its card (default: the file's stem); a generator's graph is rewritten for
    onnxruntime's CPU kernels (export/optimize.py) unless `optimize` is False. With
    `standing_stats` N > 0 a generator's BatchNorm statistics are first recomputed from N
    of its own samples (export/standing.py)."""
    run_dir: Path
    out: Path
    name: str | None = None
    optimize: bool = True
    standing_stats: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", _path("RUN_DIR", self.run_dir))
        out = _path("--out", self.out)
        object.__setattr__(self, "out", out)
        if out.suffix != ".onnx" or not out.stem:
            raise ExportConfigError(f"--out {str(out)!r} must be a file name ending in .onnx")
        if not isinstance(self.optimize, bool):
            raise ExportConfigError(f"optimize must be True or False, got {self.optimize!r}")
        low, high = STANDING_STATS_RANGE
        n = self.standing_stats
        if isinstance(n, bool) or not isinstance(n, int) or not (n == 0 or low <= n <= high):
            raise ExportConfigError(f"standing_stats (--standing-stats) must be 0 (off) or "
                                    f"an integer between {low:,} and {high:,}, got {n!r}")
        name = self.model_name
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_TEXT \
                or not name.isprintable():
            what = "--name" if self.name is not None else "the --out file's stem"
            raise ExportConfigError(f"{what} {name!r} must be a model name of 1-{MAX_TEXT} "
                                    f"printable characters")

    @property
    def model_name(self) -> str:
        """The name in the card: --name, or the stem of --out."""
        return self.out.stem if self.name is None else self.name

    def argv(self) -> list[str]:
        """The arguments of `python -m export model` that make this export."""
        return ([str(self.run_dir), "--out", str(self.out)]
                + (["--name", self.name] if self.name is not None else [])
                + ([] if self.optimize else ["--no-optimize"])
                + (["--standing-stats", str(self.standing_stats)]
                   if self.standing_stats else []))

    def command(self) -> str:
        """The shell command (shlex-quoted) that makes this export."""
        return shlex.join(["python", "-m", "export", "model", *self.argv()])
