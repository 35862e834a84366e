"""The page (web/) and web/ganlite.js in a real browser: Debian's chromium, headless, driven
by Selenium through Debian's chromedriver (no browser or driver download).

A real server on a free loopback port serves web/ and the built-in models: `ganlite serve`
where the serve extra is installed, else a stand-in with the same routes (see `server`).
The browser resolves no host but 127.0.0.1 (host-resolver rules), and every request the
page makes is recorded (Chrome's performance log) and must go to 127.0.0.1: the page works
offline. Skipped only where chromium or chromedriver is absent (and never under CI=true).

GANLITE_WEB_SCREENSHOT=PATH also saves the click-through's screenshot there (README's is
bench/results/web-page.png).
"""
from __future__ import annotations

import base64
import http.server
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

import ganlite
import ganlite.latents

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WEB = Path(__file__).resolve().parent.parent / "web"
ORT_DIST = WEB / "node_modules" / "onnxruntime-web" / "dist"

pytestmark = pytest.mark.browser

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    if os.environ.get("CI"):
        pytest.fail("CI must install chromium and chromium-driver (.ci/run does)",
                    pytrace=False)
    pytest.skip("Debian's chromium / chromium-driver is not installed "
                "(apt-get install -y chromium chromium-driver)", allow_module_level=True)

try:   # the training environment collects this module too (then deselects it): no selenium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    webdriver = None

LOOPBACK = "127.0.0.1"
TIMEOUT = 120   # seconds: a model load on a busy 2-core machine, with margin


# ---------------------------------------------------------------------------------------
# The server.

def use_ganlite_serve() -> bool:
    """`ganlite serve` once the serve extra (starlette, uvicorn) is importable and the
    command exists; the stand-in below until then."""
    from ganlite.cli import main

    return (importlib.util.find_spec("starlette") is not None
            and importlib.util.find_spec("uvicorn") is not None
            and "serve" in getattr(main, "commands", {}))


