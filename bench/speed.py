"""Speed, memory and size of ganlite against what a user would do instead, in one run.

    PYTHONPATH=. .venv-train/bin/python bench/speed.py [--model mnist-cdcgan] [--quick]

Needs the training environment (TensorFlow, for the Keras side) and the model's Keras
file beside its ONNX file (artifacts/NAME.keras). Prints one table and writes
bench/results/speed.json. Every figure is the median of several runs, measured here:
  - images/s at batch 1, 64, 1,000, 10,000: ganlite's API (latents included), a bare
    onnxruntime InferenceSession.run on the same file, Keras predict and a direct call;
  - the compute ceiling: FLOPs per image against a float32 NumPy GEMM timed in this run;
  - cold start of `ganlite generate --n 100` against the same job in a TensorFlow script;
  - peak RSS of writing --million images to disk (PNG and .npy);
  - the size of a fresh runtime-only virtualenv against one with TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import ganlite  # noqa: E402
from ganlite.latents import draw  # noqa: E402

BATCHES = (1, 64, 1000, 10_000)


def median_rate(fn, images: int, min_seconds: float = 1.0, repeats: int = 5) -> float:
    """Median images/s over `repeats` timings, each long enough to be measured."""
    fn()  # warm up
    t0, calls = time.perf_counter(), 0
    while time.perf_counter() - t0 < min_seconds / repeats or calls < 1:
        fn()
        calls += 1
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        rates.append(images * calls / (time.perf_counter() - t0))
    return statistics.median(rates)


def gemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times) / 1e9


def flops_per_image(model) -> float:
    """2 x multiply-adds of the Dense / Conv2D / Conv2DTranspose layers, per image."""
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            macs += layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            h, w, c_in = layer.input.shape[1:]
            kh, kw = layer.kernel_size
            macs += h * w * c_in * kh * kw * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            macs += h * w * kh * kw * layer.input.shape[-1] * c_out
    return 2.0 * macs


def throughput(path: Path, keras_path: Path, quick: bool) -> tuple[list[dict], object]:
    import keras
    import onnxruntime as ort

    generator = ganlite.load(path, device="cpu")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = keras.models.load_model(keras_path)
    rows = []
    for batch in BATCHES:
        z, labels = draw(0, 0, batch, generator.latent_dim,
                         generator.num_classes if generator.conditional else 0)
        feeds = {"z": z, **({"label": labels} if generator.conditional else {})}
        keras_in = [z, labels.astype(np.int32)] if generator.conditional else z
        seconds = 0.5 if quick else 2.0
        row = {"batch": batch,
               "ganlite": median_rate(lambda: generator.generate(batch, seed=0,
                                                                 batch_size=batch), batch, seconds),
               "onnxruntime": median_rate(lambda: session.run(["image"], feeds), batch, seconds),
               "keras_predict": median_rate(lambda: model.predict(keras_in, batch_size=batch,
                                                                  verbose=0), batch, seconds),
               "keras_call": median_rate(lambda: np.asarray(model(keras_in, training=False)),
                                         batch, seconds)}
        rows.append(row)
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v
                          for k, v in row.items()}), file=sys.stderr, flush=True)
    return rows, model


def _peak_rss_mb(cmd, cwd) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one fresh process, measured by GNU time: a child
    forked from this (large) process would inherit its high-water mark across exec."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed: {proc.stderr[-500:]}")
    return wall, int(proc.stderr.strip().splitlines()[-1]) / 1024


TF_SCRIPT = """
import sys, numpy as np, keras
from PIL import Image
model = keras.models.load_model(sys.argv[1])
z = np.random.default_rng(0).standard_normal((100, model.inputs[0].shape[1]), dtype=np.float32)
inputs = [z, np.arange(100, dtype=np.int32) % 10] if len(model.inputs) > 1 else z
images = model.predict(inputs, verbose=0)
for i, image in enumerate(images):
    Image.fromarray(np.clip(np.rint((image[..., 0] + 1) * 127.5), 0, 255).astype(np.uint8)
                    ).save(f"{sys.argv[2]}/{i:04d}.png")
