"""`ganlite serve`: the HTTP API and the web page, on Starlette and uvicorn (the `serve`
extra). Only the serve command imports this module: the base install never needs Starlette.

Routes:
    GET /healthz                 {"status": "ok"}
    GET /v1/models               {"models": [card, ...]}, the default model first
    GET /models/NAME.onnx        the model file, byte for byte
    GET /models/NAME.json        its card
    GET /v1/generate?model=&n=&seed=&digit=|class=&format=png|npy&truncation=
                                 a grid PNG, or the uint8 [n, 28, 28] array as .npy: the
                                 images of Generator.generate(n, seed=seed, labels=...,
                                 truncation=...)
    GET /, /index.html, ...      the web page's folder (static files)

A bad request is answered 4xx with {"error": "...", "parameter": "NAME"} (parameter only
where one is at fault); uvicorn's access log shows it as one line, never a traceback.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import mimetypes
import re
import signal
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import _card, _latents, _registry
from ._batcher import Batcher
from ._errors import GanliteError, ModelError, UsageError, describe
from ._images import MAX_GRID_IMAGES, make_grid, png_bytes
from ._model import Generator, ResolvedLabels, _check_int
from .latents import MAX_TRUNCATION, check_truncation

# Some systems' MIME tables lack these: browsers compile .wasm only as application/wasm
# (streaming) and load ES modules only with a JavaScript type.
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")

PARAMETERS = ("model", "n", "seed", "digit", "class", "format", "truncation")
FORMATS = ("png", "npy")
DEFAULT_MAX_N = 10_000
# A served process waits this long for requests in flight after SIGTERM, then cancels them.
DRAIN_SECONDS = 60
# Answers up to these sizes are encoded on the event loop (at most ~0.2 ms: a PNG grid
# costs ~40 us per image, .npy ~0.1 ms per 1,000 images); larger ones in a worker thread,
# so that one big answer never stalls the other requests.
_INLINE_ENCODE = {"png": 4, "npy": 1024}
_INTEGER = re.compile(r"-?[0-9]{1,30}")
_DECIMAL = re.compile(r"(?=.{1,40}$)[0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]{1,3})?")
_log = logging.getLogger("uvicorn.error")


class ParameterError(UsageError):
    """A query parameter of a request is invalid: 400, naming it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


@dataclass
class Served:
    """A model as the server holds it: loaded once, its file and card ready to send."""
    name: str
    generator: Generator
    card: dict
    model_bytes: bytes
    card_bytes: bytes
    batcher: Batcher | None

    def etag(self, what: str) -> str:
        """An entity tag of the model file or its card: their SHA-256, so a browser keeps
        the 4 MB file and asks again only whether it changed (304)."""
        body = self.model_bytes if what == "onnx" else self.card_bytes
        return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


@dataclass(frozen=True)
class Options:
    """How the server answers: limits, batching, and the web page folder (None: none)."""
    max_n: int = DEFAULT_MAX_N
    batching: bool = True
    max_batch: int = 256
    batch_wait_ms: float = 0.0
    web: Path | None = None
    allow_origins: tuple[str, ...] = ()


def default_web_folder() -> Path | None:
    """The web page of a source checkout (web/ beside the ganlite package), else web/ in
    the current folder; only a folder holding index.html counts."""
    for folder in (Path(__file__).resolve().parent.parent / "web", Path.cwd() / "web"):
        if (folder / "index.html").is_file():
            return folder
    return None


def load_models(models: Sequence[str], device: str = "auto", max_batch: int = 256,
                batch_wait_ms: float = 0.0, batching: bool = True) -> dict[str, Served]:
    """Load each model once: {name: Served}, in the order given.

    Raises:
        UsageError: an unknown model, a classifier, or two models of the same name.
        ModelError: a model file that cannot be used.
    """
    served: dict[str, Served] = {}
    for model in models:
        generator = Generator(model, device=device)
        name = generator.name
        if name in served:
            raise UsageError(f"two served models are named {name!r} ({served[name].generator.path}"
                             f" and {generator.path}): serve one of them")
        # The bytes sent are the bytes loaded: re-read, and checked against the same seal.
        model_bytes = _card.read_file(generator.path)
        if _card.read(generator.path, model_bytes) != generator.card:
            raise ModelError(f"{generator.path} changed while it was being loaded")
        _sleep_when_idle(generator, model_bytes)
        batcher = Batcher(generator, max_batch, batch_wait_ms / 1000) if batching else None
        served[name] = Served(name, generator, generator.card, model_bytes,
                              json.dumps(generator.card).encode(), batcher)
    if not served:
        raise UsageError("no model to serve")
    return served


