"""Training runs compared at equal time: each run's FCD monitor against its training seconds.

    PYTHONPATH=. .venv-train/bin/python bench/fcd_vs_time.py RUN_DIR [RUN_DIR ...] \
        [--labels "A;B"] --out bench/results/fcd-vs-time.png

A run's fcd.csv has one FCD per snapshot (2,000 EMA samples, judge 1: biased above the
10,000-sample figures, but the same for every run); its run.json has its steps and
training seconds. The x axis puts snapshot k at step_k x train_seconds / steps: the run's
mean rate, as the progress lines are not timed per snapshot. Only runs trained on one
machine compare (each run's CPU is printed from its run.json). Prints a table of the
points too, so the figure's numbers can be read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def points(run: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(seconds, fcd) of each snapshot of a run, and its run.json."""
    info = json.loads((run / "run.json").read_text())
    fcd = np.genfromtxt(run / "fcd.csv", delimiter=",", names=True, ndmin=1)
    seconds_per_step = info["train_seconds"] / info["config"]["steps"]
    return fcd["step"] * seconds_per_step, fcd["fcd"], info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--labels", default="", help="separated by ;, one per run "
                                                     "(default: the run folders' names)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    labels = args.labels.split(";") if args.labels else [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(labels)} labels for {len(args.runs)} runs")

    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run, label in zip(args.runs, labels, strict=True):
        seconds, fcd, info = points(run)
        machine = info.get("machine", {})
        print(f"{label}: {info['config']['steps']} steps in {info['train_seconds']:.0f} s "
              f"({machine.get('model', 'machine not recorded')}, "
              f"{machine.get('cores', '?')} cores)")
        for s, f in zip(seconds, fcd, strict=True):
            print(f"  {s:7.0f} s  FCD {f:.2f}")
        ax.plot(seconds / 60, fcd, marker="o", label=label)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("training minutes (run's mean rate)")
    ax.set_ylabel("FCD monitor (2,000 EMA samples, judge 1)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
