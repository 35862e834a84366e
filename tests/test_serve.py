"""`ganlite serve`: a real uvicorn process on a free loopback port, spoken to over HTTP.

Every answer is checked against the library itself: the model files against the files,
the cards against read_card, the images against Generator.generate (byte for byte), the
grids against make_grid. Bad requests must be 4xx JSON naming the parameter, one log line
each, and no traceback ever reaches the server's log. The dynamic batcher is also tested
in-process, where its merging can be counted.
"""
from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from conftest import TINY_UNCONDITIONAL, has_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import ganlite

HAS_EXTRA = has_module("starlette") and has_module("uvicorn")
needs_extra = pytest.mark.skipif(not HAS_EXTRA, reason="the serve extra (starlette, uvicorn) "
                                                       "is not installed")
ENV = {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)}
TINY = ganlite.read_card(TINY_UNCONDITIONAL)["name"]
ORIGIN = "http://app.example"
README = Path(__file__).resolve().parent.parent / "README.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m ganlite serve ARGS` on a free loopback port; its log in a file."""

    def __init__(self, folder: Path, *args: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "server.log"
        for _ in range(3):     # a free port can be taken between the check and the bind
            self.port = free_port()
            with open(self.log_path, "w") as log:
                self.proc = subprocess.Popen(   # the last --port wins
                    [sys.executable, "-m", "ganlite", "serve", *args, "--port",
                     str(self.port)], stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=ENV)
            if self._wait_ready():
                return
        raise AssertionError(f"the server did not start:\n{self.log()}")

    def _wait_ready(self, timeout: float = 90) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.get("/healthz")[0] == 200:
                    return True
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        return False

    def get(self, path: str, headers: dict | None = None,
            timeout: float = 60) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, \
                response.read()
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[int, dict]:
        status, headers, body = self.get(path)
        assert headers["content-type"] == "application/json", (path, headers)
        return status, json.loads(body)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def generate_path(**params) -> str:
    return "/v1/generate?" + urlencode(params)


def npy_bytes(images: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, images)
    return buf.getvalue()


@pytest.fixture(scope="module")
def generators():
    """The library's own generators: what every answer is compared with."""
    return {"mnist-cdcgan": ganlite.load("mnist-cdcgan", device="cpu"),
            "fashion-cdcgan": ganlite.load("fashion-cdcgan", device="cpu"),
            TINY: ganlite.Generator(TINY_UNCONDITIONAL, device="cpu")}


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("web")
    (folder / "index.html").write_text("<!doctype html><title>digits</title>")
    (folder / "app.js").write_text("export const x = 1;\n")
    (folder / "dist").mkdir()
    (folder / "dist" / "ort.wasm").write_bytes(b"\0asm\1\0\0\0")
    (folder / "dist" / "ort.mjs").write_text("export {};\n")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, web):
    """Batching on (the default), the built-in generators plus an unconditional model."""
    server = Server(tmp_path_factory.mktemp("server"), "--model", "mnist-cdcgan",
                    "--model", "fashion-cdcgan", "--model", str(TINY_UNCONDITIONAL),
                    "--web", str(web), "--allow-origin", ORIGIN)
    yield server
    assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log()


@needs_extra
def test_healthz(server):
    assert server.get_json("/healthz") == (200, {"status": "ok"})


@needs_extra
def test_models_are_the_cards_default_first(server):
    status, body = server.get_json("/v1/models")
    assert status == 200
    assert [card["name"] for card in body["models"]] == ["mnist-cdcgan", "fashion-cdcgan", TINY]
    assert body["models"] == [ganlite.read_card("mnist-cdcgan"),
                              ganlite.read_card("fashion-cdcgan"),
                              ganlite.read_card(TINY_UNCONDITIONAL)]


@needs_extra
def test_model_files_are_the_files(server):
    for name, path in [("mnist-cdcgan", ganlite.list_models()["mnist-cdcgan"]),
                       (TINY, TINY_UNCONDITIONAL)]:
        status, headers, body = server.get(f"/models/{name}.onnx")
        assert (status, headers["content-type"]) == (200, "application/octet-stream")
        assert body == Path(path).read_bytes()
        assert server.get_json(f"/models/{name}.json") == (200, ganlite.read_card(path))