class StandIn(http.server.SimpleHTTPRequestHandler):
    """The routes of `ganlite serve` that the page uses: web/ at /, GET /v1/models
    ({"models": [card, ...]}), /models/NAME.onnx and /models/NAME.json."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(WEB), **kwargs)

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass

    def do_GET(self):
        path = urlsplit(self.path).path
        models = ganlite.list_models(None)
        found = re.fullmatch(r"/models/([\w.-]+)\.(onnx|json)", path)
        if path == "/v1/models":
            body = json.dumps({"models": [ganlite.read_card(m) for m in models]}).encode()
            kind = "application/json"
        elif found and found[1] in models:
            kind = "application/json" if found[2] == "json" else "application/octet-stream"
            body = (json.dumps(ganlite.read_card(found[1])).encode() if found[2] == "json"
                    else models[found[1]].read_bytes())
        else:
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ganlite serve exited with {process.returncode}: "
                               f"{process.stderr.read() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within 60 s")


@pytest.fixture(scope="module")
def server():
    """The base URL of a real server of web/ and the built-in models on loopback."""
    if not (ORT_DIST / "ort.wasm.min.mjs").exists():
        pytest.fail("onnxruntime-web is not installed: run `npm ci --prefix web`",
                    pytrace=False)
    if use_ganlite_serve():
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "ganlite", "serve", "--host", LOOPBACK, "--port", str(port),
             "--web", str(WEB), "--no-access-log"], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)   # no access log: nobody drains the pipe
        try:
            wait_for(f"http://{LOOPBACK}:{port}/healthz", process)
            print(f"\nserver: ganlite serve on port {port}")
            yield f"http://{LOOPBACK}:{port}/"
        finally:
            process.terminate()
            process.wait(timeout=30)
    else:
        httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), StandIn)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        print(f"\nserver: the stand-in (no `ganlite serve` here) on port {httpd.server_port}")
        try:
            yield f"http://{LOOPBACK}:{httpd.server_port}/"
        finally:
            httpd.shutdown()
            httpd.server_close()


# ---------------------------------------------------------------------------------------
# The browser.

class Browser:
    """A headless chromium and every request its pages made (from the performance log)."""

    def __init__(self, downloads: Path):
        options = webdriver.ChromeOptions()
        # Both paths given: Selenium Manager has nothing to look for, so it downloads nothing.
        options.binary_location = str(CHROMIUM)
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1000,1000", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--disable-extensions",
                         # No name resolves but the loopback address: a page that reached
                         # for a CDN would fail here, offline, as it would for a user.
                         f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {LOOPBACK}"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        self.driver.set_script_timeout(TIMEOUT)
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                    {"behavior": "allow", "downloadPath": str(downloads)})
        self.requests: list[str] = []       # every URL requested, in order
        self.mime_types: dict[str, str] = {}

    def drain_log(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            elif message["method"] == "Network.responseReceived":
                response = message["params"]["response"]
                self.mime_types[response["url"]] = response["mimeType"]

    def open(self, url: str, state: str = "ready") -> None:
        """Open the page and wait until it has drawn (body data-state)."""
        self.drain_log()   # keep chromedriver's buffer short; every URL is kept here
        self.driver.get(url)
        self.wait_state(state)

    def ensure(self, url: str) -> None:
        """Be on the page (for tests that only call web/ganlite.js): open it unless open."""
        if not self.driver.current_url.startswith(url):
            self.open(url)

    def wait_state(self, *states: str) -> str:
        WebDriverWait(self.driver, TIMEOUT).until(
            lambda d: d.execute_script("return document.body.dataset.state") in states)
        return self.driver.execute_script("return document.body.dataset.state")

    def js(self, body: str, *args):
        """Run `body` as an async function of (ganlite, ...args) in the page; its result,
        or AssertionError with the page's error."""
        script = """
            const done = arguments[arguments.length - 1];
            const args = Array.from(arguments).slice(0, -1);
            import("./ganlite.js")
              .then((ganlite) => (async (ganlite, ...args) => { BODY })(ganlite, ...args))
              .then((value) => done({value}),
                    (e) => done({error: `${e.name}: ${e.message}`}));""".replace("BODY", body)
        result = self.driver.execute_async_script(script, *args)
        if "error" in result:
            raise AssertionError(f"in the page: {result['error']}")
        return result.get("value")

    def canvas_pixels(self) -> np.ndarray:
        """The canvas's pixels, uint8 [h, w, 4]."""
        width, height, data = self.driver.execute_script("""
            const c = document.getElementById("grid");
            const rgba = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let s = "";
            for (let i = 0; i < rgba.length; i += 8192)
              s += String.fromCharCode(...rgba.subarray(i, i + 8192));
            return [c.width, c.height, btoa(s)];""")
        return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if webdriver is None:
        pytest.fail("selenium is not installed: pip install '.[dev]'", pytrace=False)
    downloads = tmp_path_factory.mktemp("downloads")
    session = Browser(downloads)
    session.downloads = downloads
    yield session
    session.driver.quit()


# In-page helper: bytes (Uint8Array) -> base64, chunked (spread arguments are bounded).
B64 = """const b64 = (bytes) => { let s = "";
    for (let i = 0; i < bytes.length; i += 8192)
        s += String.fromCharCode(...bytes.subarray(i, i + 8192));
    return btoa(s); };"""