def _sleep_when_idle(generator: Generator, model_bytes: bytes) -> None:
    """Give a CPU generator a session whose idle threads sleep instead of spinning.

    onnxruntime's threads spin-wait for the next call by default: right for one process
    generating flat out, wrong for a server, where they would burn the cores that the event
    loop needs between calls (measured: bench/results/load.md). Same bytes, same options
    as Generator's session (the model was verified when it was loaded), one setting more.
    """
    import onnxruntime as ort

    if generator.providers[0] != "CPUExecutionProvider":
        return
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    generator.session = ort.InferenceSession(model_bytes, options,
                                             providers=["CPUExecutionProvider"])


def _error(status: int, message: str, parameter: str | None = None) -> JSONResponse:
    body: dict = {"error": message}
    if parameter is not None:
        body["parameter"] = parameter
    return JSONResponse(body, status_code=status)


def _integer(name: str, text: str, low: int, high: int) -> int:
    if not _INTEGER.fullmatch(text):
        raise UsageError(f"{name} must be an integer, got {describe(text)}")
    return _check_int(name, int(text), low, high)


@dataclass
class _Query:
    served: Served
    n: int
    seed: int
    labels: int | None          # what generate() takes
    resolved: ResolvedLabels    # what the batcher takes
    fmt: str
    truncation: float | None = None


class App:
    """The Starlette application over a set of loaded models."""

    def __init__(self, served: dict[str, Served], options: Options):
        self.served, self.options = served, options
        self.default = _registry.DEFAULT_MODEL if _registry.DEFAULT_MODEL in served \
            else next(iter(served))
        ordered = [served[self.default]] + [s for n, s in served.items() if n != self.default]
        self.models_bytes = json.dumps({"models": [s.card for s in ordered]}).encode()
        routes: list[BaseRoute] = [
            Route("/healthz", self.healthz),
            Route("/v1/models", self.models),
            Route("/v1/generate", self.generate),
            Route("/models/{file}", self.model_file),
        ]
        if options.web is not None:
            routes.append(Mount("/", StaticFiles(directory=options.web, html=True)))
        else:
            routes.append(Route("/", self.no_page))
        middleware = [Middleware(CORSMiddleware, allow_origins=list(options.allow_origins),
                                 allow_methods=["GET"])] if options.allow_origins else []
        self.app = Starlette(routes=routes, middleware=middleware, lifespan=self.lifespan,
                             exception_handlers={HTTPException: self.http_error})

    @asynccontextmanager
    async def lifespan(self, app):
        for served in self.served.values():
            if served.batcher is not None:
                served.batcher.start()
        yield
        # uvicorn has drained the requests in flight by now.
        for served in self.served.values():
            if served.batcher is not None:
                served.batcher.stop(timeout=5)
                stats = served.batcher.stats
                if stats.calls:
                    _log.info("batcher %s: %d requests, %d images in %d onnxruntime calls "
                              "(%.1f images per call)", served.name, stats.requests,
                              stats.images, stats.calls, stats.images / stats.calls)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own errors (no such route, method not allowed) as JSON."""
        status = getattr(exc, "status_code", 500)
        what = "not found" if status == 404 else str(getattr(exc, "detail", "error")).lower()
        return _error(status, f"{what}: {request.method} {request.url.path}")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        return Response(self.models_bytes, media_type="application/json")

    async def model_file(self, request: Request) -> Response:
        file = request.path_params["file"]
        name, _, suffix = file.rpartition(".")
        served = self.served.get(name)
        if served is None or suffix not in ("onnx", "json"):
            files = ", ".join(f"{n}.onnx, {n}.json" for n in self.served)
            return _error(404, f"no model file {describe(file)} here; served: {files}")
        headers = {"ETag": served.etag(suffix), "Cache-Control": "no-cache"}
        if headers["ETag"] in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if suffix == "json":
            return Response(served.card_bytes, media_type="application/json", headers=headers)
        return Response(served.model_bytes, media_type="application/octet-stream",
                        headers=headers)

    async def no_page(self, request: Request) -> Response:
        return PlainTextResponse(
            "ganlite serve: no web page here (no web/ folder with index.html was found; "
            "start the server with --web DIR).\nThe API: /healthz, /v1/models, "
            "/v1/generate?model=&n=&seed=&digit=|class=&format=png|npy&truncation=, "
            "/models/NAME.onnx, /models/NAME.json\n")

    def parse(self, request: Request) -> _Query:
        """The query of /v1/generate, checked by the library's own rules.

        Raises:
            ParameterError: naming the first bad parameter.
        """
        query: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            if key not in PARAMETERS:
                raise ParameterError(key, f"unknown parameter {describe(key)}; the parameters "
                                          f"are {', '.join(PARAMETERS)}")
            if key in query:
                raise ParameterError(key, f"{key} is given more than once")
            query[key] = value

        name = query.get("model", self.default)
        served = self.served.get(name)
        if served is None:
            raise ParameterError("model", f"unknown model {describe(name)}; served models: "
                                          f"{', '.join(self.served)}")
        fmt = query.get("format", "png")
        if fmt not in FORMATS:
            raise ParameterError("format", f"format must be one of {', '.join(FORMATS)}, got "
                                           f"{describe(fmt)}")
        max_n = min(self.options.max_n, MAX_GRID_IMAGES) if fmt == "png" else self.options.max_n
        try:
            n = _integer("n", query.get("n", "1"), 1, max_n)
        except UsageError as e:
            grid = " (a png grid; use format=npy for more)" \
                if fmt == "png" and max_n < self.options.max_n else ""
            raise ParameterError("n", f"{e}{grid}") from None
        try:
            seed = _integer("seed", query.get("seed", "0"), 0, _latents.MAX_SEED)
        except UsageError as e:
            raise ParameterError("seed", str(e)) from None

        generator = served.generator
        labels: int | None = None
        if "digit" in query and "class" in query:
            raise ParameterError("class", "give digit or class, not both")
        if "digit" in query:
            try:
                labels = _integer("digit", query["digit"], -2**31, 2**31)
            except UsageError as e:
                raise ParameterError("digit", str(e)) from None
        elif "class" in query:
            text = query["class"]
            try:
                if len(text) > _card.MAX_TEXT:
                    raise UsageError(f"class {describe(text)} is not a class of model "
                                     f"{generator.name!r}")
                labels = generator.class_index(text)
            except UsageError as e:
                raise ParameterError("class", str(e)) from None
        try:
            resolved = generator.check_args(n, seed, labels)[4]
        except UsageError as e:
            raise ParameterError("class" if "class" in query else "digit", str(e)) from None
        return _Query(served, n, seed, labels, resolved, fmt,
                      _truncation(query.get("truncation")))

    async def generate(self, request: Request) -> Response:
        try:
            query = self.parse(request)
        except ParameterError as e:
            return _error(400, str(e), e.parameter)
        served = query.served
        try:
            if served.batcher is not None:
                images = await served.batcher.generate(query.n, query.seed, query.resolved,
                                                       query.truncation)
            else:
                images = await run_in_threadpool(functools.partial(
                    served.generator.generate, query.n, query.seed, labels=query.labels,
                    truncation=query.truncation))
            if query.n <= _INLINE_ENCODE[query.fmt]:
                body = _encode(images, query.fmt)
            else:
                body = await run_in_threadpool(_encode, images, query.fmt)
        except GanliteError as e:
            _log.error("generate failed: %s", e)
            return _error(500, str(e))
        except MemoryError:
            _log.error("generate failed: out of memory (n=%d)", query.n)
            return _error(503, f"out of memory for n={query.n}: try a smaller n")
        return Response(body, media_type="image/png" if query.fmt == "png"
                        else "application/octet-stream")


def _truncation(text: str | None) -> float | None:
    """The truncation parameter: absent (off) or a decimal number psi, 0 < psi <= 10."""
    if text is None:
        return None
    try:
        if not _DECIMAL.fullmatch(text):
            raise ValueError(text)
        return check_truncation(float(text))
    except (ValueError, UsageError):
        raise ParameterError("truncation", f"truncation must be a number greater than 0 and "
                                           f"at most {MAX_TRUNCATION:g}, got "
                                           f"{describe(text)}") from None


def _encode(images: np.ndarray, fmt: str) -> bytes:
    """A grid PNG (make_grid's layout, one pixel per pixel) or the .npy file of images."""
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, images, allow_pickle=False)
        return buf.getvalue()
    return png_bytes(make_grid(images))