@needs_extra
@pytest.mark.parametrize("suffix", ["onnx", "json"])
def test_model_files_can_be_revalidated(server, suffix):
    status, headers, body = server.get(f"/models/mnist-cdcgan.{suffix}")
    assert status == 200 and headers["cache-control"] == "no-cache"
    etag = headers["etag"]
    status, again, body = server.get(f"/models/mnist-cdcgan.{suffix}",
                                     headers={"If-None-Match": etag})
    assert (status, body, again["etag"]) == (304, b"", etag)
    other = server.get(f"/models/fashion-cdcgan.{suffix}", headers={"If-None-Match": etag})
    assert other[0] == 200 and other[1]["etag"] != etag


@needs_extra
@pytest.mark.parametrize("path", [
    "/models/mnist-classifier.onnx",          # built in, but not served
    "/models/nope.onnx",
    "/models/mnist-cdcgan.keras",
    "/models/mnist-cdcgan",
    "/models/../pyproject.toml",
    "/models/..%2F..%2Fpyproject.toml",
    "/models/%2e%2e/%2e%2e/pyproject.toml",
])
def test_other_model_paths_are_404_json(server, path):
    status, headers, body = server.get(path)
    assert (status, headers["content-type"]) == (404, "application/json"), body
    assert "error" in json.loads(body)


@needs_extra
@pytest.mark.parametrize("model, n, seed, labels", [
    ("mnist-cdcgan", 1, 0, None),
    ("mnist-cdcgan", 300, 7, 3),                 # more than one batch of 256
    ("mnist-cdcgan", 17, 2**63 - 1, None),
    ("fashion-cdcgan", 12, 5, "Ankle boot"),
    ("fashion-cdcgan", 3, 1, 9),
    (TINY, 5, 3, None),
])
def test_generate_npy_is_byte_identical(server, generators, model, n, seed, labels):
    params: dict = {"model": model, "n": n, "seed": seed, "format": "npy"}
    if isinstance(labels, int):
        params["digit"] = labels
    elif labels is not None:
        params["class"] = labels
    status, headers, body = server.get(generate_path(**params))
    assert (status, headers["content-type"]) == (200, "application/octet-stream"), body[:200]
    assert body == npy_bytes(generators[model].generate(n, seed=seed, labels=labels))


@needs_extra
def test_generate_defaults(server, generators):
    status, headers, body = server.get("/v1/generate")
    assert (status, headers["content-type"]) == (200, "image/png")
    expected = ganlite.make_grid(generators["mnist-cdcgan"].generate(1, seed=0))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), expected)


@needs_extra
@pytest.mark.parametrize("n", [1, 16, 30])
def test_generate_png_is_the_grid(server, generators, n):
    status, headers, body = server.get(generate_path(n=n, seed=4, digit=7, format="png"))
    assert (status, headers["content-type"]) == (200, "image/png")
    with Image.open(io.BytesIO(body)) as image:
        assert image.mode == "L"
        grid = np.asarray(image)
    assert np.array_equal(grid, ganlite.make_grid(generators["mnist-cdcgan"].generate(
        n, seed=4, labels=7)))


BAD_REQUESTS = [
    ({"n": 0}, "n"),
    ({"n": 10_001, "format": "npy"}, "n"),
    ({"n": 10_001}, "n"),                        # also the grid's limit
    ({"n": "ten"}, "n"),
    ({"n": "1.5"}, "n"),
    ({"n": ""}, "n"),
    ({"n": "9" * 40}, "n"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**63}, "seed"),
    ({"seed": "x"}, "seed"),
    ({"digit": 10}, "digit"),
    ({"digit": -1}, "digit"),
    ({"digit": "seven"}, "digit"),
    ({"model": TINY, "digit": 3}, "digit"),      # an unconditional model
    ({"class": "dog"}, "class"),
    ({"model": "fashion-cdcgan", "class": "x" * 500}, "class"),
    ({"model": TINY, "class": "sneaker"}, "class"),
    ({"digit": 3, "class": "3"}, "class"),
    ({"format": "gif"}, "format"),
    ({"model": "nope"}, "model"),
    ({"model": "mnist-classifier"}, "model"),    # built in, but not served
    ({"model": "../artifacts/mnist-cdcgan.onnx"}, "model"),
    ({"digits": 3}, "digits"),                   # unknown parameter
]


@needs_extra
@pytest.mark.parametrize("params, parameter", BAD_REQUESTS,
                         ids=[urlencode(p)[:40] for p, _ in BAD_REQUESTS])