"""


def cold_start(ganlite_exe: str, keras_path: Path, model: str, repeats: int) -> dict:
    ganlite_times, tf_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "tf_generate.py"
        script.write_text(TF_SCRIPT)
        for i in range(repeats):
            out = Path(tmp) / f"g{i}"
            ganlite_times.append(_peak_rss_mb([ganlite_exe, "generate", "--n", "100", "--out",
                                               str(out), "--model", model, "-q"], tmp)[0])
            out = Path(tmp) / f"t{i}"
            out.mkdir()
            tf_times.append(_peak_rss_mb([sys.executable, str(script), str(keras_path),
                                          str(out)], tmp)[0])
    return {"ganlite_s": statistics.median(ganlite_times),
            "tensorflow_s": statistics.median(tf_times)}


def million(ganlite_exe: str, model: str, n: int) -> dict:
    result = {"n": n}
    with tempfile.TemporaryDirectory(dir=ROOT / "runs") as tmp:
        for fmt in ("npy", "png"):
            out = Path(tmp) / fmt
            wall, rss = _peak_rss_mb([ganlite_exe, "generate", "--n", str(n), "--out", str(out),
                                      "--model", model, "--format", fmt, "-q"], tmp)
            files = len(os.listdir(out)) - 1  # the manifest
            result[fmt] = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss, 1),
                           "images_per_s": round(n / wall), "files": files}
            print(json.dumps({fmt: result[fmt]}), file=sys.stderr, flush=True)
            shutil.rmtree(out)
    return result


def footprint(tf_requirements: Path) -> dict:
    """Sizes of fresh virtualenvs: ganlite wheel alone, and with the training stack."""
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in (("runtime", [str(ROOT)]),
                           ("tensorflow", ["-r", str(tf_requirements)])):
            venv = Path(tmp) / name
            subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *args], check=True,
                           capture_output=True)
            sizes[name] = int(subprocess.run(["du", "-sm", str(venv)], capture_output=True,
                                             text=True).stdout.split()[0])
    return {"runtime_mb": sizes["runtime"], "tensorflow_mb": sizes["tensorflow"]}


def _versions() -> dict:
    from train.versions import versions

    cpu = ""
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(),
            **versions("numpy", "onnxruntime", "tensorflow", "keras", "ganlite")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=ganlite.DEFAULT_MODEL)
    parser.add_argument("--ganlite", default=str(ROOT / ".venv-runtime" / "bin" / "ganlite"),
                        help="the ganlite console script of a runtime-only environment")
    parser.add_argument("--million", type=int, default=1_000_000,
                        help="images for the memory test (0 = skip)")
    parser.add_argument("--no-footprint", action="store_true")
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "speed.json")
    args = parser.parse_args()

    path = ganlite._registry.resolve(args.model)
    keras_path = ROOT / "artifacts" / f"{path.stem}.keras"
    report = {"machine": _versions(), "model": path.stem}
    rows, model = throughput(path, keras_path, args.quick)
    report["throughput"] = rows
    report["gemm_gflops"] = gemm_gflops()
    report["flops_per_image"] = flops_per_image(model)
    ceiling = report["gemm_gflops"] * 1e9 / report["flops_per_image"]
    report["ceiling_images_per_s"] = ceiling
    report["cold_start"] = cold_start(args.ganlite, keras_path, str(path), 5)
    if args.million:
        report["million"] = million(args.ganlite, str(path), args.million)
    if not args.no_footprint:
        report["footprint"] = footprint(ROOT / "requirements-train.txt")

    big = [r for r in rows if r["batch"] >= 1000]
    one = rows[0]
    targets = [
        ("ganlite / onnxruntime at batch >= 1000", min(r["ganlite"] / r["onnxruntime"]
                                                        for r in big), ">=", 0.95),
        ("ganlite / Keras predict at batch >= 1000", min(r["ganlite"] / r["keras_predict"]
                                                          for r in big), ">=", 2.0),
        ("ganlite / Keras predict at batch 1", one["ganlite"] / one["keras_predict"], ">=", 20),
        ("ganlite at batch 10,000 / compute ceiling", rows[-1]["ganlite"] / ceiling, ">=", 0.5),
        ("cold start ganlite / TensorFlow", report["cold_start"]["ganlite_s"]
         / report["cold_start"]["tensorflow_s"], "<=", 0.2),
    ]
    if "footprint" in report:
        targets.append(("runtime venv / TensorFlow venv", report["footprint"]["runtime_mb"]
                        / report["footprint"]["tensorflow_mb"], "<=", 0.2))
    if "million" in report:
        targets.append(("peak RSS MB, 1M PNGs", report["million"]["png"]["peak_rss_mb"],
                        "<=", 300))
    report["targets"] = [{"target": t, "measured": round(v, 3), "bound": f"{op} {b}",
                          "met": bool(v >= b if op == ">=" else v <= b)}
                         for t, v, op, b in targets]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{report['machine']}\nmodel {path.stem}: {report['flops_per_image'] / 1e6:.1f} "
          f"MFLOP/image; GEMM {report['gemm_gflops']:.0f} GFLOP/s -> ceiling "
          f"{ceiling:,.0f} images/s\n")
    print("| batch | ganlite | onnxruntime | Keras predict | Keras call | (images/s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']:,} | {r['ganlite']:,.0f} | {r['onnxruntime']:,.0f} | "
              f"{r['keras_predict']:,.0f} | {r['keras_call']:,.0f} | |")
    print(f"\ncold start (--n 100, median of 5): ganlite {report['cold_start']['ganlite_s']:.2f}"
          f" s, TensorFlow script {report['cold_start']['tensorflow_s']:.2f} s")
    if "million" in report:
        for fmt in ("png", "npy"):
            m = report["million"][fmt]
            print(f"{args.million:,} images as {fmt}: {m['wall_s']} s, "
                  f"{m['images_per_s']:,} images/s, peak RSS {m['peak_rss_mb']} MB")
    if "footprint" in report:
        print(f"venv size: runtime {report['footprint']['runtime_mb']} MB, with TensorFlow "
              f"{report['footprint']['tensorflow_mb']} MB")
    print("\n| target | measured | bound | met |\n|---|---|---|---|")
    for t in report["targets"]:
        print(f"| {t['target']} | {t['measured']} | {t['bound']} | {'yes' if t['met'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
