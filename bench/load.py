"""Load test of `ganlite serve` with a real load generator (wrk), on loopback only.

    PYTHONPATH=. /path/to/venv/bin/python bench/load.py [--duration 30] [--quick]

Needs the serve extra in the interpreter that runs it (`pip install '.[serve]'`) and
Debian's wrk (`apt-get install wrk`). For n = 1 and n = 64 images per request: the Python
API's rate in this process (Generator.generate(n) in a loop, the ceiling a server works
towards), then wrk for --duration seconds at 1, 8 and 64 connections against a server with
dynamic batching off and one with it on (runs interleaved, so both see the same machine).
Every request has its own seed (a wrk Lua script), format=npy. Any error or non-200 answer
fails the run.

Per run (a fresh server each): requests/s, images/s, p50/p99 latency (wrk's), images per
onnxruntime call (the batcher's own count), the server's CPU split between its event loop
(the main thread: HTTP, routing, validation, encoding) and the rest (onnxruntime, the
batcher, worker threads), and the server's peak RSS (VmHWM). Extra rows (not --quick; half
as long each), the choices `ganlite serve` made, each against its alternative: sleeping
vs spinning onnxruntime threads, two batcher workers vs one, no merge wait vs 2 ms; and
format=png. Prints the CPU model, its AVX-512/VNNI/AMX flags and the load average, and
writes bench/results/load.json and bench/results/load.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu, load_average  # noqa: E402

import ganlite  # noqa: E402

OUT = ROOT / "bench" / "results"
TICKS = os.sysconf("SC_CLK_TCK")

# wrk: a new seed per request; at the end one JSON line with the figures this bench uses.
LUA = r"""
local counter = 0
local thread_id = 0
local threads = {}
setup = function(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end
init = function(args)
  path = args[1]
end
request = function()
  counter = counter + 1
  return wrk.format("GET", path .. "&seed=" .. (id * 1000000000 + counter))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nWRK-JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""

# Servers with one of `ganlite serve`'s choices undone, for the rows that justify them:
# onnxruntime's default (spinning) session threads; one batcher worker instead of two.
PATCHES = {
    "spinning threads": "import ganlite._server as s; s._sleep_when_idle = lambda g, b: None",
    "1 worker": "import functools, ganlite._batcher as b, ganlite._server as s; "
                "s.Batcher = functools.partial(b.Batcher, workers=1)",
}
MAIN = "import sys; from ganlite.cli import main; sys.argv[0] = 'ganlite'; main()"


def versions(python: str) -> dict:
    code = ("import json, importlib.util as u, importlib.metadata as m, sys, platform;"
            "v = lambda p: m.version(p) if u.find_spec(p) else None;"
            "print(json.dumps({'python': platform.python_version(),"
            "'onnxruntime': v('onnxruntime'), 'starlette': v('starlette'),"
            "'uvicorn': v('uvicorn'), 'httptools': v('httptools'), 'uvloop': v('uvloop')}))")
    server = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    server["wrk"] = (wrk.stdout + wrk.stderr).split("[")[0].strip()
    server["numpy"] = metadata.version("numpy")
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`ganlite serve` in its own process (no access log: wrk's figures are the log)."""

    def __init__(self, python: str, model: str, *args: str, patch: str | None = None):
        self.port = free_port()
        command = [python, "-c", f"{patch}; {MAIN}"] if patch else [python, "-m", "ganlite"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*command, "serve", "--port", str(self.port), "--model", model,
             "--no-access-log", "--max-n", "64", *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=tempfile.gettempdir())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise SystemExit(f"server did not start: {self.output()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def cpu_seconds(self) -> tuple[float, float]:
        """(main thread, all other threads) CPU seconds so far."""
        main = other = 0.0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / TICKS   # utime + stime
            if task.name == str(self.proc.pid):
                main += seconds
            else:
                other += seconds
        return main, other

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(120) != 0:
            raise SystemExit(f"server exited {self.proc.returncode}: {self.output()}")
        if "Traceback" in self.output():
            raise SystemExit(f"traceback in the server's log: {self.output()}")


def run_wrk(server: Server, n: int, connections: int, seconds: int, lua: Path,
            fmt: str = "npy") -> dict:
    path = f"/v1/generate?n={n}&format={fmt}"
    before = server.cpu_seconds()
    started = time.monotonic()
    done = subprocess.run(["wrk", f"-t{min(2, connections)}", f"-c{connections}",
                           f"-d{seconds}s", "--timeout", "60s", "-s", str(lua),
                           server.url, "--", path],
                          capture_output=True, text=True, timeout=seconds + 120)
    wall = time.monotonic() - started
    after = server.cpu_seconds()
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK-JSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed: {done.stdout}\n{done.stderr}")
    result = json.loads(line[len("WRK-JSON "):])
    errors = sum(result["errors"].values())
    rps = result["requests"] / (result["duration_us"] / 1e6)
    return {"n": n, "connections": connections, "format": fmt, "seconds": seconds,
            "requests": result["requests"], "errors": errors,
            "error_kinds": result["errors"], "requests_per_s": rps,
            "images_per_s": rps * n,
            "p50_ms": result["latency_us"]["p50"] / 1000,
            "p99_ms": result["latency_us"]["p99"] / 1000,
            "loop_cpu": (after[0] - before[0]) / wall,
            "other_cpu": (after[1] - before[1]) / wall,
            "load_average": load_average()}


def measure(python: str, model: str, mode: str, n: int, connections: int, seconds: int,
            lua: Path, fmt: str = "npy") -> dict:
    """One wrk run against a fresh server (so peak RSS and batch sizes are this run's)."""
    args = ["--no-batching"] if mode == "off" else []
    if "wait 2 ms" in mode:
        args += ["--batch-wait-ms", "2"]
    server = Server(python, model, *args,
                    patch=next((code for key, code in PATCHES.items() if key in mode), None))
    try:
        run = {"mode": mode, **run_wrk(server, n, connections, seconds, lua, fmt)}
        run["peak_rss_mb"] = server.peak_rss_mb()
    finally:
        server.stop()
    found = re.search(r"\(([0-9.]+) images per call\)", server.output())
    run["images_per_call"] = float(found.group(1)) if found else float(n)
    print(f"  batching {mode:3} n={n:<3} {fmt} c={connections:<3} "
          f"{run['requests_per_s']:8,.0f} req/s {run['images_per_s']:9,.0f} img/s  "
          f"p50 {run['p50_ms']:7.1f} ms  p99 {run['p99_ms']:7.1f} ms  errors {run['errors']}  "
          f"{run['images_per_call']:5.1f} img/call  loop {run['loop_cpu']:.0%} "
          f"other {run['other_cpu']:.0%}  RSS {run['peak_rss_mb']:.0f} MB  "
          f"load {run['load_average']}", flush=True)
    return run


def api_rate(generator: ganlite.Generator, n: int, seconds: float) -> float:
    """Images/s of Generator.generate(n) called in a loop, a new seed each call."""
    generator.generate(n, seed=0)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        generator.generate(n, seed=calls)
        calls += 1
    return n * calls / (time.perf_counter() - start)


def table(report: dict) -> str:
    rows = ["| batching | n | format | connections | seconds | requests/s | images/s | p50 ms "
            "| p99 ms | errors | images per onnxruntime call | event-loop CPU | other CPU "
            "| peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        rows.append(f"| {r['mode']} | {r['n']} | {r['format']} | {r['connections']} | "
                    f"{r['seconds']} | "
                    f"{r['requests_per_s']:,.0f} | {r['images_per_s']:,.0f} | "
                    f"{r['p50_ms']:,.1f} | {r['p99_ms']:,.1f} | {r['errors']} | "
                    f"{r['images_per_call']:,.1f} | "
                    f"{r['loop_cpu']:.0%}, {r['loop_cpu'] / r['requests_per_s'] * 1e3:.2f} ms/req"
                    f" | {r['other_cpu']:.0%}, "
                    f"{r['other_cpu'] / r['images_per_s'] * 1e3:.2f} ms/image | "
                    f"{r['peak_rss_mb']:,.0f} |")
    api = ", ".join(f"n={n}: {rate:,.0f} images/s ({report['api_start'][n]:,.0f} at the start, "
                    f"{report['api_end'][n]:,.0f} at the end)"
                    for n, rate in report["api"].items())
    lines = ["\n".join(rows), "",
             f"Python API in the same run (`Generator.generate(n)` in a loop, one thread "
             f"calling): {api}."]
    for name, value in report["ratios"].items():
        lines.append(f"- {name}: **{value:.2f}x**")
    return "\n".join(lines)


def write_markdown(report: dict, path: Path) -> None:
    v = report["versions"]
    stack = "httptools + uvloop" if v.get("httptools") and v.get("uvloop") else \
        "h11 + asyncio"
    path.write_text(
        f"# `ganlite serve` under load\n\n`{report['command']}`\n\n"
        f"{report['cpu']}; load average {report['load_average_start']} at the start, "
        f"{report['load_average_end']} at the end (a machine shared with other jobs; "
        f"wrk runs on the same cores). Python {v['python']}, onnxruntime "
        f"{v['onnxruntime']}, Starlette {v['starlette']}, uvicorn {v['uvicorn']} "
        f"({stack}), {v['wrk']}. Model {report['model']}, format=npy unless noted, "
        f"{report['seconds_per_run']} s per run (extra rows: half), a new seed per "
        f"request, a fresh server per run. CPU columns: the server process's CPU time "
        f"during the run over its wall time (100 % = one core), and per request (event "
        f"loop) or per image (the rest: onnxruntime and the worker threads).\n\n"
        f"{table(report)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--n", default="1,64", help="images per request")
    parser.add_argument("--model", default=ganlite.DEFAULT_MODEL)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs the server (default: this one)")
    parser.add_argument("--quick", action="store_true",
                        help="5 s runs, no extra rows, nothing written (a smoke test)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--render", action="store_true",
                        help="only rewrite OUT/load.md from OUT/load.json")
    args = parser.parse_args()
    if args.render:
        write_markdown(json.loads((args.out / "load.json").read_text()), args.out / "load.md")
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    seconds = 5 if args.quick else args.duration
    connections = [int(c) for c in args.connections.split(",")]
    sizes = [int(n) for n in args.n.split(",")]

    report: dict = {"command": "PYTHONPATH=. python bench/load.py " + " ".join(sys.argv[1:]),
                    "cpu": cpu(with_load=False), "load_average_start": load_average(),
                    "platform": platform.platform(), "versions": versions(args.python),
                    "model": args.model, "seconds_per_run": seconds, "api_start": {},
                    "api_end": {}, "api": {}, "runs": []}
    print(report["cpu"], "| load average", report["load_average_start"], flush=True)
    print(json.dumps(report["versions"]), flush=True)
    generator = ganlite.load(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "seeds.lua"
        lua.write_text(LUA)
        for n in sizes:
            report["api_start"][n] = api_rate(generator, n, min(seconds, 10))
            print(f"API n={n}: {report['api_start'][n]:,.0f} images/s", flush=True)
            for c in connections:
                for mode in ("off", "on"):
                    run = measure(args.python, args.model, mode, n, c, seconds, lua)
                    report["runs"].append(run)
        if not args.quick:
            top = max(connections)
            extras = [("on, spinning threads", 1, top, "npy"), ("on, 1 worker", 1, top, "npy"),
                      ("on, 1 worker", 64, top, "npy"), ("on, wait 2 ms", 1, top, "npy"),
                      ("on, wait 2 ms", 1, 8, "npy"), ("on", 64, top, "png")]
            for mode, n, c, fmt in extras:
                report["runs"].append(measure(args.python, args.model, mode, n, c,
                                              max(5, seconds // 2), lua, fmt))

        for n in sizes:     # again at the end: the machine's load drifts during the run
            report["api_end"][n] = api_rate(generator, n, min(seconds, 10))
            report["api"][n] = (report["api_start"][n] + report["api_end"][n]) / 2
            print(f"API n={n}: {report['api_end'][n]:,.0f} images/s", flush=True)

    def rate(mode: str, n: int, c: int, fmt: str = "npy") -> float:
        return next(r["images_per_s"] for r in report["runs"] if (r["mode"], r["n"],
                    r["connections"], r["format"]) == (mode, n, c, fmt))

    top = max(connections)
    report["ratios"] = {}
    for n in sizes:
        report["ratios"][f"batching on / off, {top} connections, n={n}"] = \
            rate("on", n, top) / rate("off", n, top)
    if 1 in sizes and 64 in sizes:
        report["ratios"]["Python API, images/s at n=64 / at n=1"] = \
            report["api"][64] / report["api"][1]
        report["ratios"][f"server, n=1, {top} connections, batching on / Python API n=1"] = \
            rate("on", 1, top) / report["api"][1]
    if not args.quick:
        for mode, n, c in [("on, spinning threads", 1, top), ("on, 1 worker", 1, top),
                           ("on, 1 worker", 64, top), ("on, wait 2 ms", 1, top),
                           ("on, wait 2 ms", 1, 8)]:
            report["ratios"][f"{c} connections, n={n}: batching on (as shipped) / {mode}"] = \
                rate("on", n, c) / rate(mode, n, c)
    report["load_average_end"] = load_average()
    errors = sum(r["errors"] for r in report["runs"])
    text = table(report)
    print(text)
    print(f"load average: start {report['load_average_start']}, end "
          f"{report['load_average_end']}")
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "load.json").write_text(json.dumps(report, indent=2) + "\n")
        write_markdown(report, args.out / "load.md")
    if errors:
        raise SystemExit(f"{errors} errors: the load test failed")


if __name__ == "__main__":
    main()