def test_bad_parameter_is_400_json_naming_it(server, params, parameter):
    path = generate_path(**params)
    before = len(server.log())
    status, headers, body = server.get(path)
    assert (status, headers["content-type"]) == (400, "application/json"), body
    answer = json.loads(body)
    assert answer["parameter"] == parameter
    assert isinstance(answer["error"], str) and 0 < len(answer["error"]) < 400
    assert "\n" not in answer["error"]
    time.sleep(0.05)     # uvicorn writes the access log line after the response
    lines = server.log()[before:].splitlines()    # what this request logged
    assert len(lines) == 1 and f'"GET {path} HTTP/1.1" 400' in lines[0], lines


_small_int = st.integers(-3, 24).map(str)
_query_values = st.one_of(_small_int, st.text(max_size=12))


@needs_extra
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.fixed_dictionaries({}, optional={
    "model": st.one_of(st.sampled_from(["mnist-cdcgan", "fashion-cdcgan", TINY]),
                       st.text(max_size=12)),
    "n": _query_values, "seed": st.one_of(_small_int, _query_values),
    "digit": _query_values, "class": st.one_of(st.sampled_from(["sneaker", "7"]),
                                               st.text(max_size=12)),
    "format": st.one_of(st.sampled_from(["png", "npy"]), st.text(max_size=5))}),
       other=st.one_of(st.none(), st.tuples(st.text(min_size=1, max_size=6), _query_values)))
def test_any_query_is_an_answer_or_a_400(server, params, other):
    if other is not None:
        params[other[0]] = other[1]
    status, headers, body = server.get(generate_path(**params))
    if status == 200:
        assert headers["content-type"] == ("application/octet-stream"
                                           if params.get("format") == "npy" else "image/png")
    else:
        assert (status, headers["content-type"]) == (400, "application/json"), body
        assert json.loads(body)["parameter"] in params


@needs_extra
def test_parameter_given_twice_is_400(server):
    status, body = server.get_json("/v1/generate?n=1&n=2")
    assert status == 400 and body["parameter"] == "n"


@needs_extra
def test_other_routes_and_methods_are_json_errors(server):
    status, body = server.get_json("/v2/generate")
    assert status == 404 and "error" in body
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/v1/generate", body=b"n=1")
    response = conn.getresponse()
    assert response.status == 405
    assert "error" in json.loads(response.read())
    conn.close()


@needs_extra
def test_web_page_is_served_with_module_and_wasm_types(server, web):
    status, headers, body = server.get("/")
    assert (status, body) == (200, (web / "index.html").read_bytes())
    assert headers["content-type"].startswith("text/html")
    assert server.get("/index.html")[2] == body
    for path, kind in [("/app.js", "text/javascript"), ("/dist/ort.mjs", "text/javascript"),
                       ("/dist/ort.wasm", "application/wasm")]:
        status, headers, body = server.get(path)
        assert status == 200 and headers["content-type"].split(";")[0] == kind, (path, headers)
        assert body == (web / path.lstrip("/")).read_bytes()
    status, headers, _ = server.get("/missing.js")
    assert (status, headers["content-type"]) == (404, "application/json")
    assert server.get("/../pyproject.toml")[0] == 404


@needs_extra
def test_cross_origin_only_for_allowed_origins(server):
    _, headers, _ = server.get("/v1/models", headers={"Origin": ORIGIN})
    assert headers.get("access-control-allow-origin") == ORIGIN
    _, headers, _ = server.get("/v1/models", headers={"Origin": "http://other.example"})
    assert "access-control-allow-origin" not in headers


def _mixed_requests(count: int) -> list[dict]:
    """Small requests over both conditional models and the unconditional one."""
    rng = np.random.default_rng(5)
    requests = []
    for i in range(count):
        model = ["mnist-cdcgan", "fashion-cdcgan", TINY][i % 3]
        params: dict = {"model": model, "n": int(rng.integers(1, 12)),
                        "seed": int(rng.integers(0, 2**63 - 1)), "format": "npy"}
        if model == "mnist-cdcgan" and i % 2:
            params["digit"] = int(rng.integers(0, 10))
        elif model == "fashion-cdcgan" and i % 2:
            params["class"] = ["sneaker", "bag", "Ankle boot"][i % 3]
        requests.append(params)
    return requests


