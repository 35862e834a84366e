"""The int8 variant of an optimized generator, shipped only if it keeps the float model's
quality:

    python -m export int8 artifacts/mnist-cdcgan.onnx      # -> artifacts/mnist-cdcgan-int8.onnx

How it is made: onnxruntime.quantization.quantize_static of the *optimized* graph (the
converted graph's ConvTranspose has no int8 CPU kernel: quantized as it is, it runs
DequantizeLinear -> float ConvTranspose -> QuantizeLinear and gains nothing), QDQ format
(QOperator ran the same kernels once onnxruntime fused the QDQ pairs, within noise, and QDQ
is what other runtimes read: bench/results/optimize-notes.md), per-channel QInt8 weights,
QUInt8 activations, MinMax calibration on the model's own latents and labels (32 batches of
64 from ganlite's latent stream, seed 777); the image layer stays float (see image_layer()).
Percentile and entropy calibration did not help (Fashion FCD 5.9 and 6.3 against 2.2).

The quality gate (10,000 samples of each of 3 seeds, means over the seeds, the dataset's
own classifier through ganlite.evaluate):
  FCD within 5 % of the float model's; classifier score within 0.05; precision and recall
  within 0.02; on-label accuracy of every class >= 98 % (MNIST) or, where the float model
  itself is below that (Fashion-MNIST: shirts are shirts to the classifier ~80 % of the
  time even for real images), within 1 point of the float model's for that class.
Nothing is written unless every check passes; the figures go into the variant's card.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ganlite.files import atomic_write_all
from ganlite.latents import draw

from .card import card_json, finish
from .errors import ExportError

CALIBRATION = {"seed": 777, "batches": 32, "batch": 64}
METHOD = ("onnxruntime.quantization.quantize_static of the optimized graph: QDQ, per-channel "
          "QInt8 weights, QUInt8 activations, MinMax calibration on 32 x 64 of the model's "
          "own latents and labels (ganlite.latents, seed 777); the image layer (the Convs "
          "and Adds before the Sigmoid) kept in float")
# The bounds: int8 against float, means over the seeds.
MAX_FCD_RATIO = 1.05
MAX_SCORE_DIFF = 0.05
MAX_PR_DIFF = 0.02
MIN_ON_LABEL = 0.98
MAX_ON_LABEL_DROP = 0.01


class QualityGateError(ExportError):
    """The int8 model loses more quality than the gate allows: nothing was written."""


def _calibration(card: dict):
    from onnxruntime.quantization import CalibrationDataReader

    classes = card["num_classes"] if card["conditional"] else 0

    class Latents(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = []
            for b in range(CALIBRATION["batches"]):
                z, labels = draw(CALIBRATION["seed"], b * CALIBRATION["batch"],
                                 CALIBRATION["batch"], card["latent_dim"], classes)
                self.items.append({"z": z, **({"label": labels} if classes else {})})

        def get_next(self):
            return self.items.pop(0) if self.items else None
    return Latents()


def image_layer(proto) -> list[str]:
    """Names of the nodes computing the image before rounding: the Sigmoid and the Convs and
    Adds feeding it. Kept in float: quantized, each of the image Conv's four partial sums is
    rounded to uint8 before they are added, and on Fashion-MNIST's large mid-gray areas
    that error shows (FCD 6.4 against 2.4 float; 2.23 against 2.22 with the layer in float,
    10,000 samples; MNIST's mostly black/white strokes hide it)."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    sigmoids = [n for n in proto.graph.node if n.op_type == "Sigmoid"]
    if len(sigmoids) != 1:
        raise ExportError("the optimized graph has no single Sigmoid before its uint8 output")
    names, pending = [sigmoids[0].name], [sigmoids[0].input[0]]
    while pending:
        node = producer.get(pending.pop())
        if node is not None and node.op_type in ("Add", "Conv"):
            names.append(node.name)
            if node.op_type == "Add":
                pending += list(node.input)
    return names


def quantize(proto, card: dict):
    """The int8 QDQ ModelProto of an optimized generator graph (metadata dropped)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    base = onnx.ModelProto()
    base.CopyFrom(proto)
    del base.metadata_props[:]
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (str(Path(tmp) / n) for n in ("src.onnx", "pre.onnx", "q.onnx"))
        onnx.save(base, src)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(pre, out, _calibration(card), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, nodes_to_exclude=image_layer(base))
        return onnx.load(out)


def judge(float_model, int8_model, seeds=(0, 1, 2), n: int = 10_000) -> dict:
    """The quality gate's figures: per seed and mean, float and int8, and each check.

    Args:
        float_model, int8_model: paths or loaded ganlite Generators.
        seeds: sample seeds; n: samples per seed.

    Returns:
        {"samples", "seeds", "float": {...means}, "int8": {...means}, "per_seed": [...],
         "checks": {name: bool}, "passed": bool}.
    """
    import ganlite

    reports: dict[str, list] = {"float": [], "int8": []}
    for seed in seeds:
        for key, model in (("float", float_model), ("int8", int8_model)):
            reports[key].append(ganlite.evaluate(model, n=n, seed=seed, device="cpu"))

    def means(rs) -> dict:
        out = {k: float(np.mean([getattr(r, k) for r in rs]))
               for k in ("fcd", "classifier_score", "precision", "recall")}
        if rs[0].label_accuracy is not None:
            out["label_accuracy"] = np.mean([r.label_accuracy for r in rs], axis=0)
        return out

    f, q = means(reports["float"]), means(reports["int8"])
    checks = {
        "fcd_within_5_percent": q["fcd"] <= MAX_FCD_RATIO * f["fcd"],
        "classifier_score_within_0.05": abs(q["classifier_score"] - f["classifier_score"])
        <= MAX_SCORE_DIFF,
        "precision_within_0.02": abs(q["precision"] - f["precision"]) <= MAX_PR_DIFF,
        "recall_within_0.02": abs(q["recall"] - f["recall"]) <= MAX_PR_DIFF,
    }
    if "label_accuracy" in f:
        floor = np.minimum(MIN_ON_LABEL, f["label_accuracy"] - MAX_ON_LABEL_DROP)
        checks["on_label_every_class"] = bool((q["label_accuracy"] >= floor).all())
    rounded = {key: {k: (np.round(v, 4).tolist() if isinstance(v, np.ndarray)
                         else round(v, 4)) for k, v in m.items()}
               for key, m in (("float", f), ("int8", q))}
    per_seed = [{"seed": s, **{key: {"fcd": round(reports[key][i].fcd, 4),
                                     "precision": round(reports[key][i].precision, 4),
                                     "recall": round(reports[key][i].recall, 4)}
                               for key in reports}} for i, s in enumerate(seeds)]
    return {"samples": n, "seeds": list(seeds), **rounded, "per_seed": per_seed,
            "checks": {k: bool(v) for k, v in checks.items()},
            "passed": all(checks.values())}


def make_int8(source: Path, out: Path | None = None, seeds=(0, 1, 2),
              n: int = 10_000) -> dict:
    """Quantize the optimized generator `source`, judge it, and write NAME-int8.onnx (+ .json)
    beside it (or at `out`) only if the gate passes. Returns the gate's figures.

    Raises:
        ExportError: `source` is not an optimized generator; QualityGateError (a subclass)
            when the int8 model fails the gate (nothing written).
        OutputError: the files cannot be written.
    """
    import onnx

    import ganlite
    from ganlite import modelfile as mf

    from .reoptimize import is_optimized

    data = mf.read_model_bytes(source)
    card = mf.verified_card(data, source)
    if card.get("kind") != "generator" or card.get("variant"):
        raise ExportError(f"{source}: not a float generator")
    if not is_optimized(card):
        raise ExportError(f"{source}: not optimized; run python -m export optimize {source} "
                          f"first (int8 of the converted graph gains nothing on CPU)")
    name = f"{card['name']}-int8"
    out = out or source.with_name(f"{name}.onnx")
    int8 = quantize(onnx.load_from_string(data), card)
    variant_card = {k: v for k, v in card.items()
                    if k not in ("inputs", "outputs", mf.HASH_KEY, "optimize_command",
                                 "parity")}
    variant_card.update({"name": name, "summary": f"{card['summary']}, int8",
                         "variant": "int8", "variant_of": card["name"],
                         "variant_method": METHOD,
                         "variant_command": f"python -m export int8 {source}"})
    with tempfile.TemporaryDirectory() as tmp:      # judged as the runtime will run it
        trial = Path(tmp) / f"{name}.onnx"
        trial.write_bytes(finish(onnx.load_from_string(int8.SerializeToString()),
                                 dict(variant_card), trial))
        float_gen = ganlite.Generator(source, device="cpu")
        int8_gen = ganlite.Generator(trial, device="cpu")
        gate = judge(float_gen, int8_gen, seeds, n)
        a, b = (g.generate(1000, seed=0).astype(np.int16) for g in (float_gen, int8_gen))
    difference = {"samples": 1000, "max_gray_levels": int(np.abs(a - b).max()),
                  "mean_gray_levels": round(float(np.abs(a - b).mean()), 4),
                  "pixels_differing": round(float((a != b).mean()), 4)}
    if not gate["passed"]:
        failed = ", ".join(k for k, ok in gate["checks"].items() if not ok)
        raise QualityGateError(f"{source}: the int8 model fails the quality gate ({failed}): "
                               f"FCD {gate['int8']['fcd']:.3f} vs {gate['float']['fcd']:.3f}; "
                               f"nothing written")
    variant_card["quality_gate"] = gate
    variant_card["difference_from_float"] = difference
    sealed = finish(int8, variant_card, out)
    atomic_write_all({out: sealed, out.with_suffix(".json"): card_json(variant_card)})
    return gate
