"""Latent size study: the default architecture with z_dim 16, 64, 100 and 128, same steps.

    PYTHONPATH=. .venv-train/bin/python bench/latent_size.py --data ../shared/datasets/mnist

Each row is the default model's recipe (conditional dcgan, Adam 2e-4 / 0.5, batch 64,
EMA 0.999, seed 0) with only --latent-dim changed, trained for --steps (15,000 by default,
half the default's 30,000: four full-length runs would take 2.5 hours on 2 cores). Missing runs are
trained into runs/latent-zZ (a partial one is resumed), then exported and judged on 10,000
samples for each of three sample seeds (FCD moves with the draw, so the spread is shown).
Writes bench/results/latent_size.{json,md}, latent-size.png (one row of digits 0-9 per
z_dim, same seed) and latent-size-fcd.png (the FCD curves of the four runs).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import ROOT, _python_m, plot_fcd  # noqa: E402

import ganlite  # noqa: E402

LATENT_DIMS = (16, 64, 100, 128)
SEEDS = (0, 1, 2)


def _train_and_export(z: int, steps: int, data: Path, runs: Path) -> Path:
    run = runs / f"latent-z{z}"
    model = run / f"latent-z{z}.onnx"
    if not (run / "generator.keras").exists():
        if (run / "checkpoint.npz").exists():
            _python_m("train", "gan", "--resume", run)
        else:
            _python_m("train", "gan", "--out", run, "--data", data, "--arch", "dcgan",
                      "--conditional", "--latent-dim", z, "--steps", steps,
                      "--sample-every", "1000", "--fcd-samples", "2000", "--seed", "0")
    if not model.exists():
        _python_m("export", "model", run, "--out", model)
    return model


def _row(label: str, generator: ganlite.Generator) -> dict:
    reports = [ganlite.evaluate(generator, n=10_000, seed=s) for s in SEEDS]
    fcds = [r.fcd for r in reports]
    first = reports[0]
    card = generator.card
    return {"row": label, "latent_dim": generator.latent_dim,
            "steps": card.get("train_steps"), "train_seconds": card.get("train_seconds"),
            "fcd": round(float(np.mean(fcds)), 2), "fcd_min": round(min(fcds), 2),
            "fcd_max": round(max(fcds), 2),
            "classifier_score": round(float(np.mean([r.classifier_score for r in reports])), 3),
            "precision": round(float(np.mean([r.precision for r in reports])), 3),
            "recall": round(float(np.mean([r.recall for r in reports])), 3),
            "min_label_accuracy": round(float(first.label_accuracy.min()), 4)}


def _plot_curves(runs: dict[int, Path], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for z, run in runs.items():
        plot_fcd(ax, run, label=f"z_dim {z}")
    ax.set_title("latent size study: FCD during training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of MNIST IDX files")
    parser.add_argument("--steps", type=int, default=15_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    args = parser.parse_args()

    rows, strips = [], []
    for z in LATENT_DIMS:
        generator = ganlite.Generator(_train_and_export(z, args.steps, args.data, args.runs),
                                      device="cpu")
        rows.append(_row(f"z_dim {generator.latent_dim}", generator))
        strips.append(generator.generate(10, seed=0, labels=np.arange(10)))
        print(json.dumps(rows[-1]), flush=True)
    # The shipped default (z_dim 100) trained three times as long, for reference.
    rows.append(_row("default, z_dim 100", ganlite.load(device="cpu")))
    print(json.dumps(rows[-1]), flush=True)

    ganlite.save_grid(np.concatenate(strips), args.out / "latent-size.png", columns=10)
    _plot_curves({z: args.runs / f"latent-z{z}" for z in LATENT_DIMS},
                 args.out / "latent-size-fcd.png")
    (args.out / "latent_size.json").write_text(json.dumps(rows, indent=1))
    lines = ["| z_dim | steps | FCD, mean of 3 seeds (min-max) | MNIST score | precision | "
             "recall | min on-label | train time |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['steps']} | {r['fcd']:.2f} ({r['fcd_min']:.2f}-"
                     f"{r['fcd_max']:.2f}) | {r['classifier_score']:.2f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['min_label_accuracy']:.1%} | "
                     f"{r['train_seconds'] / 60:.1f} min |")
    table = "\n".join(lines) + "\n"
    (args.out / "latent_size.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
