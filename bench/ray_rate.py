"""The Ray path (`ganlite generate --engine ray`) against the single process, on this
machine, and the figures behind the 100-node estimate.

    PYTHONPATH=. .venv-ray/bin/python bench/ray_rate.py              # ~25 minutes on 2 cores
    PYTHONPATH=. .venv-ray/bin/python bench/ray_rate.py --quick      # small n, a smoke run

Needs the ray extra (`pip install '.[ray]'`). Prints the CPU model, its AVX-512/VNNI/AMX
flags and the load average (a shared machine moves every figure: read the ratios, which
come from one interleaved run). Measures:
  1. cold: the CLI as fresh processes, `generate --format npy` (local) against
     `generate --engine ray --format npy` (a new local Ray instance, its start included),
     once each, N images;
  2. warm: the same commands against a Ray instance that is already running (this
     process's, passed as RAY_ADDRESS), interleaved with the local run --rounds times,
     npy and parquet at N, PNG at --png-n: what a running cluster adds per image;
  3. Ray's own costs on the warm instance, without inference: a no-op actor class that
     returns 784-byte images (the object-store traffic of an image): at Ray batches of
     4,096 over N and N/4 rows (the difference: Ray's cost per image; the rest: a job's
     fixed cost), and at batches of 64 over N rows (the difference from 4,096: the cost
     per Ray batch, i.e. one actor call and its scheduling);
  4. the bytes per image of each output format (from the runs' folders).
Writes bench/results/ray.json and the measured part of bench/results/ray.md (the
estimate that follows it there is computed from these figures by estimate()).
"""
from __future__ import annotations

import argparse
import json
import logging
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
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu, load_average  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# bench/results/speed.md, batch 10,000, 2 cores: images/s of onnxruntime alone.
SPEED_MD = {"float32": 3462, "int8": 5092}


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_cli(args: list[str], out: Path, env: dict | None = None) -> dict:
    """One `python -m ganlite generate` process: wall seconds, images/s, output bytes."""
    command = [sys.executable, "-m", "ganlite", "generate", *args, "--out", str(out), "-q"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if not environment.get("RAY_ADDRESS"):
        environment.pop("RAY_ADDRESS", None)   # a new local instance
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()}")
    n = int(args[args.index("--n") + 1])
    return {"wall_s": round(wall, 2), "images_per_s": round(n / wall, 1),
            "bytes": _folder_bytes(out), "load": load_average()}


