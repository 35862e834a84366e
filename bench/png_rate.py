"""How fast `ganlite generate` writes PNG files, against the same run as `--format npy`.

    PYTHONPATH=. /work/venv-rt/bin/python bench/png_rate.py            # 1,000,000 images
    PYTHONPATH=. /work/venv-rt/bin/python bench/png_rate.py --quick    # 20,000, ~3 minutes

Runs, on the machine it runs on (printing its CPU model, AVX-512/VNNI/AMX flags and the
load average, which on a shared machine moves every figure):
  1. the CLI itself, `python -m ganlite generate --n N --out DIR [--format npy]`, as fresh
     processes, png and npy interleaved (--order, default npy, png, npy): wall time,
     images/s, user and system CPU seconds and peak RSS of each process (GNU time), files
     written, the load average sampled while it ran;
  2. where the time goes: write_images in this process on --split-n images, with timers
     around inference, PNG encoding and file writing (thread CPU time of each), and the
     time the inference loop waited for the writer thread (0: PNG writing is hidden);
  3. PNG encoders on the model's images: Pillow against ganlite._png at zlib levels 0-9,
     CPU time per image and bytes per file;
  4. ways of writing one small file atomically, interleaved, in folders that grow:
     ganlite.files.atomic_write_bytes, FolderFiles (O_TMPFILE + link, and its
     temporary + rename fallback), and a plain non-atomic create as the floor;
  5. with --py-spy (if py-spy is installed): a sampled profile of one CLI png run,
     summed by what each sample was doing.

Nothing written is deleted before the end: on ext4 without a journal (as here) creating a
file skips every inode freed in the last 1-5 minutes (ext4's recently_deleted(), seen with
perf), so a run that follows the deletion of a large folder creates files several times
slower. Deleting the output between runs would measure that, not ganlite. Needs
N x 4 KB of free space (4.1 GB at 1,000,000).

Writes bench/results/png_rate.json and bench/results/png_rate.md. The target (issue 11):
PNG images/s >= 0.8x the npy run's, peak RSS < 300 MB, at 1,000,000 images.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ganlite  # noqa: E402
from ganlite import _files, _png, _writer  # noqa: E402

RESULTS = ROOT / "bench" / "results"


# -- the machine -----------------------------------------------------------------------
def machine() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    import onnxruntime
    import PIL
    return {"cpu": model, "cores": os.cpu_count(),
            "avx2": "avx2" in flags,
            "avx512_vnni_amx_flags": sorted(f for f in flags
                                            if any(k in f for k in ("avx512", "vnni", "amx"))),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__,
            "zlib": zlib.ZLIB_RUNTIME_VERSION, "kernel": platform.release()}


def file_system(folder: Path) -> str:
    """The mount (type and options) holding `folder`."""
    best = ("?", "?", "")
    for line in Path("/proc/mounts").read_text().splitlines():
        dev, mnt, kind, opts = line.split()[:4]
        if str(folder.resolve()).startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best[1]):
            best = (kind, mnt, opts)
    return f"{best[0]} on {best[1]} ({best[2]})"


def load() -> float:
    return round(os.getloadavg()[0], 2)


# -- 1. the CLI, interleaved -------------------------------------------------------------
def cli_run(fmt: str, n: int, out: Path, model: str, batch_size: int) -> dict:
    """One fresh `python -m ganlite generate` process under GNU time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-m", "ganlite", "generate",
           "--n", str(n), "--out", str(out), "--format", fmt, "--model", model,
           "--batch-size", str(batch_size), "-q"]
    before = load()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    loads = []
    while True:  # the load average every 5 s: what else ran while this one did
        try:
            _, err = proc.communicate(timeout=5)
            break
        except subprocess.TimeoutExpired:
            loads.append(load())
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed: {err[-800:]}")
    wall, user, system, rss_kb = err.strip().splitlines()[-1].split()
    with os.scandir(out) as entries:
        names = [e.name for e in entries]
    files = sum(1 for name in names if name.endswith((".png", ".npy")))
    debris = sum(1 for name in names if name.endswith(".tmp"))
    row = {"format": fmt, "n": n, "wall_s": float(wall), "user_s": float(user),
           "sys_s": float(system), "peak_rss_mb": round(int(rss_kb) / 1024, 1),
           "images_per_s": round(n / float(wall)), "files": files, "debris": debris,
           "load_before": before, "load_after": load(),
           "load_mean": round(statistics.mean(loads), 2) if loads else before}
    row["cpu_us_per_image"] = round((row["user_s"] + row["sys_s"]) / n * 1e6, 1)
    return row


