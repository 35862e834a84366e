"""The README's quality table: train (if needed), export and evaluate each row.

    PYTHONPATH=. .venv-train/bin/python bench/quality.py --data ../shared/datasets/mnist

Rows: (a) the tutorial as published (mlp, plain SGD, batch 32, 10,000 steps);
(b) mlp with Adam 2e-4/beta1 0.5, batch 64, 10,000 steps; (c) the shipped default model;
(d) 10,000 real training digits (the floor), through `ganlite evaluate --images`.
Every generator is judged on 10,000 samples (seed 0) against the 10,000 test digits.
Writes bench/results/quality.json, quality.md, a 10x10 grid per row, and the default
model's training curves (losses and FCD over steps) when its run folder is present.

    ... bench/quality.py --data DATA --rows c-mnist-cdcgan --default-run runs/mnist-cdcgan

re-evaluates only the named rows (and trains nothing else); the other rows are kept, in
their order, from the existing quality.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ganlite  # noqa: E402

TRAINED_ROWS = {
    "a-tutorial-mlp-sgd": ["--arch", "mlp", "--optimizer", "sgd", "--lr", "0.01",
                           "--batch-size", "32", "--steps", "10000", "--ema-decay", "0"],
    "b-mlp-adam": ["--arch", "mlp", "--optimizer", "adam", "--lr", "2e-4", "--beta-1", "0.5",
                   "--batch-size", "64", "--steps", "10000"],
}


FLOOR_ROW = "d-real-digits"


def _merged(kept: list[dict], fresh: list[dict]) -> list[dict]:
    """The kept rows with each fresh row in its place (a new one appended)."""
    by_name = {row["row"]: row for row in fresh}
    merged = [by_name.pop(row["row"], row) for row in kept]
    return merged + [row for row in fresh if row["row"] in by_name]


def _python_m(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, env=env, check=True)


def _trained_model(name: str, train_args: list[str], data: Path, runs: Path) -> Path:
    run = runs / f"bench-{name}"
    model = run / f"{name}.onnx"
    if not (run / "generator.keras").exists():
        resume = ["--resume", run] if (run / "checkpoint.npz").exists() else None
        _python_m("train", "gan", *(resume or ["--out", run, "--data", data,
                                               "--sample-every", "1000", *train_args]))
    if not model.exists():
        _python_m("export", "model", run, "--out", model)
    return model


def _row(name, report, card):
    return {"row": name, "fcd": round(report.fcd, 2),
            "classifier_score": round(report.classifier_score, 3),
            "min_share": round(float(report.class_share.min()), 4),
            "max_share": round(float(report.class_share.max()), 4),
            "mean_confidence": round(report.mean_confidence, 4),
            "precision": round(report.precision, 4), "recall": round(report.recall, 4),
            "train_seconds": (card or {}).get("train_seconds"),
            "steps": (card or {}).get("train_steps")}


def evaluate_as_folder(images: np.ndarray, dataset: str) -> dict:
    """The JSON report of `ganlite evaluate --images` on these images saved as PNGs: real
    data judged exactly as a user's folder would be."""
    with tempfile.TemporaryDirectory() as folder:
        for i, image in enumerate(images):
            ganlite.save_png(image, Path(folder) / f"{i:05d}.png")
        result = subprocess.run([sys.executable, "-m", "ganlite", "evaluate", "--images",
                                 folder, "--dataset", dataset, "--json"], cwd=ROOT,
                                capture_output=True, text=True, check=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(result.stdout)


def _real_floor(data: Path, out: Path) -> dict:
    """10,000 training digits as PNGs, judged by the CLI exactly as a user would."""
    from ganlite.datasets import read_split

    images, _ = read_split(data, "train", "mnist")
    images = images[:10_000]
    ganlite.save_grid(images[:100], out / "d-real-digits.png", columns=10)
    report = evaluate_as_folder(images, "mnist")
    return {"row": FLOOR_ROW, "fcd": round(report["fcd"], 2),
            "classifier_score": round(report["classifier_score"], 3),
            "min_share": report["min_class_share"], "max_share": report["max_class_share"],
            "mean_confidence": report["mean_confidence"], "precision": report["precision"],
            "recall": report["recall"], "train_seconds": None, "steps": None}


def plot_fcd(ax, run: Path, label: str | None = None) -> None:
    """A run's FCD curve (fcd.csv: one point per snapshot) on log axes."""
    fcd = np.genfromtxt(run / "fcd.csv", delimiter=",", names=True)
    ax.plot(fcd["step"], fcd["fcd"], marker="o", label=label)
    ax.set_yscale("log")
    ax.set_ylabel("FCD (2,000 EMA samples)")
    ax.set_xlabel("training step")


def plot_training(run: Path, path: Path) -> None:
    """Losses (per step, smoothed) and FCD (per snapshot) against training steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = np.genfromtxt(run / "metrics.csv", delimiter=",", names=True)
    window = 200
    kernel = np.ones(window) / window
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for key in ("d_loss", "g_loss"):
        top.plot(metrics["step"][window - 1:], np.convolve(metrics[key], kernel, "valid"),
                 label=f"{key} ({window}-step mean)")
    top.set_ylabel("loss")
    top.legend()
    plot_fcd(bottom, run)
    fig.suptitle(f"{run.name}: training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of MNIST IDX files")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--models", nargs="*", default=[ganlite.DEFAULT_MODEL],
                        help="built-in models or .onnx paths to add as rows")
    parser.add_argument("--default-run", type=Path, default=None,
                        help="run folder of the default model, for its training curves")
    parser.add_argument("--rows", nargs="+", default=None,
                        help="re-evaluate only these rows, keeping the others from quality.json")
    args = parser.parse_args()

    models = {f"c-{Path(model).stem}": model for model in args.models}
    names = [*TRAINED_ROWS, *models, FLOOR_ROW]
    kept = []
    if args.rows is not None:
        unknown = sorted(set(args.rows) - set(names))
        if unknown:
            parser.error(f"unknown rows {unknown}; rows: {names}")
        existing = args.out / "quality.json"
        if not existing.exists():
            parser.error(f"--rows keeps the other rows from {existing}, which does not exist")
        kept = json.loads(existing.read_text())
    wanted = set(args.rows or names)
    args.out.mkdir(parents=True, exist_ok=True)

    candidates = {name: _trained_model(name, train_args, args.data, args.runs)
                  for name, train_args in TRAINED_ROWS.items() if name in wanted}
    candidates.update({name: model for name, model in models.items() if name in wanted})
    rows = []
    for name, model in candidates.items():
        generator = ganlite.load(model, device="cpu")
        report = ganlite.evaluate(generator, n=10_000, seed=0)
        grid_labels = (np.arange(100) % 10) if generator.conditional else None
        ganlite.save_grid(generator.generate(100, seed=0, labels=grid_labels),
                          args.out / f"{name}.png", columns=10)
        rows.append(_row(name, report, generator.card))
        print(json.dumps(rows[-1]), flush=True)
    if FLOOR_ROW in wanted:
        rows.append(_real_floor(args.data, args.out))
        print(json.dumps(rows[-1]), flush=True)
    rows = _merged(kept, rows)
    if args.default_run and (args.default_run / "fcd.csv").exists():
        plot_training(args.default_run, args.out / "training-curves.png")

    (args.out / "quality.json").write_text(json.dumps(rows, indent=1))
    header = ("| row | FCD | MNIST score | min / max class share | precision | recall | "
              "train time | steps |\n|---|---|---|---|---|---|---|---|\n")
    def minutes(seconds):
        return "" if seconds is None else f"{seconds / 60:.1f} min"

    lines = [f"| {r['row']} | {r['fcd']:.2f} | {r['classifier_score']:.2f} | "
             f"{r['min_share']:.1%} / {r['max_share']:.1%} | {r['precision']:.3f} | "
             f"{r['recall']:.3f} | {minutes(r['train_seconds'])} | {r['steps'] or ''} |"
             for r in rows]
    table = header + "\n".join(lines) + "\n"
    (args.out / "quality.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