def interleaved(variants: dict[str, list[str]], n: int, rounds: int, scratch: Path,
                env: dict[str, dict]) -> dict[str, list[dict]]:
    """Every variant once per round, in turn; outputs kept until the end (deleting a
    large folder slows the next run's file creation on this ext4)."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, args in variants.items():
            out = scratch / f"{name}-{r}"
            result = run_cli(["--n", str(n), *args], out, env.get(name))
            runs[name].append(result)
            print(f"  round {r + 1} {name:<12} {result['wall_s']:>8.1f} s "
                  f"{result['images_per_s']:>9,.0f} images/s  load {result['load']}",
                  flush=True)
    return runs


class _NoOp:
    """The data plane without inference: 784-byte images for the rows it is given."""

    def __call__(self, batch: dict) -> dict:
        ids = batch["id"]
        return {"index": ids, "label": ids % 10,
                "image": np.zeros((len(ids), 28, 28), np.uint8)}


def ray_costs(n: int, scratch: Path) -> dict:
    """Seconds per image and per Ray batch of Ray Data alone (warm instance): range ->
    actor pool -> write_numpy-like sink, at two batch sizes."""
    import ray
    import ray.data

    import ganlite.ray as gray

    times = {}
    for rows, batch in ((n, 4096), (n // 4, 4096), (n, 64)):
        dataset = ray.data.range(rows).map_batches(
            _NoOp, batch_size=batch, num_cpus=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=os.cpu_count()))
        out = scratch / f"noop-{rows}-{batch}"
        started = time.perf_counter()
        dataset.write_datasink(gray._NpyDatasink(str(out), dataset_uuid=dataset._uuid))
        times[rows, batch] = time.perf_counter() - started
        print(f"  no-op actor, {rows:>8,} rows in Ray batches of {batch:>5}: "
              f"{times[rows, batch]:.1f} s", flush=True)
    per_image = (times[n, 4096] - times[n // 4, 4096]) / (n - n // 4)
    fixed = times[n, 4096] - per_image * n
    per_batch = (times[n, 64] - times[n, 4096]) / (-(-n // 64) - -(-n // 4096))
    return {"seconds": {f"{r} rows, batch {b}": round(t, 2) for (r, b), t in times.items()},
            "per_image_us": round(per_image * 1e6, 2), "job_fixed_s": round(fixed, 2),
            "per_batch_ms": round(per_batch * 1e3, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="images of the npy runs")
    parser.add_argument("--png-n", type=int, default=20_000, help="images of the PNG runs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="n 20,000, png 2,000, 1 round")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.quick:
        args.n, args.png_n, args.rounds = 20_000, 2_000, 1
    import ray

    machine = cpu()
    print(machine, flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="ray-rate-", dir=ROOT / "runs"
                                    if (ROOT / "runs").is_dir() else None))
    report: dict = {"machine": machine, "ray": ray.__version__, "n": args.n,
                    "png_n": args.png_n, "rounds": args.rounds}
    try:
        no_cluster = {"RAY_ADDRESS": ""}
        print(f"cold: fresh processes, a new Ray instance for the Ray run; {args.n:,} "
              f"images npy", flush=True)
        report["cold_npy"] = interleaved(
            {"local": ["--format", "npy"], "ray": ["--engine", "ray", "--format", "npy"]},
            args.n, 1, scratch, {"ray": no_cluster})

        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        report["ray_init_s"] = round(time.perf_counter() - started, 1)
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        address = {"RAY_ADDRESS": ray.get_runtime_context().gcs_address}
        print(f"warm: Ray already running (ray.init took {report['ray_init_s']} s here)",
              flush=True)
        report["warm_npy"] = interleaved(
            {"local-w": ["--format", "npy"],
             "ray-w": ["--engine", "ray", "--format", "npy"],
             "ray-w-pq": ["--engine", "ray", "--format", "parquet"]},
            args.n, args.rounds, scratch, {"ray-w": address, "ray-w-pq": address})
        report["warm_png"] = interleaved(
            {"local-w-png": [], "ray-w-png": ["--engine", "ray"]},
            args.png_n, args.rounds, scratch, {"ray-w-png": address})
        print("Ray Data alone (no inference), warm", flush=True)
        report["ray_costs"] = ray_costs(args.n, scratch)
        ray.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["summary"] = summarize(report)
    print(json.dumps(report["summary"], indent=1))
    if not args.no_write:
        (RESULTS / "ray.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {RESULTS / 'ray.json'}; bench/results/ray.md quotes it")


def summarize(report: dict) -> dict:
    def best(runs: list[dict]) -> float:
        return max(r["images_per_s"] for r in runs)

    def median_wall(runs: list[dict]) -> float:
        return statistics.median(r["wall_s"] for r in runs)

    cold = report["cold_npy"]
    warm, warm_png = report["warm_npy"], report["warm_png"]
    n = report["n"]
    out = {
        "cold_npy_ray_over_local": round(best(cold["ray"]) / best(cold["local"]), 3),
        "warm_npy_ray_over_local": round(best(warm["ray-w"]) / best(warm["local-w"]), 3),
        "warm_parquet_ray_over_local": round(best(warm["ray-w-pq"]) / best(warm["local-w"]), 3),
        "warm_png_ray_over_local": round(best(warm_png["ray-w-png"])
                                         / best(warm_png["local-w-png"]), 3),
        # The cold run's extra seconds over the warm one: starting a Ray instance.
        "ray_start_s": round(median_wall(cold["ray"]) - median_wall(warm["ray-w"]), 1),
        "bytes_per_image": {
            "local npy": round(cold["local"][0]["bytes"] / n, 1),
            "ray npy": round(cold["ray"][0]["bytes"] / n, 1),
            "ray parquet": round(warm["ray-w-pq"][0]["bytes"] / n, 1),
            "png (files, not blocks)": round(warm_png["ray-w-png"][0]["bytes"]
                                             / report["png_n"], 1)},
        "images_per_s": {name: best(runs) for group in (cold, warm, warm_png)
                         for name, runs in group.items()},
    }
    return out


if __name__ == "__main__":
    main()
