"""Fashion-MNIST figures: the shipped fashion-cdcgan against real clothes, by the Fashion
classifier.

    PYTHONPATH=. .venv-train/bin/python bench/fashion.py --data /usr/share/datasets/fashion-mnist

Judges fashion-cdcgan on 10,000 samples for seeds 0-4 (FCD, score, shares, precision,
recall, on-label accuracy per class), the floor (10,000 real training images through
`ganlite evaluate --images --dataset fashion_mnist`, as a user would), and the classifier's
own per-class accuracy on the 10,000 test images — the ceiling for on-label accuracy, since
a shirt the classifier calls a T-shirt counts as off-label even when drawn well.
Writes bench/results/fashion.{json,md}, fashion-grid.png (a row per class),
fashion-curves.png and fashion-classes.gif (one latent, every class).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import ROOT, evaluate_as_folder, plot_training  # noqa: E402

import ganlite  # noqa: E402

MODEL = "fashion-cdcgan"
SEEDS = (0, 1, 2, 3, 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True,
                        help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / MODEL,
                        help="the model's run folder, for its training curves")
    args = parser.parse_args()
    from train.data import load

    generator = ganlite.load(MODEL, device="cpu")
    names = generator.class_names
    reports = [ganlite.evaluate(generator, n=10_000, seed=s) for s in SEEDS]
    first = reports[0].to_dict()

    evaluator = ganlite.Evaluator("fashion_mnist", device="cpu")
    test_images, test_labels = load("fashion_mnist", "test", args.data)
    probs, _ = evaluator.classify(test_images)
    predicted = probs.argmax(axis=1)
    real_accuracy = [float((predicted[test_labels == c] == c).mean()) for c in range(10)]
    train_images, _ = load("fashion_mnist", "train", args.data)
    floor = evaluate_as_folder(train_images[:10_000], "fashion_mnist")

    result = {
        "model": first, "fcd_by_seed": [round(r.fcd, 3) for r in reports],
        "floor": floor, "classifier_test_accuracy": evaluator.card.get("test_accuracy"),
        "classifier_accuracy_by_class": {name: round(a, 4) for name, a in
                                         zip(names, real_accuracy, strict=True)},
        "generated_on_label_by_class": dict(zip(names, first["label_accuracy"], strict=True)),
        "train_seconds": generator.card.get("train_seconds"),
        "steps": generator.card.get("train_steps"),
    }
    (args.out / "fashion.json").write_text(json.dumps(result, indent=1))

    rows = ["| row | FCD | Fashion score | min / max class share | precision | recall | "
            "train time | steps |", "|---|---|---|---|---|---|---|---|"]
    for name, r, time, steps in (
            ("e-fashion-cdcgan", first, f"{result['train_seconds'] / 60:.1f} min",
             result["steps"]), ("f-real-fashion", floor, "", "")):
        rows.append(f"| {name} | {r['fcd']:.2f} | {r['classifier_score']:.2f} | "
                    f"{r['min_class_share']:.1%} / {r['max_class_share']:.1%} | "
                    f"{r['precision']:.3f} | {r['recall']:.3f} | {time} | {steps} |")
    rows += ["", "| class | " + " | ".join(names) + " |", "|---" * 11 + "|",
             "| generated, on-label | " + " | ".join(
                 f"{a:.1%}" for a in first["label_accuracy"]) + " |",
             "| real test images, classifier accuracy | " + " | ".join(
                 f"{a:.1%}" for a in real_accuracy) + " |"]
    table = "\n".join(rows) + "\n"
    (args.out / "fashion.md").write_text(table)
    print(table)
    print("FCD by seed:", result["fcd_by_seed"])

    ganlite.save_grid(generator.generate(100, seed=0, labels=np.repeat(np.arange(10), 10)),
                      args.out / "fashion-grid.png", columns=10)
    ganlite.save_animation(ganlite.label_walk(generator, 5), args.out / "fashion-classes.gif",
                           frame_ms=400)
    if (args.run / "fcd.csv").exists():
        plot_training(args.run, args.out / "fashion-curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
