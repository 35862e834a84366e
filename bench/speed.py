"""Speed of ganlite against Keras, OpenVINO and the machine's GEMM ceiling, in one run.

    PYTHONPATH=. .venv-train/bin/python bench/speed.py [--model mnist-cdcgan] [--quick]
        [--million 1000000] [--readme]

Needs the training environment (TensorFlow, for the Keras side; artifacts/NAME.keras) and,
for the OpenVINO rows, the `openvino` package importable (a bench-only dependency:
`pip install openvino`; rows are left out where it is not). Prints the CPU model with its
AVX-512 / VNNI / AMX flags and the load average, then, each figure measured in this run:
  - images/s at batch 1, 64, 1,000, 10,000, timed interleaved (A, B, C, A, B, C, ..., best
    of the rounds: machines are shared, read the ratios): ganlite float32 (the shipped,
    optimized graph, through the API, latents included), ganlite int8 (NAME-int8), the
    graph as tf2onnx converts it (before export/optimize.py), Keras `predict`, OpenVINO
    reading the shipped .onnx (f32; bf16 where the CPU lists BF16), and the float32
    2048^3 NumPy GEMM as the compute ceiling (model FLOPs per image / GEMM FLOP/s);
  - batch 1 latency: p50 and p99 per image of ganlite float32 / int8 and Keras `predict`;
  - kernel time by op type of the shipped model at batch 1,000 (onnxruntime's profiler);
  - --million images written by `ganlite generate` as PNG and as npy (rate, peak RSS);
  - cold start and the size of a runtime venv against a TensorFlow one (--footprint).
Writes bench/results/speed.json and speed.md, and with --readme the table into README.md
between its "bench:speed" markers.
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

sys.path.insert(0, str(ROOT / "bench"))

import onnx  # noqa: E402
from profile_graph import (  # noqa: E402
    converted,
    cpu,
    flops_per_image,
    gemm_seconds,
    interleaved,
    profile_by_op,
    session,
)

import ganlite  # noqa: E402
from ganlite.latents import draw  # noqa: E402

BATCHES = (1, 64, 1000, 10_000)


def _openvino_runners(path: Path) -> dict:
    """{"OpenVINO f32": fn(feeds) -> images, ...} on the shipped .onnx, or {} without
    openvino. LATENCY hint: one request on all cores, like one session.run call."""
    try:
        import openvino as ov
    except ImportError:
        return {}
    core = ov.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    runners = {}
    for precision in ["f32"] + (["bf16"] if "BF16" in caps else []):
        compiled = core.compile_model(str(path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision})
        request = compiled.create_infer_request()
        runners[f"OpenVINO {precision}"] = \
            lambda f, r=request: r.infer(f, share_inputs=True)[0]
    return runners


def throughput(name: str, seconds: float) -> tuple[list[dict], dict, float]:
    """Rows of images/s per batch size, the op profile, and FLOPs per image."""
    import keras

    float_gen = ganlite.load(name, device="cpu")
    int8_name = f"{name}-int8"
    int8_gen = ganlite.load(int8_name, device="cpu") \
        if int8_name in ganlite.list_models() else None
    original = converted(name)
    s_orig = session(original)
    model = keras.models.load_model(ROOT / "artifacts" / f"{name}.keras")
    ov_runners = _openvino_runners(ganlite._registry.resolve(name))
    gemm, gemm_flop = gemm_seconds()
    flops = flops_per_image(original)
    classes = float_gen.num_classes if float_gen.conditional else 0
    rows = []
    for batch in BATCHES:
        z, labels = draw(0, 0, batch, float_gen.latent_dim, classes)
        feeds = {"z": z, **({"label": labels} if classes else {})}
        keras_in = [z, labels.astype(np.int32)] if classes else z
        fns = {"ganlite float32": lambda: float_gen.generate(batch, seed=0, batch_size=batch)}
        if int8_gen is not None:
            fns["ganlite int8"] = lambda: int8_gen.generate(batch, seed=0, batch_size=batch)
        fns["converted graph"] = lambda: s_orig.run(None, feeds)
        fns["Keras predict"] = lambda: model.predict(keras_in, batch_size=batch, verbose=0)
        for k, r in ov_runners.items():
            fns[k] = lambda r=r: r(feeds)
        fns["GEMM"] = gemm
        best = interleaved(fns, seconds if batch > 1 else seconds / 2, min_rounds=3)
        row = {"batch": batch, "rounds": best["rounds"],
               **{k: batch / best[k] for k in fns if k != "GEMM"},
               "ceiling": gemm_flop / best["GEMM"] / flops}
        rows.append(row)
        print(json.dumps({k: round(v) if isinstance(v, float) else v
                          for k, v in row.items()}), file=sys.stderr, flush=True)
    profile = profile_by_op(onnx.load(str(ganlite._registry.resolve(name))), batch=1000)
    return rows, profile, flops


def latency(name: str, calls: int) -> dict:
    """Batch 1, one image per call: p50 and p99 milliseconds, interleaved per call."""
    import keras

    gens = {"ganlite float32": ganlite.load(name, device="cpu")}
    if f"{name}-int8" in ganlite.list_models():
        gens["ganlite int8"] = ganlite.load(f"{name}-int8", device="cpu")
    model = keras.models.load_model(ROOT / "artifacts" / f"{name}.keras")
    g = gens["ganlite float32"]
    z, labels = draw(0, 0, 1, g.latent_dim, g.num_classes if g.conditional else 0)
    keras_in = [z, labels.astype(np.int32)] if g.conditional else z
    fns = {k: (lambda gen=gen: gen.generate(1, seed=0)) for k, gen in gens.items()}
    fns["Keras predict"] = lambda: model.predict(keras_in, batch_size=1, verbose=0)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for i in range(calls):
        for k, fn in fns.items():
            if k == "Keras predict" and i >= max(calls // 5, 50):
                continue        # ~40 ms a call: fewer samples keep the run short
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: {"p50_ms": float(np.percentile(t, 50) * 1e3),
                "p99_ms": float(np.percentile(t, 99) * 1e3), "calls": len(t)}
            for k, t in times.items()}


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

    return {"cpu": cpu(), "cores": os.cpu_count(),
            **versions("numpy", "onnxruntime", "tensorflow", "keras", "ganlite", "openvino")}


def _targets(report: dict) -> list[dict]:
    rows = {r["batch"]: r for r in report["throughput"]}
    big = rows[10_000]
    targets = [
        ("float32 ganlite / Keras predict, batch 1,000",
         rows[1000]["ganlite float32"] / rows[1000]["Keras predict"], ">=", 1.0),
        ("float32 ganlite / Keras predict, batch 10,000",
         big["ganlite float32"] / big["Keras predict"], ">=", 1.0),
        ("float32 ganlite at batch 10,000 / GEMM ceiling",
         big["ganlite float32"] / big["ceiling"], ">=", 0.70),
    ]
    lat = report.get("latency", {})
    if "ganlite float32" in lat and "Keras predict" in lat:
        # Batch 1 is about latency: per-image p50, each call timed alone (the batch-1 row of
        # the table interleaves the GEMM too, whose 48 MB evict the model's weights).
        targets.append(("batch 1 latency p50: Keras predict / float32 ganlite",
                        lat["Keras predict"]["p50_ms"] / lat["ganlite float32"]["p50_ms"],
                        ">=", 100))
    if "ganlite int8" in big:
        targets.insert(2, ("int8 ganlite / Keras predict, batch 10,000",
                           big["ganlite int8"] / big["Keras predict"], ">=", 2.0))
    if "OpenVINO bf16" in big:
        targets.append(("OpenVINO bf16 / Keras predict, batch 10,000",
                        big["OpenVINO bf16"] / big["Keras predict"], ">=", 2.0))
    if "million" in report:
        m = report["million"]
        targets.append((f"{m['n']:,} PNGs: rate / the same run as npy",
                        m["png"]["images_per_s"] / m["npy"]["images_per_s"], ">=", 0.8))
        targets.append((f"{m['n']:,} PNGs: peak RSS MB", m["png"]["peak_rss_mb"], "<=", 300))
    if "cold_start" in report:
        targets.append(("cold start ganlite / TensorFlow script",
                        report["cold_start"]["ganlite_s"] / report["cold_start"]["tensorflow_s"],
                        "<=", 0.2))
    if "footprint" in report:
        targets.append(("runtime venv / TensorFlow venv", report["footprint"]["runtime_mb"]
                        / report["footprint"]["tensorflow_mb"], "<=", 0.2))
    return [{"target": t, "measured": round(v, 3), "bound": f"{op} {b}",
             "met": bool(v >= b if op == ">=" else v <= b)} for t, v, op, b in targets]


def markdown(report: dict) -> str:
    rows = report["throughput"]
    columns = [k for k in rows[0] if k not in ("batch", "rounds", "ceiling")]
    lines = [f"Measured by `bench/speed.py` on {report['machine']['cpu']}; onnxruntime "
             f"{report['machine'].get('onnxruntime')}, TensorFlow "
             f"{report['machine'].get('tensorflow')}, OpenVINO "
             f"{report['machine'].get('openvino') or 'absent'}; model `{report['model']}`, "
             f"{report['flops_per_image'] / 1e6:.1f} MFLOP per image. Images/s, best of "
             f"interleaved rounds (the machine is shared: read the ratios).", "",
             "| batch | " + " | ".join(columns) + " | GEMM ceiling | float32 / Keras | "
             "float32, % of ceiling |", "|---" * (len(columns) + 4) + "|"]
    for r in rows:
        lines.append(f"| {r['batch']:,} | " + " | ".join(f"{r[c]:,.0f}" for c in columns)
                     + f" | {r['ceiling']:,.0f} | {r['ganlite float32'] / r['Keras predict']:.2f}x"
                     f" | {100 * r['ganlite float32'] / r['ceiling']:.0f} % |")
    lat = report["latency"]
    lines += ["", "Batch 1 latency per image (ms): " + "; ".join(
        f"{k} p50 {v['p50_ms']:.2f}, p99 {v['p99_ms']:.2f}" for k, v in lat.items()) + ".", ""]
    prof = report["profile_ms"]
    total = sum(prof.values())
    lines += [f"Kernel time by op type of the shipped `{report['model']}`, batch 1,000 "
              f"(onnxruntime profiler, per node the minimum of 5 runs): " + ", ".join(
                  f"{op} {ms:.1f} ms ({100 * ms / total:.0f} %)" for op, ms in
                  sorted(prof.items(), key=lambda kv: -kv[1]) if ms >= 0.5)
              + f"; total {total:.1f} ms.", ""]
    if "million" in report:
        m = report["million"]
        lines += [f"{m['n']:,} images written by `ganlite generate`: " + "; ".join(
            f"{fmt} {m[fmt]['wall_s']} s, {m[fmt]['images_per_s']:,} images/s, peak RSS "
            f"{m[fmt]['peak_rss_mb']} MB" for fmt in ("png", "npy")) + ".", ""]
    lines += ["| target | measured | bound | met |", "|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {t['bound']} | "
              f"{'yes' if t['met'] else '**no**'} |" for t in report["targets"]]
    return "\n".join(lines) + "\n"


def update_readme(text: str) -> None:
    readme = ROOT / "README.md"
    start, end = "<!-- bench:speed -->", "<!-- /bench:speed -->"
    content = readme.read_text()
    if start not in content or end not in content:
        raise SystemExit(f"README.md has no {start} ... {end} markers")
    head, rest = content.split(start, 1)
    readme.write_text(head + start + "\n" + text + end + rest.split(end, 1)[1])


def publish(report: dict, out: Path, readme: bool) -> None:
    """Targets judged, then SPEED.json, SPEED.md, stdout (and README) written."""
    report["targets"] = _targets(report)
    text = markdown(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(text)
    print(text)
    if readme:
        update_readme(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=ganlite.DEFAULT_MODEL)
    parser.add_argument("--ganlite", default=str(ROOT / ".venv-runtime" / "bin" / "ganlite"),
                        help="the ganlite console script of a runtime-only environment")
    parser.add_argument("--million", type=int, default=1_000_000,
                        help="images for the PNG / npy writing test (0 = skip)")
    parser.add_argument("--footprint", action="store_true",
                        help="also cold start and venv sizes (builds two venvs)")
    parser.add_argument("--seconds", type=float, default=40,
                        help="timing budget per batch size")
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--readme", action="store_true", help="write the table into README")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "speed.json")
    parser.add_argument("--render", type=Path, metavar="SPEED_JSON",
                        help="only re-render speed.md (and README with --readme) from a report")
    args = parser.parse_args()

    if args.render:
        publish(json.loads(args.render.read_text()), args.render, args.readme)
        return 0
    print(f"CPU: {cpu()}", file=sys.stderr)
    seconds = 4 if args.quick else args.seconds
    report: dict = {"machine": _versions(), "model": args.model}
    rows, profile, flops = throughput(args.model, seconds)
    report.update(throughput=rows, profile_ms=profile, flops_per_image=flops)
    report["latency"] = latency(args.model, 100 if args.quick else 1000)
    if args.million:
        report["million"] = million(args.ganlite, args.model, args.million)
    if args.footprint:
        keras_path = ROOT / "artifacts" / f"{args.model}.keras"
        report["cold_start"] = cold_start(args.ganlite, keras_path, args.model, 5)
        report["footprint"] = footprint(ROOT / "requirements-train.txt")
    report["machine"]["cpu_after"] = cpu()
    publish(report, args.out, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
