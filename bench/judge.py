"""The second judge: an evaluation classifier of another architecture and seed, kept in
bench/ (not shipped), so that no quality claim rests on one classifier's blind spots.

    PYTHONPATH=. .venv-train/bin/python bench/judge.py --dataset mnist --data DATA

Trains `python -m train classifier --arch gap --seed 1` (5x5/3x3 convs with batch norm,
global average pooling, 96 features; the bundled judge is two conv blocks, max pooling,
128 features, seed 0) into runs/judge2-DATASET, exports it to
bench/judges/DATASET-judge2.onnx (+ .npz reference statistics of the test set), then
measures both judges on real data: test accuracy per class (the bar for generated
images' on-label rates) and the real-data floor (FCD, precision, recall of 10,000 training
images against the test set). Writes bench/results/judges-DATASET.json and .md.

    ... bench/judge.py --dataset mnist --models mnist-cdcgan [runs/x/x.onnx ...]

judges generators with both (3 seeds x 10,000 samples), every class's on-label rate beside
each judge's real per-class accuracy: bench/results/judged-NAME.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ganlite  # noqa: E402
from bench.ablation import (  # noqa: E402
    ON_LABEL_MARGIN,
    judge,
    judge2_path,
    judges_path,
    read_judges,
    short_name,
    versus_real,
)
from bench.machine import cpu  # noqa: E402
from train.data import load as load_dataset  # noqa: E402


def _python_m(*args: object) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, env=env, check=True)


def train_judge2(dataset: str, data: Path | None, short: str) -> Path:
    run = ROOT / "runs" / f"judge2-{short}"
    model = judge2_path(short)
    if not (run / "run.json").exists():
        _python_m("train", "classifier", "--out", run, "--dataset", dataset,
                  *(["--data", data] if data else []), "--arch", "gap", "--seed", 1)
    if not model.exists():
        model.parent.mkdir(parents=True, exist_ok=True)
        _python_m("export", "model", run, "--out", model)
    return model


def measure(evaluator: ganlite.Evaluator, test: tuple, train: tuple) -> dict:
    (x_test, y_test), (x_train, _) = test, train
    probs, _ = evaluator.classify(x_test)
    predicted = probs.argmax(axis=1)
    per_class = [float((predicted[y_test == c] == c).mean())
                 for c in range(int(y_test.max()) + 1)]
    floor = evaluator.evaluate_images(x_train[:10_000], source="10,000 training images")
    return {"test_accuracy": round(float((predicted == y_test).mean()), 4),
            "per_class_accuracy": [round(a, 4) for a in per_class],
            "floor": {"fcd": round(floor.fcd, 3), "precision": round(floor.precision, 4),
                      "recall": round(floor.recall, 4)}}


def judge_models(models: list[str], dataset: str, short: str) -> None:
    """Both judges on each model (3 seeds x 10,000 samples): the on-label rate of every
    class beside each judge's accuracy on real test images of that class, and how many
    classes are more than issue 15's margin below (or above) it."""
    bars = read_judges(dataset)
    names = ganlite.datasets.DATASETS[dataset].class_names
    for model in models:
        rows = {"judge-1": judge(model, None, dataset),
                "judge-2": judge(model, judge2_path(short), dataset)}
        stem = Path(model).stem
        out = ROOT / "bench" / "results" / f"judged-{stem}.json"
        out.write_text(json.dumps(rows, indent=1) + "\n")
        lines = [f"# {stem}: both judges", "",
                 f"`PYTHONPATH=. .venv-train/bin/python bench/judge.py --dataset {dataset} "
                 f"--models {model}`; means over sample seeds 0-2, 10,000 samples each", "",
                 "| judge | FCD (floor) | precision | recall |", "|---|---|---|---|"]
        for j, r in rows.items():
            lines.append(f"| {j} | {r['fcd']} ({bars[j]['floor']['fcd']}) | {r['precision']} "
                         f"| {r['recall']} |")
        lines += ["", "| class | " + " | ".join(map(str, names)) + " |",
                  "|---|" + "---|" * len(names)]
        for j, r in rows.items():
            lines.append(f"| on-label, {j} | " + " | ".join(f"{a:.2%}" for a in r["on_label"])
                         + " |")
            lines.append(f"| real test accuracy, {j} | " + " | ".join(
                f"{a:.2%}" for a in bars[j]["per_class_accuracy"]) + " |")
        margin = ON_LABEL_MARGIN[dataset]
        apart = [f"{j}: {versus_real(r['on_label'], bars[j]['per_class_accuracy'], margin)}"
                 for j, r in rows.items()]
        lines += ["", f"On-label against real, more than {margin:g} point(s) apart (class "
                  f"index in brackets): {'; '.join(apart)}"]
        out.with_suffix(".md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--models", nargs="*", default=None,
                        help="judge these generators with both judges instead")
    args = parser.parse_args()
    short = short_name(args.dataset)
    print(cpu(with_load=True), flush=True)
    if args.models:
        judge_models(args.models, args.dataset, short)
        return 0
    model = train_judge2(args.dataset, args.data, short)
    test = load_dataset(args.dataset, "test", args.data)
    train = load_dataset(args.dataset, "train", args.data)
    results = {"machine": cpu(with_load=False)}
    for name, classifier in (("judge-1", None), ("judge-2", model)):
        evaluator = ganlite.Evaluator(args.dataset, device="cpu", classifier=classifier)
        results[name] = {"classifier": str(evaluator.path.relative_to(ROOT))
                         if evaluator.path.is_relative_to(ROOT) else evaluator.path.name,
                         **measure(evaluator, test, train)}
        print(name, results[name], flush=True)
    out = judges_path(short)
    out.write_text(json.dumps(results, indent=1) + "\n")
    names = ganlite.datasets.DATASETS[args.dataset].class_names
    lines = [f"# The two judges, {args.dataset}", "",
             f"`PYTHONPATH=. .venv-train/bin/python bench/judge.py --dataset {args.dataset} "
             f"--data DATA`", "",
             "| judge | test accuracy | real floor FCD | floor precision | floor recall |",
             "|---|---|---|---|---|"]
    for name in ("judge-1", "judge-2"):
        r = results[name]
        lines.append(f"| {name} | {r['test_accuracy']:.2%} | {r['floor']['fcd']} | "
                     f"{r['floor']['precision']} | {r['floor']['recall']} |")
    lines += ["", "Per-class accuracy on the real test set (the bar for on-label rates):", "",
              "| class | " + " | ".join(map(str, names)) + " |",
              "|---|" + "---|" * len(names)]
    for name in ("judge-1", "judge-2"):
        lines.append(f"| {name} | " + " | ".join(
            f"{a:.2%}" for a in results[name]["per_class_accuracy"]) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
