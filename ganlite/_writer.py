"""Writing a run of generated images to a folder: resumable, atomic, never clobbering.

The folder gets a manifest (.ganlite-run.json) naming the model, seed, count and labels.
Rerunning the same command completes a partial folder (image i is a pure function of
(model, seed, i), so the bytes equal an uninterrupted run's); a different run into the
same folder is refused unless overwrite=True.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from ._errors import OutputError
from ._images import atomic_write_bytes, png_bytes
from ._model import Generator

MANIFEST = ".ganlite-run.json"
FORMATS = ("png", "npy")


def file_name(index: int, n: int, label: int | None) -> str:
    width = max(4, len(str(n - 1)))
    return f"{index:0{width}d}" + (f"_{label}" if label is not None else "") + ".png"


def _prepare_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"--out {out}: cannot create folder ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: folder is not writable")


def _check_manifest(out: Path, manifest: dict, overwrite: bool) -> None:
    path = out / MANIFEST
    if path.exists() and not overwrite:
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != manifest:
            what = (f"model {previous.get('model')!r}, seed {previous.get('seed')}, "
                    f"n {previous.get('n')}" if isinstance(previous, dict) else "unknown")
            raise OutputError(f"--out {out} holds images of another run ({what}); pass "
                              f"--overwrite to replace them, or choose another folder")
    elif not path.exists() and not overwrite and any(
            p.suffix in (".png", ".npy") for p in out.iterdir()):
        raise OutputError(f"--out {out} already holds images not written by ganlite; pass "
                          f"--overwrite to write into it anyway, or choose another folder")
    atomic_write_bytes(path, json.dumps(manifest, indent=1).encode())


def write_images(generator: Generator, n: int, out: str | os.PathLike, seed: int = 0, *,
                 labels=None, batch_size: int = 256, fmt: str = "png",
                 overwrite: bool = False, workers: int | None = None,
                 progress: Callable[[int], None] | None = None) -> int:
    """Generate n images into folder `out`; return how many files were newly written.

    png: one file per image, named 0042.png (0042_7.png for conditional models, 7 being
    the class). npy: images.npy uint8 [n, 28, 28] (and labels.npy), written atomically.
    progress(k) is called as each batch of k images is done (or found already done).
    """
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    # Validate before touching the folder; class names become class numbers.
    n, seed, _, batch_size, labels = generator.check_args(n, seed, labels, 0, batch_size)
    _prepare_folder(out)
    label_spec = labels if labels is None or np.ndim(labels) == 0 else labels.tolist()
    manifest = {"model": generator.name, "model_sha256": generator.card["model_sha256"],
                "seed": int(seed), "n": int(n), "labels": label_spec, "format": fmt}
    _check_manifest(out, manifest, overwrite)
    if fmt == "npy":
        return _write_npy(generator, n, out, seed, labels, batch_size, progress)

    existing = set() if overwrite else {p.name for p in out.iterdir()}
    written = 0
    # One writer thread overlaps PNG encoding with inference; more threads measured no
    # faster on 2 cores (PIL holds the GIL for 28x28 encodes, onnxruntime uses the cores).
    with ThreadPoolExecutor(max_workers=workers or 1) as pool:
        pending = []
        for batch in generator.batches(n, seed, labels=labels, batch_size=batch_size):
            names = [file_name(batch.start + k, n,
                               None if batch.labels is None else int(batch.labels[k]))
                     for k in range(len(batch.images))]
            todo = [(name, image) for name, image in zip(names, batch.images)
                    if name not in existing]
            written += len(todo)
            pending.append((len(names), pool.submit(_write_pngs, out, todo)))
            # Bounded memory: at most a few batches in flight.
            while len(pending) > 2:
                count, future = pending.pop(0)
                future.result()
                if progress:
                    progress(count)
        for count, future in pending:
            future.result()
            if progress:
                progress(count)
    return written


def _write_pngs(out: Path, items) -> None:
    for name, image in items:
        atomic_write_bytes(out / name, png_bytes(image, compress_level=1))


def _write_npy(generator, n, out, seed, labels, batch_size, progress) -> int:
    """Stream batches into images.npy (and labels.npy) without holding them all."""
    targets = [("images.npy", (n, 28, 28), "|u1")]
    if generator.conditional:
        targets.append(("labels.npy", (n,), "<i8"))
    tmps = {name: out / f".{name}.{os.getpid()}.tmp" for name, _, _ in targets}
    files = {}
    try:
        for name, shape, descr in targets:
            files[name] = open(tmps[name], "wb")
            np.lib.format.write_array_header_1_0(
                files[name], {"descr": descr, "fortran_order": False, "shape": shape})
        for batch in generator.batches(n, seed, labels=labels, batch_size=batch_size):
            files["images.npy"].write(np.ascontiguousarray(batch.images, np.uint8).tobytes())
            if "labels.npy" in files:
                files["labels.npy"].write(batch.labels.astype("<i8").tobytes())
            if progress:
                progress(len(batch.images))
        for name, f in files.items():
            f.close()
            os.replace(tmps[name], out / name)
    except BaseException:
        for name, f in files.items():
            f.close()
            tmps[name].unlink(missing_ok=True)
        raise
    return len(targets)
