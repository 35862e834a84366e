"""Ablation of the training levers: one row per lever, same budget, same evaluation.

    PYTHONPATH=. .venv-train/bin/python bench/ablation.py --dataset mnist \
        --data ../shared/datasets/mnist --steps 6000 [--rows baseline,hinge,...] [--judges 2]

Each row is the baseline recipe (the shipped model's: conditional dcgan, Adam 2e-4 / 0.5,
batch 64, EMA 0.999 or --ema-decay for short rows, training seed 0) with ONE change,
trained for the same number of steps into runs/ablation-DATASET-STEPS/ROW (resumable: a
rerun continues or skips finished rows), exported with `python -m export model`, then
judged on 10,000 samples for each of three sample seeds (means and spread) by the bundled
classifier and, with --judges 2, by the second judge of bench/judge.py (another
architecture and seed): FCD, precision, recall and the worst class's on-label rate. Steps
per second are measured in the same run, so an equal-time budget can be read off too (a
lever that costs twice per step gets half the steps in 90 minutes; rows of another
length compare levers at equal time, with --snapshots giving each row the same
overhead). Control rows (baseline-seed1, hinge+sn-seed1, wider-d-seed1) change only the
training seed: how far the seed alone moves a row is the yardstick for every other row's
difference. Export rows (standing-stats) train nothing: they export another row's run
with other `python -m export model` options.

Writes bench/results/ablation-DATASET-STEPS.json and .md. Prints the CPU model and flags.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ganlite  # noqa: E402
from bench.machine import cpu  # noqa: E402

BASE = ["--arch", "dcgan", "--conditional", "--latent-dim", "100", "--batch-size", "64",
        "--optimizer", "adam", "--g-lr", "0.0002", "--d-lr", "0.0002", "--beta-1", "0.5",
        "--fcd-samples", "2000"]
TRAIN_SEED = 0   # every row's, unless the row names another
# The shipped recipe's EMA of G: 0.999 averages over ~1,000 steps, 1/30 of its 30,000. A
# short row needs a shorter average (--ema-decay): after 2,000 steps at 0.999, 13 % of
# the EMA generator is still its random initial weights (0.999**2000), which would bury
# every lever's effect under the EMA's lag.
EMA_DECAY = 0.999
# One change each against the baseline (row name -> extra options).
ROWS = {
    "baseline": [],
    "hinge": ["--loss", "hinge"],
    "spectral-norm": ["--spectral-norm"],
    "hinge+sn": ["--loss", "hinge", "--spectral-norm"],
    "r1": ["--r1-gamma", "1"],
    "diffaugment": ["--diffaugment", "translation"],
    "wider-d": ["--d-width", "2"],
    "wider-g": ["--g-width", "1.5"],
    "lr-linear": ["--lr-schedule", "linear"],
    "ttur": ["--g-lr", "0.0001", "--d-lr", "0.0004"],
    # More discriminator capacity at no cost per step: wider-d's gain and the regularizing
    # levers' losses point at D's capacity, and dropout 0.3 on both convs spends some.
    "no-d-dropout": ["--d-dropout", "0"],
    # A combination, after wider-d was the one lever both judges favoured at 2,000 steps:
    # does hinge+SN add to it?
    "wider-d+hinge+sn": ["--d-width", "2", "--loss", "hinge", "--spectral-norm"],
    # Cheaper steps, not another recipe: Keras' mixed bfloat16 (fast only on CPUs with AMX
    # or AVX512-BF16). Does it cost quality per step?
    "bf16": ["--precision", "bfloat16"],
    # Top-k training (Sinha et al. 2020): G learns from the fakes D rates most real, a
    # fraction decaying per epoch to half the batch. The paper's decay (0.99 per epoch)
    # would keep 97 % at the end of a 3-epoch row; 0.7 reaches the half in epoch 2.
    "top-k": ["--top-k", "0.5", "--top-k-decay", "0.7"],
    # Twice the images per step (BigGAN's strongest lever was the batch): per step, at
    # about twice a step's cost. Does it move precision?
    "batch-128": ["--batch-size", "128"],
    # The two rows that led on Fashion at 3,000 steps (the batch, then wider-d), together:
    # do they add?
    "batch-128+wider-d": ["--batch-size", "128", "--d-width", "2"],
    # Aimed at on-label, the hard classes' weakness (Fashion's coats and shirts): an AC-GAN
    # auxiliary classifier beside the projection head, D classifying real images, G's
    # fakes pushed towards being classified as their label.
    "aux-class": ["--aux-class-weight", "1"],
    # At weight 1 on Fashion (3,000 steps) fakes became easier to classify than real images
    # (coats and shirts 98 / 96 % on-label against 89 / 75 % for real ones) and recall
    # fell: a tenth of the weight, towards real images' on-label.
    "aux-class-0.1": ["--aux-class-weight", "0.1"],
    # Between the two: at 0.1 coats and shirts rose only part of the way and recall held.
    "aux-class-0.3": ["--aux-class-weight", "0.3"],
    # The full-budget batch-128 run lost coats' on-label (the twelfth measurement): does the
    # weak auxiliary classifier lift them without costing the batch's FCD?
    "batch-128+aux-class-0.1": ["--batch-size", "128", "--aux-class-weight", "0.1"],
    # Which weight for a full-budget batch-128 run: 0.3 lifted on-label further and cost
    # more recall at batch 64.
    "batch-128+aux-class-0.3": ["--batch-size", "128", "--aux-class-weight", "0.3"],
    # The full-budget batch-128 run with the head at 0.1 overshot real images' on-label in
    # every class and lost recall (AC-GAN's bias): TAC-GAN's twin classifier removes the
    # term that pays G for easily classified fakes.
    "batch-128+tac-0.1": ["--batch-size", "128", "--aux-class-weight", "0.1",
                          "--twin-classifier"],
    "batch-128+tac-0.3": ["--batch-size", "128", "--aux-class-weight", "0.3",
                          "--twin-classifier"],
    # Controls, not levers: the same recipe as the row they name, from another training
    # seed, so that a row's difference can be read against how far the seed alone moves it.
    "baseline-seed1": [],
    "hinge+sn-seed1": ["--loss", "hinge", "--spectral-norm"],
    "wider-d-seed1": ["--d-width", "2"],
}
# Rows that change the export, not the training: (the row whose run they export, the
# extra options of `python -m export model`). No training of their own.
EXPORT_ROWS = {"standing-stats": ("baseline", ["--standing-stats", "50000"])}
ROWS.update({name: [] for name in EXPORT_ROWS})
# Training seed of each row (TRAIN_SEED unless named here).
ROW_SEEDS = {"baseline-seed1": 1, "hinge+sn-seed1": 1, "wider-d-seed1": 1}
CONTROLS = frozenset(ROW_SEEDS)
SEEDS = (0, 1, 2)
N = 10_000


def _python_m(*args: object) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, env=env, check=True)


def train_row(name: str, dataset: str, data: Path, steps: int, runs: Path,
              ema_decay: float = EMA_DECAY, snapshots: int = 0) -> Path:
    """Train (or resume, or skip) and export one row; returns its ONNX model.

    snapshots: sample grids, checkpoints and FCD-monitor passes in the run, evenly
    spaced (0: one every 1,000 steps). Rows compared on steps/s should have the same
    count, as each snapshot costs the same seconds whatever the row's length."""
    if name in EXPORT_ROWS:    # the same run as another row, exported differently
        trained, export_options = EXPORT_ROWS[name]
        train_row(trained, dataset, data, steps, runs, ema_decay, snapshots)
        model = runs / name / f"{name}.onnx"
        if not model.exists():
            _python_m("export", "model", runs / trained, "--out", model, *export_options)
        return model
    run = runs / name
    model = run / f"{name}.onnx"
    if not (run / "generator.keras").exists():
        if (run / "checkpoint.npz").exists():
            _python_m("train", "gan", "--resume", run)
        else:
            _python_m("train", "gan", "--out", run, "--dataset", dataset, "--data", data,
                      "--steps", steps, "--sample-every", sample_every(steps, snapshots),
                      *BASE,
                      "--ema-decay", ema_decay,
                      "--seed", ROW_SEEDS.get(name, TRAIN_SEED), *ROWS[name])
    if not model.exists():
        _python_m("export", "model", run, "--out", model)
    return model


