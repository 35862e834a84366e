"""Static int8 quantization of the optimized default generator: QDQ against QOperator,
speed at batch 10,000 and quality against float.

    PYTHONPATH=. .venv-train/bin/python bench/int8_optimized.py [--seconds 120] [--no-keras]
        [--out runs/int8]

Graphs: float original, float optimized (export/optimize.py) and, made from the optimized
graph with onnxruntime.quantization.quantize_static (per-channel QInt8 weights, QUInt8
activations, MinMax calibration on the model's own latents and labels: 32 batches of 64
from ganlite's latent stream, seed 777), QDQ and QOperator, each with and without
reduce_range (7-bit weights: the u8 x s8 AVX2 kernels without VNNI saturate otherwise);
plus QDQ of the original graph (what export/variants.py, since removed, made) for comparison.
Prints the CPU and its flags, the op types of each int8 graph and the kernels onnxruntime
runs (profiler, batch 1,000), images/s at batch 10,000 timed interleaved (best of the
repeats; the machine is shared, read ratios), and per graph on 10,000 images of seed 0:
max and mean |gray level - float optimized|, pixels differing, FCD / MNIST score /
precision / recall from ganlite.evaluate.
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import onnx  # noqa: E402
from profile_graph import converted, cpu, interleaved, profile_by_op, session  # noqa: E402

from export.optimize import optimize  # noqa: E402


def calibration(latent_dim: int, num_classes: int, batches: int = 32, batch: int = 64):
    from onnxruntime.quantization import CalibrationDataReader

    from ganlite.latents import draw

    class Latents(CalibrationDataReader):
        def __init__(self):
            self.items = []
            for b in range(batches):
                z, labels = draw(777, b * batch, batch, latent_dim, num_classes)
                self.items.append({"z": z, **({"label": labels} if num_classes else {})})

        def get_next(self):
            return self.items.pop(0) if self.items else None
    return Latents()


def quantize(model: onnx.ModelProto, fmt: str, reduce_range: bool, latent_dim: int,
             num_classes: int) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (str(Path(tmp) / n) for n in ("src.onnx", "pre.onnx", "q.onnx"))
        onnx.save(model, src)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(pre, out, calibration(latent_dim, num_classes),
                        quant_format=QuantFormat.QDQ if fmt == "QDQ" else QuantFormat.QOperator,
                        per_channel=True, reduce_range=reduce_range,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        return onnx.load(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist-cdcgan")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--out", type=Path, help="save the int8 graphs here")
    args = parser.parse_args()

    import ganlite
    from ganlite.latents import draw

    original = converted(args.model)
    inputs = {i.name: i for i in original.graph.input}
    latent_dim = inputs["z"].type.tensor_type.shape.dim[1].dim_value
    num_classes = 10 if "label" in inputs else 0
    optimized = optimize(original)
    graphs = {"float original": original, "float optimized": optimized}
    for fmt in ("QDQ", "QOperator"):
        for rr in (False, True):
            graphs[f"int8 {fmt} optimized{', reduce_range' if rr else ''}"] = quantize(
                optimized, fmt, rr, latent_dim, num_classes)
    graphs["int8 QDQ original"] = quantize(original, "QDQ", False, latent_dim, num_classes)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, g in graphs.items():
            if name.startswith("int8"):
                onnx.save(g, str(args.out / (name.replace(" ", "-").replace(",", "") + ".onnx")))

    print(f"CPU: {cpu()}")
    for name, g in graphs.items():
        ops = collections.Counter(n.op_type for n in g.graph.node)
        by_op = sorted(profile_by_op(g, runs=3).items(), key=lambda kv: -kv[1])
        print(f"\n{name}: graph ops {dict(ops)}\n  kernels run (ms, batch 1,000): "
              f"{ {op: round(ms, 1) for op, ms in by_op} }")

    z, labels = draw(0, 0, 10_000, latent_dim, num_classes)
    feeds = {"z": z, **({"label": labels} if num_classes else {})}
    sessions = {k: session(g) for k, g in graphs.items()}
    fns = {k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}
    if not args.no_keras:
        import keras

        model = keras.models.load_model(ROOT / "artifacts" / f"{args.model}.keras")
        k_in = [z, labels.astype(np.int32)] if num_classes else z
        fns["Keras predict"] = lambda: model.predict(k_in, batch_size=10_000, verbose=0)
    best = interleaved(fns, args.seconds)
    print(f"\n## Batch 10,000, interleaved, best of {best['rounds']} rounds ({cpu()})")
    ref = best["float optimized"]
    keras = best.get("Keras predict")
    print("| graph | images/s | vs float optimized | vs Keras predict |\n|---|---|---|---|")
    for k in fns:
        print(f"| {k} | {10_000 / best[k]:,.0f} | {ref / best[k]:.2f}x | "
              f"{f'{keras / best[k]:.2f}x' if keras else '-'} |")

    if args.no_quality:
        return
    images = {k: s.run(None, feeds)[0] for k, s in sessions.items()}
    base = images["float optimized"].astype(np.int16)
    print("\n## Quality, 10,000 images of seed 0")
    print("| graph | max abs diff | mean abs diff | pixels differing | FCD | MNIST score "
          "| precision | recall |\n|---|---|---|---|---|---|---|---|")
    for k, im in images.items():
        d = np.abs(im.astype(np.int16) - base)
        r = ganlite.evaluate(images=im, dataset="mnist", device="cpu")
        print(f"| {k} | {d.max()} | {d.mean():.3f} | {100 * (d > 0).mean():.2f} % | "
              f"{r.fcd:.3f} | {r.mnist_score:.3f} | {r.precision:.3f} | {r.recall:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