def interleaved(n: int, order: list[str], tmp: Path, model: str, batch_size: int) -> dict:
    """The CLI runs in `order` (e.g. png, npy, npy, png or npy, png, npy). Each png run is
    compared with the npy runs next to it (their mean when on both sides), so that a load
    that drifts during the bench cancels out as far as it is linear."""
    rows = []
    for i, fmt in enumerate(order):
        row = cli_run(fmt, n, tmp / f"{fmt}-{i}", model, batch_size)
        row["run"] = i
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    ratios = []
    for i, row in enumerate(rows):
        if row["format"] != "png":
            continue
        near = [rows[j]["wall_s"] for j in (i - 1, i + 1)
                if 0 <= j < len(rows) and rows[j]["format"] == "npy"]
        if near:
            ratios.append(round(statistics.mean(near) / row["wall_s"], 3))
    mean_wall = {fmt: statistics.mean(r["wall_s"] for r in rows if r["format"] == fmt)
                 for fmt in ("png", "npy")}
    return {"runs": rows, "ratio_by_png_run": ratios,
            "ratio": round(mean_wall["npy"] / mean_wall["png"], 3),
            "peak_rss_mb": {fmt: max(r["peak_rss_mb"] for r in rows if r["format"] == fmt)
                            for fmt in ("png", "npy")}}


# -- 2. where the time goes --------------------------------------------------------------
class Timers:
    """Sums of wall and thread-CPU seconds by name, from any thread."""

    def __init__(self) -> None:
        self.wall: Counter[str] = Counter()
        self.cpu: Counter[str] = Counter()
        self.lock = threading.Lock()

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                dw, dc = time.perf_counter() - w, time.thread_time() - c
                with self.lock:
                    self.wall[name] += dw
                    self.cpu[name] += dc
        return timed


def split(generator, n: int, out: Path, fmt: str, batch_size: int, workers: int) -> dict:
    """write_images in this process with timers around its parts."""
    timers = Timers()
    saved = (generator._run, _png.encode_gray, _writer._write_pngs, _writer._Run._finish,
             _writer._NpyFile.append, _files.FolderFiles.write)
    generator._run = timers.wrap("inference", generator._run)
    _png.encode_gray = timers.wrap("encode", _png.encode_gray)
    _writer._write_pngs = timers.wrap("writer thread", _writer._write_pngs)
    _writer._Run._finish = timers.wrap("waiting for the writer", _writer._Run._finish)
    _writer._NpyFile.append = timers.wrap("file writes", _writer._NpyFile.append)
    _files.FolderFiles.write = timers.wrap("file writes", _files.FolderFiles.write)
    try:
        t0, c0 = time.perf_counter(), os.times()
        ganlite.write_images(generator, n, out, seed=0, batch_size=batch_size, fmt=fmt,
                             workers=workers)
        wall, c1 = time.perf_counter() - t0, os.times()
    finally:
        (generator._run, _png.encode_gray, _writer._write_pngs, _writer._Run._finish,
         _writer._NpyFile.append, _files.FolderFiles.write) = saved

    def us(seconds: float) -> float:
        return round(seconds / n * 1e6, 1)
    parts = {name: {"wall_us": us(timers.wall[name]), "thread_cpu_us": us(timers.cpu[name])}
             for name in sorted(timers.wall)}
    return {"format": fmt, "n": n, "workers": workers, "wall_s": round(wall, 2),
            "images_per_s": round(n / wall), "user_us": us(c1.user - c0.user),
            "sys_us": us(c1.system - c0.system), "wall_us": us(wall), "parts": parts,
            "load": load()}