def sample_every(steps: int, snapshots: int) -> int:
    """Steps between snapshots: steps / snapshots (main checks that it divides), or 1,000
    when snapshots is 0 (the 2,000-step rows' setting), or steps (one at the end) when
    1,000 does not divide it."""
    if snapshots:
        return steps // snapshots
    return 1000 if steps % 1000 == 0 else steps


def judge(model: Path, classifier: str | Path | None, dataset: str) -> dict:
    """Means (and spread) over SEEDS of one judge's report on N samples."""
    generator = ganlite.load(model, device="cpu")
    evaluator = ganlite.Evaluator(dataset, device="cpu", classifier=classifier)
    reports = [evaluator.evaluate_generator(generator, N, seed) for seed in SEEDS]
    fcd = [r.fcd for r in reports]
    on_label = np.mean([r.label_accuracy for r in reports], axis=0)
    return {"fcd": round(float(np.mean(fcd)), 3), "fcd_spread": round(float(np.ptp(fcd)), 3),
            "precision": round(float(np.mean([r.precision for r in reports])), 4),
            "recall": round(float(np.mean([r.recall for r in reports])), 4),
            "on_label": [round(float(a), 4) for a in on_label],
            "worst_class": int(on_label.argmin()),
            "worst_on_label": round(float(on_label.min()), 4)}


