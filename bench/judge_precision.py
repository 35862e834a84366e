"""Does a reduced-precision way of running a generator keep its quality? The judgement a
precision must pass before ganlite offers it (issue 11: the int8 model's criteria).

    PYTHONPATH=. python bench/judge_precision.py --device openvino --precision bf16 \
        [--model mnist-cdcgan] [--n 10000] [--seeds 0,1,2] [--json OUT.json]
    PYTHONPATH=. python bench/judge_precision.py --device cpu --precision int8 \
        --candidate mnist-cdcgan-int8                       # a quantized model file

Candidate: the model on --device in --precision (f32; bf16 = device 'openvino-bf16'; int8 =
the --candidate model file, run on --device). Reference: the same model in float32 on
--reference-device (default cpu, i.e. onnxruntime). Both are judged by ganlite.evaluate
with the dataset's classifier on the CPU (float32, onnxruntime: the judge never changes),
n samples per seed, every seed. Pass, on the means over the seeds:
  - FCD within 5 % of the reference's (lower is better: only an increase counts);
  - classifier score within 0.05, precision and recall within 0.02;
  - every class's on-label accuracy >= 98 % (conditional models).
Prints a table and PASS/FAIL; exit status 0 on PASS, 1 on FAIL.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ganlite  # noqa: E402

FCD_RELATIVE, SCORE, PRECISION_RECALL, ON_LABEL = 0.05, 0.05, 0.02, 0.98


def cpu() -> str:
    """The CPU model and its bf16/AMX/AVX-512/VNNI flags (this script runs in a runtime-only
    venv too, without bench/profile_graph.py's onnx import)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = {k.strip(): v for k, v in (line.split(":", 1) for line in text.splitlines()[:40]
                                        if ":" in line)}
    flags = fields.get("flags", "").split()
    wanted = sorted(f for f in flags if any(k in f for k in ("avx512", "vnni", "amx", "bf16")))
    return (f"{fields.get('model name', 'unknown').strip()}, flags: "
            f"{' '.join(wanted) or 'no avx512/vnni/amx/bf16'}")


def candidate(model: str, device: str, precision: str, candidate_model: str | None):
    """The Generator to judge."""
    if precision == "bf16":
        if device != "openvino":
            raise SystemExit("bf16 runs on --device openvino only (device 'openvino-bf16')")
        return ganlite.load(model, device="openvino-bf16")
    if precision == "int8":
        if not candidate_model:
            raise SystemExit("int8 needs --candidate (the quantized model's name or path)")
        return ganlite.load(candidate_model, device=device)
    return ganlite.load(candidate_model or model, device=device)


def judge(generator: ganlite.Generator, seeds: list[int], n: int) -> dict:
    """Means over the seeds of what the issue's criteria read, and the per-seed reports."""
    reports = [ganlite.evaluate(generator, n=n, seed=s, device="cpu") for s in seeds]
    summary = {"fcd": float(np.mean([r.fcd for r in reports])),
               "score": float(np.mean([r.classifier_score for r in reports])),
               "precision": float(np.mean([r.precision for r in reports])),
               "recall": float(np.mean([r.recall for r in reports])),
               "providers": generator.providers,
               "per_seed": [r.to_dict() for r in reports]}
    if all(r.label_accuracy is not None for r in reports):
        on_label = np.mean([r.label_accuracy for r in reports], axis=0)
        summary["on_label"] = [float(a) for a in on_label]
    return summary


def verdict(ref: dict, cand: dict) -> list[tuple[str, str, bool]]:
    """(criterion, measured, met) for each of the issue's criteria."""
    fcd_change = cand["fcd"] / ref["fcd"] - 1
    rows = [("FCD within +5 % of the reference", f"{fcd_change:+.2%}",
             fcd_change <= FCD_RELATIVE),
            ("score within 0.05", f"{cand['score'] - ref['score']:+.4f}",
             abs(cand["score"] - ref["score"]) <= SCORE)]
    for key in ("precision", "recall"):
        rows.append((f"{key} within 0.02", f"{cand[key] - ref[key]:+.4f}",
                     abs(cand[key] - ref[key]) <= PRECISION_RECALL))
    if "on_label" in cand:
        worst = int(np.argmin(cand["on_label"]))
        rows.append(("every class on-label >= 98 %", f"min {cand['on_label'][worst]:.2%} "
                     f"(class {worst}; reference min {min(ref['on_label']):.2%})",
                     min(cand["on_label"]) >= ON_LABEL))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=ganlite.DEFAULT_MODEL)
    parser.add_argument("--device", default="openvino", help="the candidate's device")
    parser.add_argument("--precision", choices=["f32", "bf16", "int8"], required=True)
    parser.add_argument("--candidate", default=None,
                        help="the candidate model's name or path (int8; default --model)")
    parser.add_argument("--reference-device", default="cpu")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    seeds = [int(s) for s in args.seeds.split(",")]
    machine = cpu()
    print(f"CPU: {machine}", flush=True)
    ref_gen = ganlite.load(args.model, device=args.reference_device)
    cand_gen = candidate(args.model, args.device, args.precision, args.candidate)
    ref, cand = judge(ref_gen, seeds, args.n), judge(cand_gen, seeds, args.n)
    rows = verdict(ref, cand)
    passed = all(met for _, _, met in rows)
    print(f"\n{args.model}: candidate {cand['providers'][0]} ({args.precision}) vs reference "
          f"{ref['providers'][0]}, {args.n:,} samples x seeds {args.seeds}\n")
    print("| | reference | candidate |\n|---|---|---|")
    for key in ("fcd", "score", "precision", "recall"):
        print(f"| {key} | {ref[key]:.4f} | {cand[key]:.4f} |")
    if "on_label" in cand:
        print(f"| on-label min | {min(ref['on_label']):.4f} | {min(cand['on_label']):.4f} |")
    print("\n| criterion | measured | met |\n|---|---|---|")
    for name, measured, met in rows:
        print(f"| {name} | {measured} | {'yes' if met else 'NO'} |")
    print(f"\n{'PASS' if passed else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps({
            "cpu": machine, "command": " ".join(sys.argv), "model": args.model,
            "precision": args.precision, "reference": ref, "candidate": cand,
            "criteria": [{"criterion": n, "measured": m, "met": ok} for n, m, ok in rows],
            "pass": passed}, indent=1))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
