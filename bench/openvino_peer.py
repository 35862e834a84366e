"""OpenVINO runtime reading the same .onnx files, against onnxruntime, interleaved.

    .venv-train/bin/python -m pip install --target /work/perf-extra --no-deps \
        openvino openvino-telemetry          # outside the venv: numpy stays the venv's
    PYTHONPATH=.:/work/perf-extra .venv-train/bin/python bench/openvino_peer.py \
        [--seconds 60] [--batches 1000,10000]

Graphs: the exported default generator, its export/optimize.py rewrite, and the int8 QDQ
of the rewrite (bench/int8_optimized.py's recipe). Runtimes: onnxruntime CPU (as ganlite
runs it) and OpenVINO CPU (PERFORMANCE_HINT LATENCY: one request on all cores, as a
session.run call), float32, plus INFERENCE_PRECISION_HINT bf16 when the CPU lists BF16 in
its optimization capabilities (AMX or AVX512_BF16). Prints images/s (best of interleaved
repeats) and max / mean gray-level difference against onnxruntime float32 on the optimized
graph, with the CPU model and its flags.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import openvino as ov  # noqa: E402
from int8_optimized import quantize  # noqa: E402
from profile_graph import converted, cpu, feeds_for, interleaved, session  # noqa: E402

from export.optimize import optimize  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist-cdcgan")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--batches", default="1000,10000")
    args = parser.parse_args()

    original = converted(args.model)
    latent_dim = original.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    num_classes = 10 if len(original.graph.input) > 1 else 0
    optimized = optimize(original)
    int8 = quantize(optimized, "QDQ", False, latent_dim, num_classes)
    graphs = {"original": original, "optimized": optimized, "int8 QDQ optimized": int8}

    core = ov.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    print(f"CPU: {cpu()}\nopenvino {ov.__version__}, CPU capabilities {caps}")
    runners = {}
    for name, g in graphs.items():
        s = session(g)
        runners[f"onnxruntime {name}"] = lambda f, s=s: s.run(None, f)[0]
        precisions = ["f32"] + (["bf16"] if "BF16" in caps else [])
        for precision in precisions:
            if name.startswith("int8") and precision != "f32":
                continue
            compiled = core.compile_model(core.read_model(g.SerializeToString(), b""), "CPU", {
                "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision})
            request = compiled.create_infer_request()
            runners[f"openvino {name} {precision}"] = \
                lambda f, r=request: r.infer(f, share_inputs=True)[0]
    if "BF16" not in caps:
        print("no BF16 capability on this CPU (no AMX / AVX512_BF16): bf16 hint not measured")

    for batch in (int(b) for b in args.batches.split(",")):
        feeds = feeds_for(original, batch)
        reference = runners["onnxruntime optimized"](feeds).astype(np.int16)
        best = interleaved({k: (lambda r=r: r(feeds)) for k, r in runners.items()},
                           args.seconds)
        print(f"\n## batch {batch:,}: best of {best['rounds']} interleaved rounds ({cpu()})")
        print("| runtime, graph, precision | images/s | vs onnxruntime original | "
              "max / mean gray-level diff vs onnxruntime optimized |\n|---|---|---|---|")
        for k, r in runners.items():
            d = np.abs(np.asarray(r(feeds)).astype(np.int16) - reference)
            print(f"| {k} | {batch / best[k]:,.0f} | "
                  f"{best['onnxruntime original'] / best[k]:.2f}x | {d.max()} / {d.mean():.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