def _expected(generators, params: dict) -> bytes:
    labels = params.get("digit", params.get("class"))
    return npy_bytes(generators[params["model"]].generate(params["n"], seed=params["seed"],
                                                          labels=labels))


@needs_extra
def test_concurrent_requests_equal_the_library(server, generators):
    requests = _mixed_requests(48)
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda p: server.get(generate_path(**p)), requests))
    for params, (status, _, body) in zip(requests, answers, strict=True):
        assert status == 200, body[:200]
        assert body == _expected(generators, params), params


@needs_extra
def test_load_generator_smoke(server):
    """A real load generator, briefly: wrk at 8 connections, no errors."""
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    url = f"http://127.0.0.1:{server.port}" + generate_path(n=1, seed=3, format="npy")
    done = subprocess.run([wrk, "-t1", "-c8", "-d2s", url], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Non-2xx" not in done.stdout and "Socket errors" not in done.stdout, done.stdout
    requests = int(done.stdout.split(" requests in ")[0].split()[-1])
    assert requests > 0


def readme_http() -> tuple[list[list[str]], list[tuple[str, int]]]:
    """README's `ganlite serve` command lines, and the path of each curl example with the
    status it shows (400 where its comment says so, else 200)."""
    serves, urls, in_block = [], [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block and line.startswith("ganlite serve"):
            serves.append(shlex.split(line, comments=True))
        elif in_block and line.startswith("curl "):
            found = re.search(r"http://127\.0\.0\.1:8000(/[^'\s]*)", line)
            assert found, line
            urls.append((found.group(1), 400 if "# 400" in line else 200))
    return serves, urls


@needs_extra
def test_readme_curl_examples(server):
    _, urls = readme_http()
    assert len(urls) >= 6
    for path, status in urls:
        assert server.get(path)[0] == status, path


@needs_extra
def test_readme_javascript_example(server, generators):
    """README's fetch example, run by Node (fetch, Blob URLs) with a stand-in document."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    text = README.read_text()
    start = text.index("```js\n", text.index("## Use it over HTTP")) + len("```js\n")
    example = text[start:text.index("```", start)]
    assert len(example.strip().splitlines()) <= 10
    stand_in = ("globalThis.Image = class { style = {} }; "
                "globalThis.document = { body: { append: (x) => { globalThis.shown = x; } } };")
    report = ("console.log(JSON.stringify({src: shown.src, css: shown.style.cssText, "
              "pixels: Array.from(pixels)}));")
    code = stand_in + example.replace("http://127.0.0.1:8000",
                                      f"http://127.0.0.1:{server.port}") + report
    done = subprocess.run([node, "--input-type=module", "-e", code], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["src"].startswith("blob:") and "pixelated" in shown["css"]
    expected = generators["mnist-cdcgan"].generate(4, seed=0)
    assert shown["pixels"] == expected.ravel().tolist()


@needs_extra
def test_readme_serve_commands(tmp_path):
    serves, _ = readme_http()
    assert serves
    shutil.copy(TINY_UNCONDITIONAL, tmp_path / "my-model.onnx")   # README's ./my-model.onnx
    for command in serves:
        assert command[:2] == ["ganlite", "serve"]
        server = Server(tmp_path, *command[2:])
        try:
            status, body = server.get_json("/v1/models")
            assert status == 200 and body["models"]
        finally:
            assert server.stop() == 0, server.log()


# -- in-process: the batcher merges, and merged results are generate()'s bytes ----------

@needs_extra
def test_batcher_merges_concurrent_requests(generators):
    from ganlite._batcher import Batcher

    generator = generators["fashion-cdcgan"]
    batcher = Batcher(generator, max_batch=16, wait_s=0.05)
    jobs = [(int(n), seed, labels) for seed, (n, labels) in enumerate(
        [(1, None), (3, 4), (16, None), (20, 2), (5, (1, 2, 3)), (2, None)] * 4)]

    async def run_all():
        return await asyncio.gather(*[
            batcher.generate(n, seed, generator.check_args(n, seed, labels_arg(labels, n))[4])
            for n, seed, labels in jobs])

    def labels_arg(labels, n):
        return ganlite.LabelCycle(labels) if isinstance(labels, tuple) else labels

    try:
        results = asyncio.run(run_all())
    finally:
        batcher.stop(timeout=30)
    for (n, seed, labels), images in zip(jobs, results, strict=True):
        assert np.array_equal(images, generator.generate(n, seed=seed,
                                                         labels=labels_arg(labels, n)))
    assert batcher.stats.requests == len(jobs)
    assert batcher.stats.images == sum(n for n, _, _ in jobs)
    pieces = sum(-(-n // 16) for n, _, _ in jobs)
    assert batcher.stats.calls < pieces / 2, batcher.stats   # merged, not one call each


# -- separate processes: SIGTERM drain, batching off, startup errors, no extra ----------

def _calibrated_n(generator, seconds: float) -> int:
    """About `seconds` of generation on this machine now (npy, at most 10,000)."""
    start = time.perf_counter()
    generator.generate(256, seed=1)
    rate = 256 / (time.perf_counter() - start)
    return int(min(max(rate * seconds, 500), 10_000))


@needs_extra
def test_sigterm_drains_the_request_in_flight(tmp_path, generators):
    server = Server(tmp_path, "--model", "mnist-cdcgan", "--max-batch", "64")
    try:
        n = _calibrated_n(generators["mnist-cdcgan"], 1.0)
        answer: dict = {}

        def slow_request():
            answer["response"] = server.get(generate_path(n=n, seed=2, format="npy"),
                                            timeout=120)
            answer["done"] = time.monotonic()

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.3)
        killed = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(ConnectionRefusedError):     # no new connections while draining
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        thread.join(120)
        assert server.proc.wait(60) == 0, server.log()
    finally:
        server.stop()
    status, _, body = answer["response"]
    assert answer["done"] > killed, "the request finished before SIGTERM: not a drain test"
    assert status == 200
    assert body == npy_bytes(generators["mnist-cdcgan"].generate(n, seed=2))
    log = server.log()
    assert "Traceback" not in log and "Finished server process" in log, log


@needs_extra
def test_batching_off_serves_the_same_bytes_and_no_page(tmp_path, generators):
    server = Server(tmp_path, "--no-batching", "--max-n", "50")
    try:
        requests = [p for p in _mixed_requests(12) if p["model"] != TINY]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda p: server.get(generate_path(**p)), requests))
        for params, (status, _, body) in zip(requests, answers, strict=True):
            assert (status, body) == (200, _expected(generators, params))
        status, body = server.get_json(generate_path(n=51, format="npy"))
        assert (status, body["parameter"]) == (400, "n") and "50" in body["error"]
        from ganlite._server import default_web_folder

        if default_web_folder() is None:     # a source checkout with web/ serves it
            status, headers, body = server.get("/")
            assert status == 200 and headers["content-type"].startswith("text/plain")
            assert b"--web" in body and b"/v1/generate" in body
    finally:
        assert server.stop() == 0
    assert "batching off" in server.log() and "Traceback" not in server.log()


@needs_extra
@pytest.mark.parametrize("args, message, status", [
    (["--model", "nope"], "unknown model 'nope'", 2),
    (["--model", "mnist-classifier"], "expected a generator", 1),
    (["--model", "mnist-cdcgan", "--model", "mnist-cdcgan"], "two served models", 2),
    (["--web", "."], "has no index.html", 2),
    (["--max-n", "0"], "--max-n", 2),
])
def test_startup_errors_are_one_line(tmp_path, args, message, status):
    done = subprocess.run([sys.executable, "-m", "ganlite", "serve", "--port",
                           str(free_port()), *args], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert "Uvicorn running" not in done.stderr


@needs_extra
def test_port_in_use_is_a_clean_exit(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run([sys.executable, "-m", "ganlite", "serve", "--model",
                               str(TINY_UNCONDITIONAL), "--port",
                               str(taken.getsockname()[1])], cwd=tmp_path, env=ENV,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode != 0      # uvicorn's startup failure status (1, or 3 since 0.3x)
    assert "address already in use" in done.stderr and "Traceback" not in done.stderr


def test_without_the_extra_serve_names_the_fix(tmp_path):
    code = ("import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None; "
            "from ganlite.cli import main; sys.argv = ['ganlite', 'serve']; main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: ganlite serve needs Starlette and uvicorn: pip install 'ganlite[serve]'"]


def test_the_base_cli_does_not_import_the_server_stack(tmp_path):
    code = ("import sys, ganlite, ganlite.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('starlette', 'uvicorn', 'anyio') or m in ('ganlite._server', 'ganlite._batcher')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, check=True,
                   timeout=120)