def _run_record(run: Path) -> dict:
    """steps_per_second, train_seconds and trained_on (CPU model, cores) of a finished run,
    from one read of its run.json; None for what it does not record."""
    try:
        info = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        info = {}
    try:
        seconds = info["train_seconds"]
        rate = round(info["config"]["steps"] / seconds, 2)
        seconds = round(seconds)
    except (KeyError, TypeError, ZeroDivisionError):
        rate = seconds = None
    try:
        trained_on = f"{info['machine']['model']}, {info['machine']['cores']} cores"
    except (KeyError, TypeError):
        trained_on = None
    return {"steps_per_second": rate, "train_seconds": seconds, "trained_on": trained_on}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--judges", type=int, default=1, choices=[1, 2])
    parser.add_argument("--ema-decay", type=float, default=EMA_DECAY,
                        help="EMA of G for every row (shorter rows need a shorter average)")
    parser.add_argument("--snapshots", type=int, default=0,
                        help="snapshots per row, evenly spaced (0: every 1,000 steps); give "
                             "rows of different lengths the same count for equal overhead")
    parser.add_argument("--train-only", action="store_true")
    args = parser.parse_args()
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if args.snapshots < 0 or (args.snapshots and args.steps % args.snapshots):
        parser.error(f"--snapshots {args.snapshots} must be 0 or divide --steps {args.steps}")
    short = short_name(args.dataset)
    tag = f"ablation-{short}-{args.steps}"
    if args.ema_decay != EMA_DECAY:
        tag += f"-ema{args.ema_decay:g}"
    runs = ROOT / "runs" / tag
    out = ROOT / "bench" / "results" / f"{tag}.json"
    print(cpu(with_load=True), flush=True)
    models = {}
    for name in rows:
        t0 = time.monotonic()
        models[name] = train_row(name, args.dataset, args.data, args.steps, runs,
                                 args.ema_decay, args.snapshots)
        print(f"{name}: trained and exported in {time.monotonic() - t0:.0f} s", flush=True)
    if args.train_only:
        return 0
    results = json.loads(out.read_text()) if out.exists() else {}
    judges = {"judge-1": None}
    if args.judges == 2:
        judges["judge-2"] = judge2_path(short)
    for name, model in models.items():
        row = results.setdefault(name, {})
        seed = ROW_SEEDS.get(name, TRAIN_SEED)
        row["options"] = (" ".join(ROWS[name] + (["--seed", str(seed)] if seed else []))
                          or "(baseline)")
        trained_dir = model.parent
        if name in EXPORT_ROWS:
            trained, export_options = EXPORT_ROWS[name]
            row["options"] = f"{trained}'s run; export {' '.join(export_options)}"
            trained_dir = runs / trained
        row["steps"] = args.steps
        row.update(_run_record(trained_dir))
        for judge_name, classifier in judges.items():
            if judge_name not in row:
                row[judge_name] = judge(model, classifier, args.dataset)
                print(name, judge_name, row[judge_name], flush=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(results, out.with_suffix(".md"), args, cpu(with_load=True))
    return 0


# Issue 15's on-label bar: every class within this many points of the judge's accuracy on
# real test images of that class.
ON_LABEL_MARGIN = {"mnist": 0.5, "fashion_mnist": 1.0}


def short_name(dataset: str) -> str:
    """The dataset's name in bench's file names (ablation-mnist-..., judges-fashion.json)."""
    return "mnist" if dataset == "mnist" else "fashion"


def judge2_path(short: str) -> Path:
    """bench/judge.py's second judge for a dataset (by its short name)."""
    return ROOT / "bench" / "judges" / f"{short}-judge2.onnx"


def judges_path(short: str) -> Path:
    """bench/judge.py's measurements of both judges on real images (floor, per-class
    accuracy), by the dataset's short name."""
    return ROOT / "bench" / "results" / f"judges-{short}.json"


def read_judges(dataset: str) -> dict:
    """The judges' measurements on real images (raises OSError or ValueError when
    bench/judge.py has not written them)."""
    return json.loads(judges_path(short_name(dataset)).read_text())


def real_accuracy(dataset: str) -> dict[str, list[float]]:
    """Each judge's per-class accuracy on real test images; {} when bench/judge.py has not
    measured them."""
    try:
        judges = read_judges(dataset)
    except (OSError, ValueError):
        return {}
    return {name: judges[name]["per_class_accuracy"] for name in ("judge-1", "judge-2")
            if name in judges}


def write_markdown(results: dict, path: Path, args, machine: str) -> None:
    """One row per lever: both judges' FCD (change against the baseline), precision,
    recall, worst on-label class, and on-label against real images (the classes more than
    the bar's margin below the judge's accuracy on real images of that class, and the
    largest gap); 'judges agree' says whether the two judges agree on the sign of the FCD
    change ("(control)" for a control row: its change is the seed's noise, not a finding).
    """
    base = results.get("baseline", {})
    real = real_accuracy(args.dataset)
    margin = ON_LABEL_MARGIN[args.dataset]
    lines = [f"# Ablation, {args.dataset}, {args.steps} steps per row", "",
             f"`PYTHONPATH=. .venv-train/bin/python bench/ablation.py --dataset "
             f"{args.dataset} --data DATA --steps {args.steps} --judges {args.judges} "
             f"--ema-decay {args.ema_decay:g}`", "",
             f"Last run on: {machine}", "",
             "Trained on: " + "; ".join(
                 f"{', '.join(names)}: {where}" for where, names in _by_machine(results)),
             "",
             "Each row: the baseline with one change; means over sample seeds 0-2 of 10,000 "
             "samples each (FCD spread = max - min over the seeds). Judge 1: the bundled "
             "classifier; judge 2: bench/judge.py's (another architecture and seed). "
             "Steps/s: this run's training steps over its training seconds (in brackets, "
             "where recorded; rows one after another; compare rates only between rows "
             "trained on one machine). vs real: the classes whose on-label rate is more "
             f"than {margin:g} points below the judge's accuracy on real test images of that "
             "class, of all classes, then the largest gap (on-label minus real accuracy; "
             "its class); then, if any, the classes more than that *above* it (fakes "
             "easier to classify than real images, without their ambiguous cases) and "
             "the largest excess.", "",
             "| row | options | steps/s | FCD, judge 1 (vs baseline) | precision | recall "
             "| worst on-label | vs real | FCD, judge 2 (vs baseline) | precision | recall "
             "| worst on-label | vs real | judges agree |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cells(name: str, judge: str) -> list[str]:
        row = results[name].get(judge)
        if not row:
            return ["-"] * 5
        ref = base.get(judge)
        delta = (f" ({row['fcd'] - ref['fcd']:+.2f})" if ref and name != "baseline" else "")
        return [f"{row['fcd']} ± {row['fcd_spread']}{delta}", f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{100 * row['worst_on_label']:.1f}% ({row['worst_class']})",
                versus_real(row["on_label"], real.get(judge), margin)]

    for name, row in results.items():
        agree = "(control)" if name in CONTROLS else ""
        judged = all(j in row and j in base for j in ("judge-1", "judge-2"))
        if name != "baseline" and name not in CONTROLS and judged:
            signs = {np.sign(row[j]["fcd"] - base[j]["fcd"]) for j in ("judge-1", "judge-2")}
            agree = "yes" if len(signs) == 1 else "no"
        seconds = f" ({row['train_seconds']} s)" if row.get("train_seconds") else ""
        lines.append(f"| {name} | `{row['options']}` | {row.get('steps_per_second')}{seconds} | "
                     + " | ".join(cells(name, "judge-1") + cells(name, "judge-2"))
                     + f" | {agree} |")
    path.write_text("\n".join(lines) + "\n")


def versus_real(on_label: list[float], real: list[float] | None, margin: float) -> str:
    """"short / classes, largest gap (class)", e.g. "2/10 short, -3.1 (7)", then the
    classes more than the margin *above* real, if any ("; 3 over, +20.7 (6)"): fakes
    easier to classify than real images, without their ambiguous cases; "-" unknown."""
    if real is None or len(real) != len(on_label):
        return "-"
    gaps = [100 * (generated - accuracy) for generated, accuracy in zip(on_label, real,
                                                                        strict=True)]
    worst, top = int(np.argmin(gaps)), int(np.argmax(gaps))
    short = sum(gap < -margin for gap in gaps)
    over = sum(gap > margin for gap in gaps)
    text = f"{short}/{len(gaps)} short, {gaps[worst]:+.1f} ({worst})"
    return text + (f"; {over} over, {gaps[top]:+.1f} ({top})" if over else "")


def _by_machine(results: dict) -> list[tuple[str, list[str]]]:
    """[(machine, its rows)] in row order; rows from before machines were recorded are
    "not recorded"."""
    groups: dict[str, list[str]] = {}
    for name, row in results.items():
        groups.setdefault(row.get("trained_on") or "not recorded", []).append(name)
    return list(groups.items())


if __name__ == "__main__":
    sys.exit(main())
