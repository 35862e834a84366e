"""Bulk generation on Ray Data (the optional extra: pip install "ganlite[ray]").

    import ganlite.ray
    ds = ganlite.ray.generate(1_000_000, seed=1)          # a lazy ray.data.Dataset
    ds.write_parquet("s3://bucket/digits/")               # or any Ray Data writer
    ganlite.ray.write(1_000_000, "digits/", fmt="npy", seed=1)   # what the CLI runs

The dataset is built the way Ray documents offline batch inference:
`ray.data.range(n).map_batches(<callable class>, compute=ActorPoolStrategy(...))`, each
actor holding one ganlite Generator (one onnxruntime session, one inference thread, one
CPU). Image i is a pure function of (model, seed, i), exactly as in a single process: an
actor decodes each contiguous run of indices of its batch from `ganlite.latents.draw`
with the Generator's own label rule, so however Ray cuts and orders the batches, the
bytes are the single process's.

Columns: `index` (int64), `label` (int64; conditional models only: an unconditional
model's dataset has no label column rather than a sentinel value), `image` (uint8
[28, 28], 0 = black, 255 = white). Rows come in no particular order: sort by `index`.
"""
from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from ._errors import (
    DeviceError,
    GanliteError,
    ImageInputError,
    IntegrityError,
    ModelError,
    OutputError,
    UnknownModelError,
    UsageError,
    describe,
)

try:
    import pyarrow.fs as pafs
    import ray
    import ray.data
    from ray.data.datasource import BlockBasedFileDatasink, RowBasedFileDatasink
except ImportError as e:   # ray, or one of what ray[data] brings (pyarrow, pandas)
    raise UsageError(f'ganlite.ray needs Ray Data: pip install "ganlite[ray]" (cannot '
                     f"import {e.name or e})") from None

from . import _card, _png
from ._model import MAX_BATCH_SIZE, Generator, Labels, ResolvedLabels
from ._writer import MANIFEST, _label_rule, file_name
from .latents import check_truncation

__all__ = ["FORMATS", "generate", "write", "RayWriteResult"]

FORMATS = ("parquet", "npy", "png")
# Rows per Ray batch (one actor call): large enough that Ray's per-task cost is small
# against the inference (bench/ray_rate.py), small enough to stream (3 MB of images).
DEFAULT_BATCH_SIZE = 4096
# Images per onnxruntime call inside an actor: the local engine's default, as fast as
# larger calls and with small buffers (bench/results/speed.md).
_CALL_SIZE = 256

Concurrency = Union[int, tuple[int, int], None]


class _Decoder:
    """The callable class of map_batches: one Generator (one onnxruntime session) per Ray
    actor. Constructed on the actor from the model's bytes, so that a cluster's nodes
    need neither the model file nor a shared file system."""

    def __init__(self, shipped: list, shown_path: str, seed: int, threads: int,
                 truncation: float | None = None):
        # [ObjectRef of (model bytes, resolved labels)]: a reference inside a list is not
        # resolved by Ray before the call, so the actor's arguments stay small (Ray warns
        # about, and cannot restart, actors whose arguments live in the object store).
        model_bytes, labels = ray.get(shipped[0])
        folder = tempfile.mkdtemp(prefix="ganlite-ray-")
        try:
            path = Path(folder) / "model.onnx"
            path.write_bytes(model_bytes)
            self.generator = Generator(path, device="cpu", threads=threads)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        # Errors name the model the user gave, not the actor's temporary copy.
        self.generator.path = Path(shown_path)
        self.seed, self.labels, self.truncation = seed, labels, truncation

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        index = np.asarray(batch["id"], np.int64)
        images = np.empty((len(index), 28, 28), np.uint8)
        labels = np.empty(len(index), np.int64) if self.generator.conditional else None
        for lo, hi in _runs(index, _CALL_SIZE):
            # The Generator's own path from (seed, start, count, labels) to pixels:
            # latents.draw, its label rule, its checked session call.
            z, y = self.generator._inputs(self.seed, int(index[lo]), hi - lo, self.labels,
                                          self.truncation)
            images[lo:hi] = self.generator._run(z, y)
            if labels is not None and y is not None:
                labels[lo:hi] = y
        out: dict[str, np.ndarray] = {"index": index, "image": images}
        if labels is not None:
            out["label"] = labels
        return out


