"""ganlite's --device openvino (and openvino-bf16 where the CPU has bf16) against its
onnxruntime CPU path, through ganlite's own API, interleaved; plus parity of the images.

    PYTHONPATH=.:/work/perf-extra .venv-train/bin/python bench/openvino_device.py \
        [--model mnist-cdcgan] [--seconds 30] [--batches 1,64,1000,10000] [--no-keras] \
        [--parity 10000] [--out bench/results/openvino_device]

(OpenVINO from `pip install 'ganlite[openvino]'`, or pip --target'ed beside the training
venv as above; Keras `predict` needs the training venv and artifacts/NAME.keras.)

Rows, images/s, best of interleaved rounds (A, B, C, A, B, C, ...: only ratios from one
run are worth comparing on a shared machine):
  - ganlite cpu / openvino / openvino-bf16: Generator.generate(batch, batch_size=batch),
    latents included, as a user calls it; also the model's int8 variant on cpu / openvino
    where one is built in;
  - onnxruntime / OpenVINO bare: the same .onnx in an InferenceSession.run / an
    InferRequest.infer on the same inputs (what ganlite's adapter costs on top);
  (these two and the int8 rows up to batch EXTRA_ROWS_UP_TO: memory)
  - Keras predict on the model's .keras file (the issue's target: openvino-bf16 >= 2x Keras
    predict at batch 10,000 on a CPU with AMX).
Parity: max and mean gray-level difference and the share of pixels differing between
--device openvino (each precision) and --device cpu, on --parity images of each built-in
generator. Writes OUT.json and OUT.md; prints the CPU and its AVX-512/VNNI/AMX flags.

generators() gives bench/speed.py the same ganlite rows for its own table; measure() is
this script's whole timing.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from profile_graph import cpu, interleaved  # noqa: E402

import ganlite  # noqa: E402
from ganlite.latents import draw  # noqa: E402

BATCHES = (1, 64, 1000, 10_000)
# Bare sessions and int8 rows only up to this batch: at 10,000 each runtime holds ~2 GB of
# buffers, and seven of them beside Keras ran this 23 GB machine out of memory.
EXTRA_ROWS_UP_TO = 1000


def openvino_devices() -> list[str]:
    """The OpenVINO devices this CPU offers: 'openvino', and 'openvino-bf16' where OpenVINO
    lists BF16 among the CPU's capabilities (AMX or AVX512_BF16)."""
    import openvino

    caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ["openvino"] + (["openvino-bf16"] if "BF16" in caps else [])


def generators(model: str, int8: bool = True) -> dict[str, ganlite.Generator]:
    """{"ganlite cpu": ..., "ganlite openvino": ..., "ganlite openvino-bf16": ...} (what
    this CPU offers; only cpu without openvino), and the same for the model's int8
    variant where one is built in ("ganlite int8 cpu", "ganlite int8 openvino"): the rows
    bench/speed.py can add to its interleaved loop, each timed as gen.generate(batch,
    seed=0, batch_size=batch)."""
    try:
        devices = ["cpu", *openvino_devices()]
    except ImportError:
        devices = ["cpu"]
    gens = {f"ganlite {d}": ganlite.load(model, device=d) for d in devices}
    if int8 and f"{model}-int8" in ganlite.list_models():
        # bf16 is a float precision: an int8 graph keeps its int8 kernels either way.
        gens |= {f"ganlite int8 {d}": ganlite.load(f"{model}-int8", device=d)
                 for d in devices if d != "openvino-bf16"}
    return gens


def runners(model: str, batch: int, keras_model=None) -> dict[str, Callable[[], object]]:
    """The timed calls for one batch size, each producing `batch` images."""
    import onnxruntime as ort
    import openvino

    path = ganlite._registry.resolve(model)
    gens = generators(model, int8=batch <= EXTRA_ROWS_UP_TO)
    g = gens["ganlite cpu"]
    z, labels = draw(0, 0, batch, g.latent_dim, g.num_classes if g.conditional else 0)
    feeds = {"z": z, **({"label": labels} if g.conditional else {})}
    calls: dict[str, Callable[[], object]] = {
        name: (lambda gen=gen: gen.generate(batch, seed=0, batch_size=batch))
        for name, gen in gens.items()}
    if batch <= EXTRA_ROWS_UP_TO:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        calls["onnxruntime bare"] = lambda: session.run(None, feeds)
        request = openvino.Core().compile_model(str(path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}) \
            .create_infer_request()
        calls["OpenVINO bare f32"] = lambda: request.infer(feeds)
    if keras_model is not None:
        keras_in = [z, labels.astype(np.int32)] if g.conditional else z
        calls["Keras predict"] = lambda: keras_model.predict(keras_in, batch_size=batch,
                                                             verbose=0)
    return calls


def measure(model: str = ganlite.DEFAULT_MODEL, batches=BATCHES, seconds: float = 30,
            keras_model=None) -> list[dict]:
    """Images/s of every runner at each batch size, one interleaved run per batch size:
    [{"batch": b, "rounds": r, "images_per_s": {runner: rate}}, ...]."""
    rows = []
    for batch in batches:
        calls = runners(model, batch, keras_model)
        best = interleaved(calls, seconds)
        rows.append({"batch": batch, "rounds": best["rounds"],
                     "images_per_s": {k: batch / best[k] for k in calls}})
        del calls          # this batch size's sessions and buffers, before the next one's
        gc.collect()
        print(json.dumps({"batch": batch, **{k: round(v) for k, v in
                                             rows[-1]["images_per_s"].items()}}),
              file=sys.stderr, flush=True)
    return rows