def serve(host: str, port: int, models: Sequence[str], device: str = "auto",
          options: Options = Options(), access_log: bool = True) -> None:
    """Load the models, then answer HTTP on host:port until SIGTERM or Ctrl-C, which drain
    the requests in flight (up to DRAIN_SECONDS) before the process ends.

    Raises:
        UsageError: a bad model, or a web folder without index.html.
        ModelError: a model file that cannot be used.
    """
    if options.web is not None and not (options.web / "index.html").is_file():
        raise UsageError(f"web folder {options.web} has no index.html")
    served = load_models(models, device, options.max_batch, options.batch_wait_ms,
                         options.batching)
    app = App(served, options).app
    config = uvicorn.Config(app, host=host, port=port, access_log=access_log,
                            timeout_graceful_shutdown=DRAIN_SECONDS, lifespan="on",
                            server_header=False)
    server = uvicorn.Server(config)
    first = next(iter(served.values())).generator
    batching = (f"batching up to {options.max_batch} images per call, "
                f"{options.batch_wait_ms:g} ms wait" if options.batching else "batching off")
    _log.info("ganlite serve: %s on %s; %s; n <= %d per request",
              ", ".join(served), first.providers[0], batching, options.max_n)
    _log.info("web page: %s", options.web if options.web is not None
              else "none (no web folder with index.html; see --web)")
    # uvicorn drains on SIGTERM / SIGINT, then restores these handlers and raises the
    # signal again: with handlers that do nothing there, a drained server exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    server.run()