def decode_in_page(browser: Browser, model: str, z: np.ndarray,
                   labels: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """web/ganlite.js's decode() of these latents, uint8 [b, 28, 28], and its card."""
    data, card = browser.js(B64 + """
        const [model, z, labels] = args;
        const gen = await ganlite.load(`models/${model}.onnx`);
        const pixels = await gen.decode(Float32Array.from(z),
                                        labels === null ? undefined : Int32Array.from(labels));
        await gen.dispose();
        return [b64(pixels), gen.card];""", model, z.ravel().tolist(),
        None if labels is None else labels.tolist())
    return np.frombuffer(base64.b64decode(data), np.uint8).reshape(len(z), 28, 28), card


# ---------------------------------------------------------------------------------------
# web/ganlite.js against Python.

@pytest.mark.parametrize("model", ["mnist-cdcgan", "fashion-cdcgan"])
def test_decode_matches_python(browser, server, model):
    browser.ensure(server)
    gen = ganlite.load(model, device="cpu")
    z, labels = ganlite.latents.draw(7, 0, 200, gen.latent_dim, gen.num_classes)
    want = gen.decode(z, labels)
    got, card = decode_in_page(browser, model, z, labels)
    assert card == ganlite.read_card(model)     # read from the file's metadata, in the page
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    print(f"\n{model}: 200 images, {diff.size} pixels: max diff {diff.max()} gray levels, "
          f"{np.mean(diff > 0):.5%} differ, {np.mean(diff > 1):.5%} by more than 1")
    assert np.mean(diff <= 1) >= 0.999, f"max diff {diff.max()}"
    # Not a blank or constant answer that happens to be close: real, varied images.
    assert want.std() > 50 and len(np.unique(want.reshape(200, -1), axis=0)) == 200


@pytest.mark.parametrize("model", ["mnist-cdcgan-int8", "fashion-cdcgan-int8"])
def test_int8_models_run_close_to_python(browser, server, model):
    """int8 models run in the browser, but its int8 kernels round differently from
    onnxruntime's CPU ones: measured 1.6 % / 2.9 % of pixels more than 1 gray level off
    (max 28 / 33), so the 1-gray-level contract is the float models'; here, close."""
    browser.ensure(server)
    gen = ganlite.load(model, device="cpu")
    z, labels = ganlite.latents.draw(7, 0, 200, gen.latent_dim, gen.num_classes)
    want = gen.decode(z, labels).astype(np.int16)
    got, _ = decode_in_page(browser, model, z, labels)
    diff = np.abs(got.astype(np.int16) - want)
    print(f"\n{model}: max diff {diff.max()}, mean {diff.mean():.3f}, "
          f"{np.mean(diff > 1):.3%} by more than 1")
    assert diff.mean() < 1.0 and np.mean(diff > 1) < 0.05 and diff.max() <= 64


def test_generate_is_seeded(browser, server):
    browser.ensure(server)
    same, other, prefix, one_class = browser.js(B64 + """
        const gen = await ganlite.load("models/mnist-cdcgan.onnx");
        const a = await gen.generate(16, {seed: 5});
        const b = await gen.generate(16, {seed: 5});
        const c = await gen.generate(16, {seed: 6});
        const d = await gen.generate(4, {seed: 5});
        const e = await gen.generate(4, {seed: 5, labels: "3"});
        return [a.every((v, i) => v === b[i]), a.every((v, i) => v === c[i]),
                d.every((v, i) => v === a[i]), b64(e)];""")
    assert same and not other and prefix
    # A class asked for by name is that class: decode() of the same latents with label 3.
    z = np.array(browser.js("return Array.from(ganlite.draw(5, 0, 4, 100, 10).z);"),
                 np.float32).reshape(4, 100)
    want = ganlite.load("mnist-cdcgan", device="cpu").decode(z, 3)
    got = np.frombuffer(base64.b64decode(one_class), np.uint8).reshape(4, 28, 28)
    assert np.abs(got.astype(int) - want).max() <= 1


def test_draw_is_standard_normal_and_uniform_labels(browser, server):
    browser.ensure(server)
    z, labels = browser.js("""
        const {z, labels} = ganlite.draw(11, 0, 2000, 100, 10);
        return [Array.from(z), Array.from(labels)];""")
    z = np.array(z, np.float32)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.01        # the normal's shape, not only
    assert abs(np.mean(np.abs(z) < 2) - 0.9545) < 0.005       # its first two moments
    rows = z.reshape(2000, 100)
    assert abs(np.corrcoef(rows[:, 0], rows[:, 1])[0, 1]) < 0.1   # Box-Muller pairs
    assert abs(np.corrcoef(rows[:-1, 0], rows[1:, 0])[0, 1]) < 0.1  # neighbour images
    counts = np.bincount(labels, minlength=10)
    assert len(counts) == 10 and counts.min() > 150 and counts.max() < 250
    # Image i's latent depends on (seed, i) only: images 1000.. drawn alone are the same.
    tail = browser.js("return Array.from(ganlite.draw(11, 1000, 5, 100, 10).z);")
    assert np.array_equal(np.array(tail, np.float32), z[100_000:100_500])


@pytest.mark.parametrize("where", ["weights", "card"])
def test_modified_model_is_refused(browser, server, where):
    browser.ensure(server)
    path = ganlite.list_models()["mnist-cdcgan"]
    data = path.read_bytes()
    # One bit in the middle of the weights, or one letter of the card's summary.
    at = len(data) // 2 if where == "weights" else data.index(b"GAN generator of mnist")
    message = browser.js("""
        const bytes = new Uint8Array(await (await fetch("models/mnist-cdcgan.onnx")).arrayBuffer());
        bytes[args[0]] ^= 1;
        const url = URL.createObjectURL(new Blob([bytes]));
        try { await ganlite.load(url); return "loaded"; }
        catch (e) { return `${e.name}: ${e.message}`; }""", at)
    assert message.startswith("IntegrityError: ") and "modified after export" in message


def test_missing_model_is_a_model_error(browser, server):
    browser.ensure(server)
    message = browser.js("""
        try { await ganlite.load("models/no-such-model.onnx"); return "loaded"; }
        catch (e) { return `${e.name}: ${e.message}`; }""")
    assert message.startswith("ModelError: ") and "no-such-model.onnx" in message
    assert "HTTP 404" in message


@pytest.mark.parametrize("call, expected", [
    ("gen.decode(new Float32Array(150), 1)", "batch * 100 values"),
    ("gen.decode(new Float32Array(100).fill(NaN), 1)", "NaN or infinite"),
    ("gen.decode(new Float32Array(100))", "conditional: give labels"),
    ("gen.decode(new Float32Array(200), [1])", "one label per image"),
    ("gen.decode(new Float32Array(100), 10)", "label must be an integer between 0 and 9"),
    ("gen.generate(2, {labels: 'sneaker'})", "choose from 0, 1, 2"),
    ("gen.generate(0)", "n must be an integer between 1 and 100000"),
    ("gen.generate(2, {seed: -1})", "seed must be an integer between 0 and"),
])
def test_bad_arguments_are_usage_errors(browser, server, call, expected):
    browser.ensure(server)
    message = browser.js("""
        const gen = await ganlite.load("models/mnist-cdcgan.onnx");
        try { await CALL; return "accepted"; }
        catch (e) { return `${e.name}: ${e.message}`; }""".replace("CALL", call))
    assert message.startswith("UsageError: ") and expected in message, message


def test_readme_example_runs(browser, server):
    """README's web/ganlite.js example, as written, in a module script of the page."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = re.search(r"### The embeddable module.*?```js\n(.*?)```", readme, re.S)[1]
    first, rest = code.split("\n", 1)
    assert first == 'import * as ganlite from "./ganlite.js";'
    script = (first + '\nconst canvas = document.createElement("canvas"), i = 3;\n' + rest +
              "\nwindow.readme = {sevens: sevens.length, images: images.length, "
              "shoes: shoes.length, ink: picture.data.reduce((a, b) => a + b, 0)};")
    browser.ensure(server)
    driver = browser.driver
    driver.execute_script("""
        window.readme = null;
        addEventListener("error", (e) => { window.readme = {error: e.message}; });
        const element = document.createElement("script");
        element.type = "module";
        element.textContent = arguments[0];
        document.head.append(element);""", script)
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.execute_script("return window.readme"))
    result = driver.execute_script("return window.readme")
    assert result.get("error") is None, result
    assert result["sevens"] == result["images"] == 16 * 784 and result["shoes"] == 4 * 784
    assert result["ink"] > 784 * 255    # alpha alone: the picture holds some ink


# ---------------------------------------------------------------------------------------
# The page.

def expected_grid(model: str, z: np.ndarray, labels, columns: int) -> np.ndarray:
    """What the canvas must show: Python's images of the same latents in save_grid's
    layout (gap 2 of gray 48, enlarged twice)."""
    images = ganlite.load(model, device="cpu").decode(z, labels)
    return np.kron(ganlite.make_grid(images, columns=columns), np.ones((2, 2), np.uint8))


def assert_canvas_shows(browser: Browser, model: str, seed: int, label: int, side: int):
    gen = ganlite.load(model, device="cpu")
    z = np.array(browser.js("return Array.from(ganlite.draw(...args).z);",
                            seed, 0, side * side, gen.latent_dim, gen.num_classes),
                 np.float32).reshape(side * side, gen.latent_dim)
    want = expected_grid(model, z, label, side)
    got = browser.canvas_pixels()
    assert got.shape[:2] == want.shape
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 3] == 255).all()
    assert np.mean(np.abs(got[..., 0].astype(int) - want) <= 1) >= 0.999


def test_page_click_through(browser, server, tmp_path):
    driver = browser.driver
    browser.open(server)
    by_id = lambda name: driver.find_element(By.ID, name)  # noqa: E731
    first = browser.canvas_pixels()
    assert by_id("grid").get_attribute("aria-label").startswith("8 by 8 grid")
    assert by_id("label-caption").text == "Digit"

    # Model: Fashion. The class list and its caption follow the card.
    Select(by_id("model")).select_by_value("fashion-cdcgan")
    browser.wait_state("ready")
    assert by_id("label-caption").text == "Class"
    assert "7: sneaker" in [o.text for o in Select(by_id("label")).options]
    fashion = browser.canvas_pixels()
    assert not np.array_equal(first, fashion)

    # Class and seed by keyboard: arrow keys in the select, the seed typed, Enter draws.
    by_id("label").send_keys(Keys.HOME)          # "any (random)"
    for _ in range(8):
        by_id("label").send_keys(Keys.ARROW_DOWN)  # 0: t-shirt ... 7: sneaker
    browser.wait_state("ready")
    assert Select(by_id("label")).first_selected_option.text == "7: sneaker"
    seed = by_id("seed")
    seed.send_keys(Keys.CONTROL, "a")
    seed.send_keys("42", Keys.ENTER)
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: "seed 42" in by_id("grid").get_attribute("aria-label")
        and d.execute_script("return document.body.dataset.state") == "ready")
    label = by_id("grid").get_attribute("aria-label")
    assert "class sneaker" in label and "fashion-cdcgan" in label
    assert_canvas_shows(browser, "fashion-cdcgan", 42, 7, 8)
    assert "model=fashion-cdcgan" in driver.current_url and "seed=42" in driver.current_url

    # Grid size 4 x 4: 4 * (28 + 2) + 2 pixels, twice.
    Select(by_id("size")).select_by_value("4")
    WebDriverWait(driver, TIMEOUT).until(lambda d: by_id("grid").get_attribute("width") == "244")
    browser.wait_state("ready")
    assert_canvas_shows(browser, "fashion-cdcgan", 42, 7, 4)
    still = browser.canvas_pixels()

    # Latent walk: frames follow each other while it plays, and stop with Escape.
    walk = by_id("walk")
    walk.click()
    assert walk.get_attribute("aria-pressed") == "true"
    frames = lambda: int(by_id("grid").get_attribute("data-frames"))  # noqa: E731
    start, started = frames(), time.monotonic()
    WebDriverWait(driver, TIMEOUT).until(lambda d: frames() >= start + 6)
    rate = (frames() - start) / (time.monotonic() - started)
    moving = browser.canvas_pixels()
    assert not np.array_equal(moving, still)
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert walk.get_attribute("aria-pressed") == "false"
    stopped = frames()
    time.sleep(1)
    assert frames() <= stopped + 1     # at most the frame that was being decoded
    print(f"\nwalk: {rate:.1f} frames/s on a 4 x 4 grid")

    # Download: the PNG holds exactly the canvas's pixels.
    for old in browser.downloads.iterdir():
        old.unlink()
    shown = browser.canvas_pixels()
    by_id("download").click()
    WebDriverWait(driver, 30).until(
        lambda d: [p for p in browser.downloads.iterdir() if p.suffix == ".png"])
    saved = next(p for p in browser.downloads.iterdir() if p.suffix == ".png")
    assert saved.name == "fashion-cdcgan-seed42-class7.png"
    time.sleep(0.5)   # the download's rename from .crdownload is the last step; be sure
    with Image.open(saved) as png:
        assert png.format == "PNG"
        assert np.array_equal(np.asarray(png.convert("RGBA")), shown)

    # Back to MNIST 8 x 8, digit 7, for the screenshot.
    Select(by_id("size")).select_by_value("8")
    browser.wait_state("ready")
    Select(by_id("model")).select_by_value("mnist-cdcgan")
    browser.wait_state("ready")
    Select(by_id("label")).select_by_value("7")
    browser.wait_state("ready")
    assert_canvas_shows(browser, "mnist-cdcgan", 42, 7, 8)
    shot = tmp_path / "web-page.png"
    driver.save_screenshot(str(shot))
    with Image.open(shot) as png:
        assert png.size[0] > 500
    if os.environ.get("GANLITE_WEB_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["GANLITE_WEB_SCREENSHOT"])


def test_every_control_is_keyboard_reachable_with_visible_focus(browser, server):
    browser.open(server)
    driver = browser.driver
    driver.execute_script("document.activeElement.blur()")
    reached, styles = [], {}
    for _ in range(12):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        element = driver.switch_to.active_element
        name = element.get_attribute("id")
        reached.append(name)
        styles[name] = element.value_of_css_property("outline-style")
    controls = ["model", "label", "seed", "size", "draw", "walk", "download"]
    assert [r for r in reached if r in controls][:7] == controls
    assert all(styles[c] != "none" for c in controls), styles
    for name in controls:   # every control has a label or its own text
        element = driver.find_element(By.ID, name)
        if element.tag_name in ("select", "input"):
            assert driver.find_element(By.CSS_SELECTOR, f"label[for={name}]").text
        else:
            assert element.text


def test_model_that_fails_to_load_is_shown(browser, server):
    driver = browser.driver
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*fashion-cdcgan.onnx"]})
    try:
        browser.open(server)
        Select(driver.find_element(By.ID, "model")).select_by_value("fashion-cdcgan")
        assert browser.wait_state("error") == "error"
        alert = driver.find_element(By.CSS_SELECTOR, "[role=alert]")
        assert alert.is_displayed()
        assert "Could not load or run model fashion-cdcgan" in alert.text
        assert "cannot fetch the model" in alert.text
    finally:
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    # The page stays usable: another model draws, and the alert goes away.
    Select(driver.find_element(By.ID, "model")).select_by_value("mnist-cdcgan")
    browser.wait_state("ready")
    assert not driver.find_element(By.ID, "error").is_displayed()


def test_unknown_model_in_the_address_is_shown(browser, server):
    browser.open(server + "?model=no-such-model", state="error")
    alert = browser.driver.find_element(By.CSS_SELECTOR, "[role=alert]")
    assert 'Unknown model "no-such-model"' in alert.text and "mnist-cdcgan" in alert.text


def test_everything_comes_from_loopback(browser, server):
    """Offline: this test's page (both models drawn) and every test before it in this
    browser requested nothing but the server's own files."""
    browser.open(server)
    Select(browser.driver.find_element(By.ID, "model")).select_by_value("fashion-cdcgan")
    browser.wait_state("ready")
    browser.drain_log()
    origin = server.rstrip("/")
    outside = [u for u in browser.requests
               if not (u.startswith(origin + "/") or u.startswith(("blob:", "data:")))]
    assert not outside, outside
    wasm = [u for u in browser.requests if u.endswith(".wasm")]
    assert wasm and all("/node_modules/onnxruntime-web/dist/" in u for u in wasm)
    assert {browser.mime_types.get(u) for u in wasm} == {"application/wasm"}
    modules = [u for u in browser.mime_types if u.endswith((".js", ".mjs"))]
    # Module scripts load only with a JavaScript MIME type (which one depends on the
    # server's table: Debian's /etc/mime.types says text/javascript).
    assert modules and {browser.mime_types[u] for u in modules} <= {
        "text/javascript", "application/javascript"}
    entries = browser.driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)")
    assert entries and all(e.startswith(origin + "/") for e in entries)
    assert browser.driver.execute_script("return self.crossOriginIsolated") is False