def _runs(index: np.ndarray, most: int) -> Iterator[tuple[int, int]]:
    """(lo, hi) positions of `index` such that index[lo:hi] are consecutive integers,
    at most `most` long: Ray may hand an actor any set of rows, in any order."""
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    bounds = [0, *breaks.tolist(), len(index)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        for lo in range(start, stop, most):
            yield lo, min(lo + most, stop)


def _check_concurrency(concurrency: Concurrency) -> tuple[int, int] | None:
    def positive(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    if concurrency is None:
        return None
    if isinstance(concurrency, int) and positive(concurrency):
        return concurrency, concurrency
    if isinstance(concurrency, tuple) and len(concurrency) == 2 \
            and all(positive(c) for c in concurrency) and concurrency[0] <= concurrency[1]:
        return int(concurrency[0]), int(concurrency[1])
    raise UsageError(f"concurrency must be a number of actors (>= 1) or (min, max) with "
                     f"1 <= min <= max, got {describe(concurrency)}")


def _prepare(n: int, seed: int, model: str | os.PathLike | None, labels: Labels,
             batch_size: int) -> tuple[Generator, bytes, int, int, int, ResolvedLabels]:
    """Load and check the model and the arguments in this process, before any actor
    starts: a bad argument is one UsageError here, not a failed Ray job."""
    generator = Generator(model, device="cpu")
    n, seed, _, _, resolved = generator.check_args(n, seed, labels)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
            or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise UsageError(f"batch_size must be an integer between 1 and {MAX_BATCH_SIZE}, "
                         f"got {describe(batch_size)}")
    model_bytes = _card.read_file(generator.path)
    # The bytes the actors get are the ones this process verified (same seal).
    if _card.read(generator.path, model_bytes).get("model_sha256") != \
            generator.card.get("model_sha256"):
        raise ModelError(f"{generator.path} changed while it was being loaded")
    return generator, model_bytes, n, seed, batch_size, resolved


def _dataset(generator: Generator, model_bytes: bytes, n: int, seed: int,
             resolved: ResolvedLabels, truncation: float | None, batch_size: int,
             concurrency: Concurrency) -> ray.data.Dataset:
    pool = _check_concurrency(concurrency)
    if pool is None:
        # An autoscaling pool: Ray Data keeps CPUs for the read and write tasks. A fixed
        # pool of one actor per CPU would take every CPU before the read task gets one,
        # and wait forever (ray-project/ray#44687).
        cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else None
        strategy = ray.data.ActorPoolStrategy(min_size=1, max_size=cpus)
    else:
        strategy = ray.data.ActorPoolStrategy(min_size=pool[0], max_size=pool[1])
    return ray.data.range(n).map_batches(
        _Decoder,
        fn_constructor_kwargs={"shipped": [ray.put((model_bytes, resolved))],
                               "shown_path": str(generator.path), "seed": seed,
                               "threads": 1, "truncation": truncation},
        batch_size=batch_size, compute=strategy, num_cpus=1,
        udf_modifying_row_count=False)


def generate(n: int, seed: int = 0, model: str | os.PathLike | None = None,
             labels: Labels = None, *, truncation: float | None = None,
             batch_size: int = DEFAULT_BATCH_SIZE,
             concurrency: Concurrency = None) -> ray.data.Dataset:
    """A lazy Ray Dataset of n generated images: image i is the single process's image i
    for the same (model, seed), byte for byte.

    Args:
        n: how many images (rows), >= 1.
        seed: 0 .. 2**63 - 1.
        model: a built-in name, a path to an .onnx file (read here and shipped to the
            actors: the cluster's nodes need not have it), or None (the default model).
        labels: conditional models, as Generator.generate: None (a random class per
            image), a class (number or name), one class per image (n of them), or a
            LabelCycle.
        truncation: None (off) or psi, as Generator.generate.
        batch_size: rows per Ray batch (one actor call), decoded 256 images per
            onnxruntime call.
        concurrency: actors: a number (a fixed pool), (min, max) (an autoscaling pool),
            or None: from 1 up to the cluster's CPUs (read when Ray is initialized).
            Each actor takes 1 CPU and runs onnxruntime on one thread.

    Returns:
        A ray.data.Dataset with columns index (int64), label (int64; conditional models
        only) and image (uint8 [28, 28]); rows in no particular order.

    Raises:
        UsageError: a bad argument (found here, before Ray runs anything).
        ModelError: the model is missing, modified or not a ganlite generator.
    """
    generator, model_bytes, n, seed, batch_size, resolved = _prepare(n, seed, model, labels,
                                                                     batch_size)
    return _dataset(generator, model_bytes, n, seed, resolved, check_truncation(truncation),
                    batch_size, concurrency)


# -- writing -------------------------------------------------------------------------------

class _PngDatasink(RowBasedFileDatasink):
    """One PNG file per image, named and encoded as the local engine writes them
    (0042_7.png, ganlite's PNG encoder): the files equal `ganlite generate`'s, byte for
    byte. A file's name depends only on its image, so a task that Ray retries rewrites
    the same files with the same bytes."""

    def __init__(self, path: str, n: int, **kwargs: Any):
        super().__init__(path, file_format="png", **kwargs)
        self.n = n

    def write_block(self, block, block_index, ctx) -> None:
        table = block.to_numpy(["index", "image", "label"]) if "label" in \
            block.schema().names else block.to_numpy(["index", "image"])
        index, images = table["index"], np.asarray(table["image"], np.uint8)
        labels = table.get("label")
        for i, data in enumerate(_png.encode_gray(images)):
            label = None if labels is None else int(labels[i])
            name = file_name(int(index[i]), self.n, label)
            with self.open_output_stream(posixpath.join(self.path, name)) as file:
                file.write(data)


class _NpyDatasink(BlockBasedFileDatasink):
    """One .npy file per write task: a structured array with fields index (int64),
    label (int64, conditional models) and image (uint8 [28, 28]), so that a part is
    self-describing (Ray's write_numpy writes one column, which would lose the index)."""

    def __init__(self, path: str, **kwargs: Any):
        super().__init__(path, file_format="npy", **kwargs)

    def write_block_to_file(self, block, file) -> None:
        names = [c for c in ("index", "label", "image") if c in block.schema().names]
        columns = block.to_numpy(names)
        record = np.empty(block.num_rows(), _npy_dtype("label" in names))
        for name in names:
            record[name] = columns[name]
        np.save(file, record)


def _npy_dtype(conditional: bool) -> np.dtype:
    fields: list[tuple[Any, ...]] = [("index", "<i8")]
    if conditional:
        fields.append(("label", "<i8"))
    fields.append(("image", "u1", (28, 28)))
    return np.dtype(fields)


@dataclass(frozen=True)
class RayWriteResult:
    """What write() did.

    Attributes:
        out: where the files went (a local path or a URI such as s3://bucket/path).
        n: images written.
        fmt: parquet, npy or png.
        files: data files in `out` (the manifest not counted).
    """
    out: str
    n: int
    fmt: str
    files: int


def _filesystem(out: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow file system, path in it) of a local path or a URI (s3://, gs://, ...)."""
    if "://" not in out:
        return pafs.LocalFileSystem(), os.path.abspath(out)
    try:
        return pafs.FileSystem.from_uri(out)
    except (ValueError, OSError) as e:
        raise UsageError(f"output {out!r} is not a path or a URI that pyarrow can write "
                         f"to ({_first_line(e)})") from None


def _check_output(out: str) -> tuple[pafs.FileSystem, str]:
    """(file system, path) of `out`, a missing or empty folder. Ray's writers add files
    beside what is there: a second run into the same place would mix two runs."""
    fs, path = _filesystem(out)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            return fs, path
        if info.type != pafs.FileType.Directory:
            raise OutputError(f"{out} exists and is not a folder")
        there = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    except OSError as e:
        raise OutputError(f"{out}: cannot read it ({_first_line(e)})") from None
    if there:
        first = posixpath.basename(there[0].path)
        raise OutputError(f"{out} is not empty ({len(there)} entries, e.g. {first}); the ray "
                          f"engine writes into a new or empty folder only")
    return fs, path


def write(n: int, out: str | os.PathLike, *, fmt: str = "parquet", seed: int = 0,
          model: str | os.PathLike | None = None, labels: Labels = None,
          truncation: float | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
          concurrency: Concurrency = None) -> RayWriteResult:
    """Generate n images on Ray and write them with Ray Data's writers to a local folder
    or any file system Ray supports (s3://bucket/path, gs://..., ...).

    parquet: Ray's write_parquet, columns index, label (conditional models), image.
    npy: one .npy part per write task, a structured array (fields index, label, image).
    png: one file per image, the local engine's names and bytes (0042_7.png).
    The folder gets .ganlite-run.json (model, seed, n, label rule, format) last: a folder
    without it holds an incomplete run. Uses the running Ray instance, or starts one as
    ray.init() does (RAY_ADDRESS names a cluster).

    Raises:
        UsageError: a bad argument.
        ModelError: the model cannot be used, or failed in an actor.
        OutputError: `out` is not empty, or cannot be written (also from inside Ray).
        GanliteError: Ray failed for another reason (its first line).
    """
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise UsageError(f"unknown format {describe(fmt)}; choose one of {', '.join(FORMATS)}")
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out):
        raise UsageError(f"the output must be a path or a URI, got {describe(out)}")
    out = str(os.fspath(out))
    generator, model_bytes, n, seed, batch_size, resolved = _prepare(n, seed, model, labels,
                                                                     batch_size)
    psi = check_truncation(truncation)
    fs, path = _check_output(out)
    # A local path goes to Ray absolute: its tasks run in worker processes whose current
    # folder is not this one's.
    target = out if "://" in out else path
    dataset = _dataset(generator, model_bytes, n, seed, resolved, psi, batch_size, concurrency)
    try:
        if fmt == "parquet":
            dataset.write_parquet(target)
        elif fmt == "npy":
            dataset.write_datasink(_NpyDatasink(target, dataset_uuid=dataset._uuid))
        else:
            dataset.write_datasink(_PngDatasink(target, n))
    except Exception as e:  # noqa: BLE001  (Ray wraps what its tasks raise in its own types)
        raise _from_ray(e) from None
    manifest = {"model": generator.name, "model_sha256": generator.card.get("model_sha256"),
                "seed": seed, "n": n, "labels": _label_rule(generator, resolved),
                "format": fmt, "engine": "ray"}
    if psi is not None:   # as the local engine's manifest: only when on
        manifest["truncation"] = psi
    try:
        # Listed before the manifest exists: it counts data files only.
        files = len(fs.get_file_info(pafs.FileSelector(path, recursive=True)))
        with fs.open_output_stream(posixpath.join(path, MANIFEST)) as stream:
            stream.write(json.dumps(manifest, indent=1).encode())
    except OSError as e:
        raise OutputError(f"{out}: cannot write {MANIFEST} ({_first_line(e)})") from None
    return RayWriteResult(out, n, fmt, files)


def _first_line(e: BaseException) -> str:
    text = _ANSI.sub("", str(e)).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


# An exception line of a Ray task's traceback: "ganlite._errors.ModelError: message".
_RAISED = re.compile(r"^([A-Za-z_][\w.]*): (.+)$", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERRORS = {cls.__name__: cls for cls in (GanliteError, UsageError, UnknownModelError,
                                         DeviceError, ImageInputError, ModelError,
                                         IntegrityError, OutputError)}
_OS_ERRORS = {cls.__name__ for cls in (OSError, FileNotFoundError, FileExistsError,
                                       PermissionError, IsADirectoryError,
                                       NotADirectoryError)}


def _from_ray(e: BaseException) -> GanliteError:
    """What a Ray job raised -> one GanliteError: the ganlite error a task or actor
    raised (same class, same message), an OSError of a writer as an OutputError, else
    Ray's own first line. Ray hands the driver the task's exception as the text of its
    traceback only (RayTaskError(UserCodeException)), so that text is read."""
    if isinstance(e, GanliteError):
        return e
    texts: list[str] = []
    item: BaseException | None = e
    while item is not None and len(texts) < 8:
        if item is e and isinstance(e, OSError) and not isinstance(e, ray.exceptions.RayError):
            # raised in this process, by a writer's set-up (pyarrow); a task's OSError
            # comes as a RayTaskError that is also an OSError, its message in the text
            return OutputError(_first_line(e))
        texts.append(_ANSI.sub("", str(item)))
        item = getattr(item, "cause", None) or item.__cause__
    raised = [(name, message.strip()) for text in texts
              for name, message in _RAISED.findall(text)]
    for name, message in raised:
        module, _, cls = name.rpartition(".")
        if module.startswith("ganlite") and cls in _ERRORS:
            return _ERRORS[cls](message)
    for name, message in raised:
        if name.rpartition(".")[2] in _OS_ERRORS:
            return OutputError(message)
    return GanliteError(f"Ray failed: {type(e).__name__}: {_first_line(e)}")


def _init_quietly() -> None:
    """Connect to Ray (RAY_ADDRESS, or a new local instance) for a command-line run:
    no dashboard, no worker logs on this terminal, Ray's own lines at warnings and up
    (errors reach the user once, as ganlite's one line). A running instance is kept."""
    import logging

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=True)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    # Ray Data logs a failed task's traceback at ERROR before raising it: the command
    # reports it once, as one line.
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _stderr_to_file() -> Iterator[Path]:
    """For a command-line run: what Ray prints on this process's stderr (its C++ core
    logs warnings at error level, e.g. that Ray Data's actors keep their arguments in the
    object store) goes to a temporary file, kept (and named in the error) only if the run
    fails; the command's own lines come after. Yields the file's path."""
    fd, name = tempfile.mkstemp(prefix="ganlite-ray-", suffix=".log")
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(fd, 2)
    os.close(fd)
    failed = True
    try:
        yield Path(name)
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if not failed or os.path.getsize(name) == 0:
            os.unlink(name)
