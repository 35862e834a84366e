"""Lighter variants of an exported generator: fp16 weights and static QDQ int8.

    PYTHONPATH=. .venv-train/bin/python -m export.variants \
        artifacts/mnist-cdcgan.onnx --out runs/variants

Writes NAME-fp16.onnx and NAME-int8.onnx (each with its own card: the parent's, its own
hash, the variant and how it was made) and prints their speed at batch 1,000 and 10,000 and
their quality (FCD etc., 10,000 samples) next to the fp32 model's. Ship a variant only when
it is at least 5 % faster (beyond timing noise) and its FCD is within 10 % of fp32's.
int8: onnxruntime.quantization.quantize_static, QDQ format, per-channel weights, calibrated
on 16 batches of 64 latents (and uniform labels), after quant_pre_process.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from ganlite.files import atomic_write_bytes
from ganlite.latents import draw

from .errors import ExportError


def _calibration(card: dict, batches: int = 16, batch: int = 64):
    from onnxruntime.quantization import CalibrationDataReader

    class Latents(CalibrationDataReader):
        def __init__(self):
            self.items = []
            for b in range(batches):
                z, labels = draw(777, b * batch, batch, card["latent_dim"],
                                 card["num_classes"] if card["conditional"] else 0)
                self.items.append({"z": z, **({"label": labels} if card["conditional"]
                                              else {})})

        def get_next(self):
            return self.items.pop(0) if self.items else None
    return Latents()


def _ops(model_path: Path) -> dict:
    import onnx

    counts: dict = {}
    for node in onnx.load(str(model_path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _topological_sort(graph) -> None:
    """convert_float_to_float16 appends its input Casts at the end; ONNX wants producers
    before consumers."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError("the fp16 graph has a cycle or a dangling input")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
            pending.remove(node)
    del graph.node[:]
    graph.node.extend(ordered)


def make_variants(source: Path, out_dir: Path) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from ganlite import read_card

    from .card import finish

    card = read_card(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    base = onnx.load(str(source))
    del base.metadata_props[:]

    fp16 = convert_float_to_float16(base, keep_io_types=True)
    _topological_sort(fp16.graph)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        plain = Path(tmp) / "plain.onnx"
        onnx.save(base, str(plain))
        quant_pre_process(str(plain), str(pre), skip_symbolic_shape=True)
        q = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(q), _calibration(card), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8)
        int8 = onnx.load(str(q))

    for variant, proto, how in (
            ("fp16", fp16, "onnxruntime.transformers.float16.convert_float_to_float16, "
                           "keep_io_types=True"),
            ("int8", int8, "onnxruntime.quantization.quantize_static: QDQ, per-channel QInt8 "
                           "weights, QUInt8 activations, 16x64 calibration latents")):
        name = f"{card['name']}-{variant}"
        variant_card = {**card, "name": name, "variant": variant, "variant_of": card["name"],
                        "variant_method": how}
        for key in ("inputs", "outputs", "model_sha256"):
            variant_card.pop(key, None)
        path = out_dir / f"{name}.onnx"
        atomic_write_bytes(path, finish(proto, variant_card, path))
        paths[variant] = path
    return paths


def _rate(generator, batch: int, repeats: int = 5) -> float:
    generator.generate(batch, seed=0, batch_size=batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        generator.generate(batch, seed=0, batch_size=batch)
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for NAME-fp16.onnx, NAME-int8.onnx and variants.json.")
def main(model: Path, out: Path) -> None:
    """Make and measure the fp16 and int8 variants of exported generator MODEL."""
    import ganlite

    paths = {"fp32": model, **make_variants(model, out)}
    results = {}
    reference = None
    for variant, path in paths.items():
        generator = ganlite.Generator(path, device="cpu")
        report = ganlite.evaluate(generator, n=10_000, seed=0)
        row = {"variant": variant, "size_mb": round(path.stat().st_size / 1e6, 2),
               "images_per_s_1000": round(_rate(generator, 1000)),
               "images_per_s_10000": round(_rate(generator, 10_000, 3)),
               "fcd": round(report.fcd, 3), "classifier_score": round(report.classifier_score, 3),
               "precision": round(report.precision, 3), "recall": round(report.recall, 3)}
        if variant != "fp32":
            row["ops"] = {k: v for k, v in _ops(path).items()
                          if k in ("QuantizeLinear", "DequantizeLinear", "Cast", "ConvTranspose",
                                   "Conv", "MatMul", "Gemm")}
        reference = reference or row
        row["fcd_vs_fp32"] = round(row["fcd"] / reference["fcd"] - 1, 4)
        row["speed_vs_fp32"] = round(row["images_per_s_10000"]
                                     / reference["images_per_s_10000"], 3)
        # "Faster" must beat run-to-run noise (a few %), hence 5 %.
        row["ship"] = bool(variant != "fp32" and row["speed_vs_fp32"] >= 1.05
                           and row["fcd_vs_fp32"] <= 0.10)
        results[variant] = row
        print(json.dumps(row), flush=True)
    atomic_write_bytes(out / "variants.json", json.dumps(results, indent=1).encode())


if __name__ == "__main__":
    from train.clitools import run_cli

    sys.exit(run_cli(main, None, "python -m export.variants"))
