"""Reading a run folder back: a single run or the K shards of one, PNG files or npy
arrays, as one array (read_run) or as a stream of batches (iter_run). A folder is read only
when it holds the whole run; anything missing or mixed is one OutputError naming it."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _files, _images, _shards
from ._errors import ImageInputError, OutputError, UsageError, describe
from ._model import MAX_BATCH_SIZE
from ._writer import FORMATS, MANIFEST, file_name, image_index

Read = Callable[[int, int], tuple[np.ndarray, "np.ndarray | None"]]
# (lo, hi, shard): images lo .. hi - 1 of the run, written by that shard (None: not sharded).
Range = tuple[int, int, "_shards.Shard | None"]


@dataclass(frozen=True)
class _Source:
    """Images lo .. hi - 1 of the run, read by read(a, b) (a, b relative to lo)."""
    lo: int
    hi: int
    read: Read


@dataclass(frozen=True)
class _RunView:
    folder: Path
    n: int
    conditional: bool
    sources: list[_Source]


def read_run(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a whole run back from its folder, as the single run would give it: a run that
    write_images (or `ganlite generate`) wrote, or the K shards of one, as PNG files or
    npy arrays.

    Args:
        folder: the run's folder.

    Returns:
        (images, labels): images uint8 [n, 28, 28] in index order; labels int64 [n] for
        a conditional model's run (the class of each image), None for an unconditional one.

    Raises:
        UsageError: `folder` is not a path.
        OutputError: the folder is not a complete run: no manifest, shards or files
            missing (named), damaged files, or files of two different runs.
    """
    view = _open(folder)
    images = np.empty((view.n, 28, 28), np.uint8)
    labels = np.empty(view.n, np.int64) if view.conditional else None
    for source in view.sources:
        part, part_labels = source.read(0, source.hi - source.lo)
        images[source.lo:source.hi] = part
        if labels is not None and part_labels is not None:
            labels[source.lo:source.hi] = part_labels
    return images, labels


