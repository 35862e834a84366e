"""Where the default generator's time goes in onnxruntime, before and after
export/optimize.py, and how fast each runs against Keras and a GEMM ceiling.

    PYTHONPATH=. .venv-train/bin/python bench/profile_graph.py [--model mnist-cdcgan]
        [--seconds 60] [--ablation] [--batches 1,64,1000,10000] [--json out.json]

Prints, with the CPU model and its avx512/vnni/amx flags and the load average:
  1. per-op-type kernel time (ms, %) of the original and the optimized graph at batch 1,000
     (onnxruntime profiler; per node the minimum over 5 runs, summed by op type);
  2. images/s at each batch size for the original .onnx, the optimized one, Keras
     `predict` (artifacts/NAME.keras) and the NumPy float32 2048^3 GEMM ceiling (model FLOPs
     per image / GEMM FLOP/s), all timed interleaved (A, B, C, A, B, C, ...) in one run,
     best of the repeats: the machine is shared, so read the ratios;
  3. with --ablation: images/s and images per CPU-second (sessions without spinning
     threads, so CPU time counts work, not waiting for a shared core) at batch 1,000 of
     the rewrites added one at a time, and of the layouts that lost, interleaved.
Needs the training environment (onnx, onnxruntime, and keras/tensorflow for the Keras row).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from export.optimize import STEPS, optimize  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from machine import cpu  # noqa: E402,F401  (bench scripts import cpu from here too)


def converted(name: str) -> onnx.ModelProto:
    """The generator's graph as tf2onnx converts it, before export/optimize.py: converted
    afresh from artifacts/NAME.keras (the shipped .onnx is the optimized graph)."""
    import keras

    from export import convert

    model = keras.models.load_model(ROOT / "artifacts" / f"{name}.keras")
    conditional = len(model.inputs) > 1
    function, signature = convert._generator_function(model, int(model.inputs[0].shape[1]),
                                                      conditional)
    return convert._convert(function, signature)


def session(model: onnx.ModelProto, profile: bool = False, spinning: bool = True):
    options = ort.SessionOptions()      # as ganlite/_model.py: all optimizations
    options.log_severity_level = 3
    if not spinning:    # idle threads sleep: process CPU time then counts work only
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "ganlite-profile")
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def feeds_for(model: onnx.ModelProto, batch: int, seed: int = 0) -> dict:
    inputs = {i.name: i for i in model.graph.input}
    z_dim = inputs["z"].type.tensor_type.shape.dim[1].dim_value
    feeds = {"z": np.random.default_rng(seed).standard_normal((batch, z_dim), dtype=np.float32)}
    if "label" in inputs:
        feeds["label"] = np.arange(batch, dtype=np.int64) % 10
    return feeds


def flops_per_image(model: onnx.ModelProto) -> float:
    """2 x multiply-adds of MatMul/Gemm/Conv/ConvTranspose, from the graph's static shapes
    (the same count as bench/speed.py's from the Keras layers)."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.value_info) + list(inferred.output)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        w = weights.get(node.input[1]) if len(node.input) > 1 else None
        if w is None:
            continue
        if node.op_type in ("MatMul", "Gemm"):
            macs += w[0] * w[1]
        elif node.op_type == "Conv":
            out = shapes[node.output[0]]
            macs += out[2] * out[3] * int(np.prod(w))
        elif node.op_type == "ConvTranspose":
            x = shapes[node.input[0]]
            macs += x[2] * x[3] * int(np.prod(w))
    return 2.0 * macs


def gemm_seconds(size: int = 2048):
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    return lambda: a @ b, 2.0 * size**3


def profile_by_op(model: onnx.ModelProto, batch: int = 1000, runs: int = 5) -> dict:
    s = session(model, profile=True)
    feeds = feeds_for(model, batch)
    for _ in range(runs + 1):
        s.run(None, feeds)
    path = s.end_profiling()
    events = json.loads(Path(path).read_text())
    Path(path).unlink()
    per_node = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[(e["args"]["op_name"], e["name"])].append(e["dur"] / 1000)
    by_op = collections.Counter()
    for (op, _), times in per_node.items():
        by_op[op] += min(times[1:] or times)       # the first run warms up
    return dict(by_op)


def interleaved(fns: dict, seconds: float, min_rounds: int = 5) -> dict:
    """Best wall seconds per call of each function, timed in turn (50 ms apart: onnxruntime,
    OpenBLAS and TensorFlow threads spin a while after a call and would slow the next one)
    until `seconds` have passed and at least `min_rounds` rounds are done; also the best
    process CPU seconds per call, under "cpu:NAME" (with non-spinning sessions a
    contention-robust figure)."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns} | {f"cpu:{k}": float("inf") for k in fns}
    t_end, rounds = time.perf_counter() + seconds, 0
    while rounds < min_rounds or time.perf_counter() < t_end:
        for k, fn in fns.items():
            time.sleep(0.05)    # let the previous runtime's spinning threads park
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
            best[f"cpu:{k}"] = min(best[f"cpu:{k}"], time.process_time() - c0)
        rounds += 1
    best["rounds"] = rounds
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist-cdcgan")
    parser.add_argument("--seconds", type=float, default=60,
                        help="timing budget per batch size (default 60)")
    parser.add_argument("--batches", default="1,64,1000,10000")
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    onnx_path = ROOT / "artifacts" / f"{args.model}.onnx"
    original = converted(args.model)
    optimized = optimize(original)
    flops = flops_per_image(original)
    print(f"CPU: {cpu()}")
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}; {onnx_path.name}: "
          f"{flops / 1e6:.1f} MFLOP per image")
    report = {"cpu": cpu(), "flops_per_image": flops}

    print("\n## Kernel time by op type, batch 1,000 (ms, % of the graph's kernel time)")
    profiles = {"original": profile_by_op(original), "optimized": profile_by_op(optimized)}
    report["profile_ms"] = profiles
    ops = sorted(set().union(*profiles.values()),
                 key=lambda op: -max(p.get(op, 0) for p in profiles.values()))
    totals = {k: sum(p.values()) for k, p in profiles.items()}
    print("| op type | original | optimized |\n|---|---|---|")
    for op in ops:
        cells = [f"{p[op]:.1f} ({100 * p[op] / totals[k]:.0f} %)" if p.get(op, 0) >= 0.05
                 else "" for k, p in profiles.items()]
        if any(cells):
            print(f"| {op} | {' | '.join(cells)} |")
    print(f"| **total** | {totals['original']:.1f} | {totals['optimized']:.1f} |")

    keras_model = None
    if not args.no_keras:
        import keras

        keras_model = keras.models.load_model(ROOT / "artifacts" / f"{args.model}.keras")
    gemm, gemm_flop = gemm_seconds()
    s_orig, s_opt = session(original), session(optimized)
    print(f"\n## Images/s, interleaved, best of the repeats ({cpu()})")
    print("| batch | original | optimized | Keras predict | GEMM ceiling | optimized / "
          "original | optimized / Keras | optimized, % of GEMM ceiling | rounds |")
    print("|---|---|---|---|---|---|---|---|---|")
    report["speed"] = []
    for batch in (int(b) for b in args.batches.split(",")):
        feeds = feeds_for(original, batch)
        fns = {"original": lambda: s_orig.run(None, feeds),
               "optimized": lambda: s_opt.run(None, feeds),
               "gemm": gemm}
        if keras_model is not None:
            k_in = [feeds["z"], feeds["label"].astype(np.int32)] if "label" in feeds \
                else feeds["z"]
            fns["keras"] = lambda: keras_model.predict(k_in, batch_size=batch, verbose=0)
        best = interleaved(fns, args.seconds)
        rate = {k: batch / best[k] for k in fns if k != "gemm"}
        rate["gemm_ceiling"] = gemm_flop / best["gemm"] / flops
        row = {"batch": batch, **{k: round(v, 1) for k, v in rate.items()},
               "gemm_gflops": round(gemm_flop / best["gemm"] / 1e9, 1),
               "rounds": best["rounds"]}
        report["speed"].append(row)
        keras = rate.get("keras")
        keras_cells = (f"{keras:,.0f}", f"{rate['optimized'] / keras:.2f}x") if keras \
            else ("-", "-")
        print(f"| {batch:,} | {rate['original']:,.0f} | {rate['optimized']:,.0f} | "
              f"{keras_cells[0]} | {rate['gemm_ceiling']:,.0f} "
              f"({row['gemm_gflops']:.0f} GFLOP/s) | "
              f"{rate['optimized'] / rate['original']:.2f}x | {keras_cells[1]} | "
              f"{100 * rate['optimized'] / rate['gemm_ceiling']:.0f} % | {best['rounds']} |",
              flush=True)

    if args.ablation:
        print("\n## Rewrites added one at a time, batch 1,000 (interleaved, best of repeats)")
        variants = {"original": original}
        for i, step in enumerate(STEPS):
            if step != "batchnorm":          # no BatchNormalization node in tf2onnx graphs
                variants[f"+ {step}"] = optimize(original, steps=STEPS[:i + 1])
        variants["all, ConvTranspose as one Conv + DepthToSpace + Slice"] = optimize(
            original, convtranspose="single")
        variants["all, ConvTranspose kept (batch norm folded)"] = optimize(
            original, convtranspose="keep")
        variants["all, interleave by NCHW DepthToSpace"] = optimize(
            original, interleave="depth_to_space")
        feeds = feeds_for(original, 1000)
        sessions = {k: session(v, spinning=False) for k, v in variants.items()}
        best = interleaved({k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()},
                           args.seconds * 2)
        print("(sessions without spinning threads; CPU time = the process's, per call)")
        print("| graph | images/s | vs original | images per CPU-second | vs original |")
        print("|---|---|---|---|---|")
        report["ablation"] = {}
        for k in variants:
            wall, cpu_s = 1000 / best[k], 1000 / best[f"cpu:{k}"]
            report["ablation"][k] = {"images_per_s": wall, "images_per_cpu_s": cpu_s}
            print(f"| {k} | {wall:,.0f} | {best['original'] / best[k]:.2f}x | {cpu_s:,.0f} | "
                  f"{best['cpu:original'] / best[f'cpu:{k}']:.2f}x |")
        print(f"({best['rounds']} rounds; {cpu()})")

    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