def parity(model: str, n: int) -> dict:
    """Each OpenVINO precision against onnxruntime on the CPU, n images of seed 0, every
    class in turn: max / mean gray-level difference and the share of pixels differing."""
    labels = ganlite.LabelCycle(range(10)) if ganlite.load(model, device="cpu").conditional \
        else None
    reference = ganlite.load(model, device="cpu").generate(n, seed=0, labels=labels,
                                                           batch_size=1000)
    result = {}
    for device in openvino_devices():
        images = ganlite.load(model, device=device).generate(n, seed=0, labels=labels,
                                                             batch_size=1000)
        d = np.abs(images.astype(np.int16) - reference)
        result[device] = {"images": n, "max": int(d.max()), "mean": float(d.mean()),
                          "share_differing": float(np.mean(d > 0)),
                          "share_within_1": float(np.mean(d <= 1))}
    return result


def _markdown(report: dict) -> str:
    rows = report["throughput"]
    names = list(dict.fromkeys(k for r in rows for k in r["images_per_s"]))
    lines = [f"# ganlite --device openvino vs onnxruntime ({report['model']})", "",
             f"CPU: {report['cpu']}  ", f"at the end: {report['cpu_after']}  ",
             f"versions: {report['versions']}  ",
             f"graph: artifacts/{report['model']}.onnx as shipped ({report['graph']})", "",
             f"`{report['command']}`", "",
             "Images/s, best of interleaved rounds per batch size (one run):", ""]
    ratios = [(f"{v}openvino / {v}cpu", f"ganlite {v}openvino", f"ganlite {v}cpu")
              for v in ("", "int8 ") if f"ganlite {v}openvino" in names]
    lines += ["| batch | rounds | " + " | ".join(names + [r[0] for r in ratios]) + " |",
              "|---|---|" + "---|" * (len(names) + len(ratios))]
    for r in rows:
        rate = r["images_per_s"]
        lines.append(f"| {r['batch']:,} | {r['rounds']} | "
                     + " | ".join(f"{rate[k]:,.0f}" if k in rate else "-" for k in names)
                     + "".join(f" | {rate[a] / rate[b]:.2f}x" if a in rate else " | -"
                               for _, a, b in ratios) + " |")
    if "Keras predict" in names:
        lines += ["", "Against Keras predict (same run; TensorFlow's spinning threads suffer "
                  "most from other processes on a shared machine: read with the load "
                  "average above):", "",
                  "| batch | " + " | ".join(n for n in names if n.startswith("ganlite"))
                  + " |", "|---|" + "---|" * sum(n.startswith("ganlite") for n in names)]
        for r in rows:
            rate = r["images_per_s"]
            lines.append(f"| {r['batch']:,} | " + " | ".join(
                f"{rate[k] / rate['Keras predict']:.2f}x" if k in rate else "-"
                for k in names if k.startswith("ganlite")) + " |")
    lines += ["", "Parity against --device cpu (onnxruntime), seed 0, every class in turn:",
              "", "| model | device | images | max gray levels | mean | pixels differing |"
              " within 1 level |", "|---|---|---|---|---|---|---|"]
    for model, per_device in report["parity"].items():
        for device, p in per_device.items():
            lines.append(f"| {model} | {device} | {p['images']:,} | {p['max']} | "
                         f"{p['mean']:.5f} | {p['share_differing']:.4%} | "
                         f"{p['share_within_1']:.4%} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=ganlite.DEFAULT_MODEL)
    parser.add_argument("--seconds", type=float, default=30,
                        help="timing budget per batch size")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--parity", type=int, default=10_000,
                        help="images per built-in generator for the parity figures (0: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                        "openvino_device")
    args = parser.parse_args()

    import onnxruntime
    import openvino

    machine = cpu()
    print(f"CPU: {machine}\nOpenVINO devices here: {', '.join(openvino_devices())}",
          flush=True)
    keras_model, keras_version = None, ""
    if not args.no_keras:
        import keras

        keras_model = keras.models.load_model(ROOT / "artifacts" / f"{args.model}.keras")
        keras_version = f", keras {keras.__version__}"
    path = ganlite._registry.resolve(args.model)
    ops = ("ConvTranspose" if b"ConvTranspose" in path.read_bytes()
           else "optimized: no ConvTranspose")
    report = {"model": args.model, "cpu": machine, "command": " ".join(sys.argv),
              "graph": ops,
              "versions": f"onnxruntime {onnxruntime.__version__}, openvino "
                          f"{openvino.__version__.split('-')[0]}, numpy {np.__version__}"
                          f"{keras_version}",
              "throughput": measure(args.model, [int(b) for b in args.batches.split(",")],
                                    args.seconds, keras_model),
              "parity": {m: parity(m, args.parity) for m in ganlite.list_models()}
              if args.parity else {}}
    report["cpu_after"] = cpu()   # the load average at the end
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    text = _markdown(report)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