# -- 3. encoders ---------------------------------------------------------------------------
def encoders(images: np.ndarray, repeats: int = 3) -> list[dict]:
    from PIL import Image

    def pillow(level):
        def encode(batch):
            out = []
            for image in batch:
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, format="PNG", compress_level=level)
                out.append(buf.getvalue())
            return out
        return encode

    cases = [("Pillow, compress_level 1 (the writer before)", pillow(1)),
             ("Pillow, compress_level 6", pillow(6))]
    cases += [(f"ganlite._png, zlib level {level}",
               lambda b, level=level: _png.encode_gray(b, level))
              for level in (0, 1, 2, 3, 6, 9)]
    rows = []
    for name, encode in cases:
        best = float("inf")
        for _ in range(repeats):
            c = time.thread_time()
            files = encode(images)
            best = min(best, time.thread_time() - c)
        for data, image in zip(files[:200], images[:200], strict=True):
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image), name
        rows.append({"encoder": name, "cpu_us_per_image": round(best / len(images) * 1e6, 1),
                     "mean_bytes": round(float(np.mean([len(f) for f in files])), 1),
                     "max_bytes": max(len(f) for f in files)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


# -- 4. ways of writing a small file -------------------------------------------------------
def fs_strategies(files_per_round: int, rounds: int, tmp: Path, data: bytes) -> list[dict]:
    def plain(folder, dfd, files, name):
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666, dir_fd=dfd)
        os.write(fd, data)
        os.close(fd)

    def atomic(folder, dfd, files, name):
        _files.atomic_write_bytes(folder / name, data)

    def linked(folder, dfd, files, name):
        files.write(name, data)

    def renamed(folder, dfd, files, name):
        files._write_renamed(name, data)

    cases = {"plain create, not atomic (floor)": plain,
             "files.atomic_write_bytes (the writer before)": atomic,
             "FolderFiles: O_TMPFILE + link": linked,
             "FolderFiles: temporary + rename (fallback)": renamed}
    state = {}
    for i, name in enumerate(cases):
        folder = tmp / f"fs{i}"
        folder.mkdir()
        files = _files.FolderFiles(folder)
        assert files.uses_tmpfile or name != "FolderFiles: O_TMPFILE + link"
        state[name] = (folder, os.open(folder, os.O_RDONLY), files, [], [])
    names = list(cases)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            folder, dfd, files, cpu, wall = state[name]
            w, c = time.perf_counter(), time.thread_time()
            for k in range(r * files_per_round, (r + 1) * files_per_round):
                cases[name](folder, dfd, files, f"{k:07d}.png")
            cpu.append((time.thread_time() - c) / files_per_round * 1e6)
            wall.append((time.perf_counter() - w) / files_per_round * 1e6)
    rows = []
    for name in names:
        folder, dfd, files, cpu, wall = state[name]
        files.close()
        os.close(dfd)
        rows.append({"how": name, "cpu_us_median": round(statistics.median(cpu), 1),
                     "cpu_us_min": round(min(cpu), 1),
                     "wall_us_median": round(statistics.median(wall), 1),
                     "files_in_folder_at_end": rounds * files_per_round})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


# -- 5. py-spy -------------------------------------------------------------------------------
def _category(stack: str) -> str:
    leaf = stack.rsplit(";", 1)[-1]
    checks = [("onnxruntime run (inference)", ("run_checked", "InferenceSession.run")),
              ("zlib (PNG encoding)", ("encode_gray",)),
              ("file writes (open, write, link, rename, close)", ("FolderFiles.",
                                                                 "atomic_write")),
              ("latents", ("draw ", "_block ")),
              ("file names", ("file_name",)),
              ("waiting (writer or queue)", ("_finish", "wait (threading", "_worker ")),
              ("start-up (imports, model load, folder check)", ("<module>", "load (",
                                                                 "prepare ", "_find_and_load",
                                                                 "open_session"))]
    for name, keys in checks:
        if any(k in stack for k in keys):
            return name
    return "other: " + leaf.split(" (")[0]


def py_spy(n: int, tmp: Path, model: str, batch_size: int) -> dict | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return None
    raw = tmp / "spy.txt"
    out = tmp / "spy-png"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([exe, "record", "--format", "raw", "--threads", "--rate", "200",
                           "-o", str(raw), "--", sys.executable, "-m", "ganlite", "generate",
                           "--n", str(n), "--out", str(out), "--model", model,
                           "--batch-size", str(batch_size), "-q"],
                          env=env, capture_output=True, text=True)
    if proc.returncode or not raw.exists():
        return {"error": proc.stderr[-500:]}
    by_thread: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread = "writer thread" if "ThreadPoolExecutor" in stack or "_worker" in stack \
            else "main thread"
        by_thread.setdefault(thread, Counter())[_category(stack)] += int(count)
    return {thread: {"samples": sum(c.values()),
                     "share": {k: round(v / sum(c.values()), 3) for k, v in c.most_common()}}
            for thread, c in by_thread.items()}


# -- report ----------------------------------------------------------------------------------
def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# PNG writing rate against `--format npy`: {report['n']:,} images",
             "",
             f"`{report['command']}`",
             "",
             f"Machine: {m['cpu']}, {m['cores']} cores, "
             f"{'AVX2' if m['avx2'] else 'no AVX2'}, AVX-512/VNNI/AMX flags: "
             f"{' '.join(m['avx512_vnni_amx_flags']) or 'none'}; Python {m['python']}, "
             f"onnxruntime {m['onnxruntime']}, Pillow {m['pillow']}, zlib {m['zlib']}, "
             f"kernel {m['kernel']}; output on {report['file_system']}. Load average "
             f"{report['load_start']} at the start, {report['load_end']} at the end (other "
             f"users' jobs share the cores: only ratios from one interleaved run compare).",
             ""]
    cli = report.get("cli")
    if cli:
        lines += ["## The CLI, png and npy interleaved",
                  "",
                  "| run | format | wall s | images/s | user s | sys s | CPU us/image | "
                  "peak RSS MB | files | debris | load before / mean / after |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in cli["runs"]:
            lines.append(f"| {r['run']} | {r['format']} | {r['wall_s']:,.1f} | "
                         f"{r['images_per_s']:,} | {r['user_s']:,.1f} | {r['sys_s']:,.1f} | "
                         f"{r['cpu_us_per_image']} | {r['peak_rss_mb']} | {r['files']:,} | "
                         f"{r['debris']} | {r['load_before']} / {r['load_mean']} / "
                         f"{r['load_after']} |")
        met = cli["ratio"] >= 0.8 and cli["peak_rss_mb"]["png"] < 300
        lines += ["",
                  f"**PNG rate / npy rate: {cli['ratio']:.2f}** (mean wall times; each png run "
                  f"against the npy runs beside it: "
                  f"{', '.join(f'{x:.2f}' for x in cli['ratio_by_png_run'])}); peak RSS png "
                  f"{cli['peak_rss_mb']['png']} MB, npy {cli['peak_rss_mb']['npy']} MB. "
                  f"Target >= 0.8x and < 300 MB: {'met' if met else '**not met**'}.",
                  ""]
    if report.get("split"):
        lines += ["## Where the time goes (write_images in one process, microseconds per "
                  "image)",
                  "",
                  "Wall time of each part, and the CPU time of the thread that ran it "
                  "(`thread_cpu`); process user/sys include onnxruntime's own threads. "
                  "\"waiting for the writer\" is time the inference loop stood still because "
                  "the writer thread was behind: zero means PNG writing is hidden behind "
                  "inference.",
                  "",
                  "| run | images/s | wall | process user | process sys | part | part wall | "
                  "part thread CPU |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in report["split"]:
            first = True
            for part, v in s["parts"].items():
                head = (f"| {s['format']}, {s['workers']} writer thread(s), {s['n']:,} images "
                        f"| {s['images_per_s']:,} | {s['wall_us']} | {s['user_us']} | "
                        f"{s['sys_us']} " if first else "| | | | | ")
                lines.append(f"{head}| {part} | {v['wall_us']} | {v['thread_cpu_us']} |")
                first = False
        lines.append("")
    if report.get("py_spy"):
        lines += ["## Sampled profile of one CLI png run (py-spy, 200 Hz, share of samples "
                  "on CPU)", ""]
        for thread, v in report["py_spy"].items():
            if thread == "error":
                lines.append(f"py-spy failed: {v}")
                continue
            shares = ", ".join(f"{k} {x:.0%}" for k, x in v["share"].items() if x >= 0.01)
            lines.append(f"- {thread} ({v['samples']} samples): {shares}")
        lines.append("")
    if report.get("encoders"):
        lines += ["## PNG encoders on the model's images (one thread)", "",
                  "| encoder | CPU us/image | mean bytes | max bytes |", "|---|---|---|---|"]
        for e in report["encoders"]:
            lines.append(f"| {e['encoder']} | {e['cpu_us_per_image']} | {e['mean_bytes']} | "
                         f"{e['max_bytes']} |")
        lines.append("")
    if report.get("fs"):
        lines += ["## Writing one ~300-byte file (interleaved rounds, folders growing to "
                  f"{report['fs'][0]['files_in_folder_at_end']:,} files)", "",
                  "| how | CPU us/file, median | min | wall us/file, median |",
                  "|---|---|---|---|"]
        for f in report["fs"]:
            lines.append(f"| {f['how']} | {f['cpu_us_median']} | {f['cpu_us_min']} | "
                         f"{f['wall_us_median']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="images per CLI run")
    parser.add_argument("--order", default="npy,png,npy",
                        help="the CLI runs, in order (png brackets npy or the reverse)")
    parser.add_argument("--split-n", type=int, default=20_000,
                        help="images of the in-process timing runs (0: skip)")
    parser.add_argument("--model", default=ganlite.DEFAULT_MODEL)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the output folders go (a temporary folder in it)")
    parser.add_argument("--quick", action="store_true",
                        help="--n 20000 --order png,npy,npy,png,png,npy --split-n 10000, "
                             "small micro-benchmarks")
    parser.add_argument("--skip-cli", action="store_true", help="only parts 2-5")
    parser.add_argument("--py-spy", action="store_true", help="profile one png run")
    parser.add_argument("--out", type=Path, default=RESULTS / "png_rate",
                        help="results, without suffix (.json and .md are written)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.order, args.split_n = 20_000, "png,npy,npy,png,png,npy", 10_000
    order = args.order.split(",")
    if not set(order) <= {"png", "npy"} or not {"png", "npy"} <= set(order):
        parser.error("--order takes png and npy, each at least once")
    report: dict = {"command": "PYTHONPATH=. python bench/png_rate.py " + " ".join(sys.argv[1:]),
                    "n": args.n, "machine": machine(), "load_start": load()}
    print(json.dumps(report["machine"]), "load", report["load_start"], file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="png-rate-") as tmp_name:
        tmp = Path(tmp_name)
        report["file_system"] = file_system(tmp)
        # The CLI runs first, on a file system this bench has not yet deleted from.
        if not args.skip_cli:
            report["cli"] = interleaved(args.n, order, tmp, args.model, args.batch_size)
        generator = ganlite.load(args.model)
        if args.split_n:
            report["split"] = [split(generator, args.split_n, tmp / f"split{i}", fmt,
                                     args.batch_size, w)
                               for i, (fmt, w) in enumerate((("npy", 1), ("png", 1), ("png", 2),
                                                             ("npy", 1), ("png", 1)))]
            for s in report["split"]:
                print(json.dumps(s), file=sys.stderr, flush=True)
        if args.py_spy:
            report["py_spy"] = py_spy(args.split_n or 10_000, tmp, args.model, args.batch_size)
        images = generator.generate(2_000 if args.quick else 10_000, seed=0)
        report["encoders"] = encoders(images)
        per_round, rounds = (500, 10) if args.quick else (1_000, 20)
        report["fs"] = fs_strategies(per_round, rounds, tmp, _png.encode_gray(images[:1])[0])
        print("removing the output folders", file=sys.stderr, flush=True)
    report["load_end"] = load()
    text = markdown(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