def iter_run(folder: str | os.PathLike, batch_size: int = 1024
             ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Stream a run folder (single or sharded, PNG or npy) in index order, batch_size
    images at a time, without holding the whole run in memory (npy files are memory
    mapped; PNG files are decoded a batch at a time). The whole folder is checked before
    the first batch: a run with anything missing is refused, not read halfway.

    Args:
        folder: the run's folder.
        batch_size: images per batch (the last one may be shorter), 1 to 16,384.

    Returns:
        An iterator of (images uint8 [b, 28, 28], labels int64 [b] or None), batches that
        concatenate to read_run(folder).

    Raises:
        UsageError: a bad argument.
        OutputError: as read_run, when the iterator is created (before the first batch),
            or a file that changes while it is read.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise UsageError(f"batch_size must be an integer between 1 and {MAX_BATCH_SIZE}, "
                         f"got {describe(batch_size)}")
    return _batches(_open(folder), int(batch_size))


def _batches(view: _RunView, batch_size: int
             ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    sources = iter(view.sources)
    source = next(sources, None)
    for lo in range(0, view.n, batch_size):
        hi = min(lo + batch_size, view.n)
        images, labels = [], []
        at = lo
        while at < hi:   # a batch may span the end of one shard and the start of the next
            assert source is not None
            if at >= source.hi:
                source = next(sources, None)
                continue
            end = min(hi, source.hi)
            part, part_labels = source.read(at - source.lo, end - source.lo)
            images.append(part)
            if part_labels is not None:
                labels.append(part_labels)
            at = end
        yield (images[0] if len(images) == 1 else np.concatenate(images),
               (np.concatenate(labels) if view.conditional else None))


# -- the folder ---------------------------------------------------------------------------
def _open(folder: str | os.PathLike) -> _RunView:
    path = _files.as_path(folder, "run folder")
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        raise OutputError(f"run folder {path} does not exist") from None
    except NotADirectoryError:
        raise OutputError(f"run folder {path} is not a folder") from None
    except OSError as e:
        raise _files.os_error(path, e, "cannot list folder") from None
    shards = {name: s for name in names
              if (s := _shards.parse_name(_shards.MANIFEST_NAME, name)) is not None}
    if MANIFEST in names and shards:
        raise OutputError(f"{path}: holds a non-sharded run ({MANIFEST}) and shards "
                          f"({min(shards)}, ...) of another: mixed runs")
    if MANIFEST in names:
        manifest = _manifest(path, MANIFEST)
        n, fmt = manifest["n"], manifest["format"]
        ranges: list[Range] = [(0, n, None)]
    elif shards:
        manifest, ranges = _shard_ranges(path, shards)
        n, fmt = manifest["n"], manifest["format"]
    else:
        raise OutputError(f"{path}: no ganlite run manifest ({MANIFEST}, or "
                          f".ganlite-run-IIIII-of-KKKKK.json for shards) in it: not a run "
                          f"folder, or no run has started there")
    conditional = manifest["labels"] is not None
    if fmt == "npy":
        sources = [_npy_source(path, lo, hi, part, conditional) for lo, hi, part in ranges]
    else:
        sources = _png_sources(path, names, n, conditional, ranges)
    return _RunView(path, n, conditional, sources)


def _manifest(folder: Path, name: str) -> dict:
    try:
        manifest = json.loads((folder / name).read_text())
    except OSError as e:
        raise _files.os_error(folder / name, e, "cannot read") from None
    except ValueError:
        raise OutputError(f"{folder / name}: damaged run manifest (not JSON)") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("n"), int) \
            or isinstance(manifest["n"], bool) or manifest["n"] < 1 \
            or manifest.get("format") not in FORMATS or "labels" not in manifest:
        raise OutputError(f"{folder / name}: damaged run manifest (no valid n, format or "
                          f"labels)")
    return manifest


def _shard_ranges(folder: Path, shards: dict[str, _shards.Shard]
                  ) -> tuple[dict, list[Range]]:
    """The run the shard manifests describe, and each shard's range; refuses shards of
    different runs and names the missing ones."""
    counts = sorted({s.count for s in shards.values()})
    if len(counts) > 1:
        raise OutputError(f"{folder}: holds shards of runs of {counts[0]} and {counts[1]} "
                          f"shards: mixed runs")
    count = counts[0]
    manifests = {s.index: _manifest(folder, name) for name, s in sorted(shards.items())}
    first = manifests[min(manifests)]
    run = {k: v for k, v in first.items() if k != "shard"}
    for index, manifest in manifests.items():
        record = manifest.get("shard")
        if {k: v for k, v in manifest.items() if k != "shard"} != run:
            differs = ", ".join(sorted(k for k in set(run) | set(manifest) if k != "shard"
                                       and manifest.get(k) != run.get(k)))
            raise OutputError(f"{folder}: shards {min(manifests)} and {index} of {count} "
                              f"are of different runs (differ in {differs}): mixed runs")
        if record != _shards.Shard(index, count).record(run["n"]):
            raise OutputError(f"{folder}: the manifest of shard {index} of {count} does not "
                              f"describe that shard (damaged)")
    missing = [i for i in range(count) if i not in manifests]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise OutputError(f"{folder}: incomplete sharded run: {len(missing)} of {count} "
                          f"shards never started (no manifest): {shown}; run them")
    ranges: list[Range] = []
    for index in range(count):
        s = _shards.Shard(index, count)
        ranges.append((*s.range(run["n"]), s))
    return first, ranges


def _npy_source(folder: Path, lo: int, hi: int, part: _shards.Shard | None,
                conditional: bool) -> _Source:
    names = ("images.npy", "labels.npy") if part is None else \
        (part.part_name("images"), part.part_name("labels"))
    whose = "" if part is None else f" (shard {part.index} of {part.count}: rerun it)"
    images = _load(folder / names[0], (hi - lo, 28, 28), np.uint8, whose)
    labels = _load(folder / names[1], (hi - lo,), np.int64, whose) if conditional else None

    def read(a: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        return (np.array(images[a:b]),
                None if labels is None else np.array(labels[a:b]))
    return _Source(lo, hi, read)


def _load(path: Path, shape: tuple[int, ...], dtype: type, whose: str) -> np.ndarray:
    """An npy file of the run, memory mapped, checked against the shape it must have."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise OutputError(f"{path}: missing, the run is incomplete{whose}") from None
    except OSError as e:
        raise _files.os_error(path, e, "cannot read") from None
    except ValueError as e:
        raise OutputError(f"{path}: not a readable npy file ({e})") from None
    if array.shape != shape or array.dtype != np.dtype(dtype):
        raise OutputError(f"{path}: holds {array.dtype} {list(array.shape)}, expected "
                          f"{np.dtype(dtype)} {list(shape)}: not this run's file")
    return array


def _png_sources(folder: Path, names: list[str], n: int, conditional: bool,
                 ranges: list[Range]) -> list[_Source]:
    """One source per range, after checking that every image of the run is there once,
    under the name the run gives it, and that no other run's image is."""
    width = len(file_name(0, n, None)) - 4
    labels = np.full(n, -1, np.int64)
    files: list[str | None] = [None] * n
    for name in names:
        i = image_index(name)
        if i is None:
            continue
        stem = name[:-4]
        label = stem.partition("_")[2]
        if len(stem.partition("_")[0]) != width or i >= n or bool(label) != conditional \
                or files[i] is not None:
            raise OutputError(f"{folder}: holds {name}, which is not an image of this run "
                              f"(n {n}, {'conditional' if conditional else 'unconditional'})"
                              f": mixed runs")
        files[i] = name
        if label:
            labels[i] = int(label)
    missing = [i for i in range(n) if files[i] is None]
    if missing:
        where = ""
        for lo, hi, part in ranges:
            if part is not None and lo <= missing[0] < hi:
                where = f" (shard {part.index} of {part.count}: rerun it)"
        raise OutputError(f"{folder}: incomplete run: {len(missing):,} of {n:,} images "
                          f"missing, the first being image {missing[0]}{where}")

    def source(lo: int, hi: int) -> _Source:
        def read(a: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
            images = np.empty((b - a, 28, 28), np.uint8)
            for k in range(a, b):
                name = files[lo + k]
                assert name is not None
                try:
                    images[k - a] = _images._read_gray28(folder / name)
                except ImageInputError as e:
                    raise OutputError(str(e)) from None
            return images, (labels[lo + a:lo + b].copy() if conditional else None)
        return _Source(lo, hi, read)
    return [source(lo, hi) for lo, hi, _ in ranges]
