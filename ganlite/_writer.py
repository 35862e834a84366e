"""Writing a run of generated images to a folder: one writer at a time, resumable, atomic,
bounded, never mixing two runs.

The folder gets a manifest (.ganlite-run.json) naming the model, seed, count and the rule
that gave the labels. Rerunning the same command completes a partial folder (image i is a
pure function of (model, seed, i), so the bytes equal an uninterrupted run's) and rewrites
nothing that is already there; a different run into the same folder is refused unless
overwrite=True, which first removes every file a ganlite run writes (and nothing else).

A run may also be written as K shards (shard=(I, K), see _shards): K writers, each owning
one contiguous slice of the index range, its own manifest and its own lock, in one folder
at the same time. They hold the folder's lock shared, so a non-sharded run (which holds it
exclusively) and a sharded one keep each other out; shards of two different runs are
told apart by their manifests, compared while holding .ganlite-shards.lock.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import _files, _png, _shards
from ._errors import OutputError, UsageError, describe
from ._model import IMAGE_BYTES, Generator, Labels, ResolvedLabels
from .latents import check_truncation

MANIFEST = ".ganlite-run.json"
FORMATS = ("png", "npy")
# What ganlite writes into a run folder; only these are ever removed (overwrite, debris).
_IMAGE_FILE = re.compile(r"^\d{4,}(?:_\d+)?\.png$")
_NPY_FILES = ("images.npy", "labels.npy")
# A 28x28 grayscale PNG of ganlite._png is 100-880 bytes (812 raw bytes, stored
# uncompressed at worst, plus 68 bytes of signature, chunks and zlib framing); each file
# also takes at least one allocation unit of the file system.
_PNG_MAX_BYTES = 1024
# A shard holds the shards' manifest lock while it lists the folder and writes its
# manifest: a moment, even behind all its siblings; much longer means a stopped process.
_MANIFESTS_WAIT = 300.0


@dataclass(frozen=True)
class WriteResult:
    """What write_images did.

    Attributes:
        folder: the output folder.
        n: images in the run.
        written: images written by this call (0: the folder already held the whole run).
        resumed_at: the first image this call generated (0 for a fresh run; a fresh
            shard's first image for a shard; indices.stop when it generated none).
        others: files in the folder that ganlite did not write (left alone).
        shard: (index, count) of a sharded write, else None.
        indices: the images this call is responsible for: range(n), or the shard's slice.
    """
    folder: Path
    n: int
    written: int
    resumed_at: int
    others: tuple[str, ...]
    shard: tuple[int, int] | None = None
    indices: range = range(0)


def file_name(index: int, n: int, label: int | None) -> str:
    """The PNG name of image `index` of a run of n: 0042.png, or 0042_7.png (class 7)."""
    width = max(4, len(str(n - 1)))
    return f"{index:0{width}d}" + (f"_{label}" if label is not None else "") + ".png"


def is_run_file(name: str) -> bool:
    """True for the names a ganlite run writes: images, npy arrays, the manifest (and a
    sharded run's manifests, npy parts and locks)."""
    return bool(_IMAGE_FILE.match(name)) or name in _NPY_FILES or name == MANIFEST \
        or _shards.is_shard_file(name)


def image_index(name: str) -> int | None:
    """The index of a run's PNG file name (0042_7.png -> 42), or None."""
    return int(name.split("_")[0].split(".")[0]) if _IMAGE_FILE.match(name) else None


def _label_rule(generator: Generator, labels: ResolvedLabels) -> object:
    """The manifest's record of the labels: a rule, not one entry per image."""
    if not generator.conditional:
        return None
    if labels is None:
        return "random"
    if isinstance(labels, tuple):
        return {"cycle": list(labels)}
    if isinstance(labels, np.ndarray):
        digest = hashlib.sha256(labels.astype("<i8").tobytes()).hexdigest()
        return {"per_image_sha256": digest}
    return {"class": int(labels)}


def write_images(generator: Generator, n: int, out: str | os.PathLike, seed: int = 0, *,
                 labels: Labels = None, batch_size: int = 256, fmt: str = "png",
                 overwrite: bool = False, workers: int | None = None,
                 progress: Callable[[int], None] | None = None,
                 truncation: float | None = None,
                 shard: tuple[int, int] | None = None) -> WriteResult:
    """Generate n images into folder `out`, or complete an interrupted run there; or,
    with shard=(I, K), only shard I of the K shards of that run.

    png: one file per image, named 0042.png (0042_7.png for conditional models, 7 being
    the class). npy: images.npy uint8 [n, 28, 28] (and labels.npy int64 [n]), streamed to
    a temporary file that a rerun resumes, then renamed into place.

    Shards: shard I (counted from 0) of K holds images lo .. hi - 1, the K contiguous
    slices of range(n) in order, the first n % K one image longer (a shard is empty when
    K > n). Its PNG files have the names and bytes of the single run's; npy shards write
    images-IIIII-of-KKKKK.npy (and labels-...) holding their slice, so the parts
    concatenated in order are the single run's arrays. The K shards may run at the same
    time into one folder, each with its own manifest (.ganlite-run-IIIII-of-KKKKK.json) and
    lock; rerunning a shard completes it. A folder holds one run: shards refuse a folder
    holding a non-sharded run or shards of another run (other model, seed, n, K, labels or
    format), and a non-sharded run refuses a sharded folder unless overwrite. Read the
    folder back with read_run or iter_run.

    Args:
        generator: a loaded model.
        n: how many images in the run.
        out: the folder (created if missing).
        seed: same (model, seed) -> same bytes for image i.
        labels: conditional models: None (random classes), a class, one class per image,
            or a LabelCycle.
        batch_size: images per onnxruntime call.
        fmt: "png" or "npy".
        overwrite: replace another run's files in `out` (files ganlite did not write are
            left alone and listed in the result).
        workers: threads that encode and write the PNG files while the next batch is
            generated (default 1: more measured no faster on 2 cores).
        progress: called with k as each k images are done (or found already done).
        truncation: None (off) or psi, 0 < psi <= 10: the truncation trick (see
            Generator.batches); part of the run, recorded in the manifest.
        shard: (index, count): write only shard `index` (from 0) of `count` of this run.
            overwrite=True then replaces only this shard's own files (its manifest, its
            parts, the images of its range), never another shard's.

    Returns:
        A WriteResult.

    Raises:
        UsageError: a bad argument.
        OutputError: the folder cannot be written, another run is writing into it, it
            holds another run's images (and not overwrite), the run does not fit on the
            disk, or an OS error while writing (disk full, permission denied). Shards:
            the same shard is being written by another process, a non-sharded run is
            writing or holds the folder, or the folder holds shards of another run.
        ModelError: the model returned something that is not a batch of images.
    """
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise UsageError(f"unknown image format {describe(fmt)}; choose one of "
                         f"{', '.join(FORMATS)}")
    n, seed, _, batch_size, resolved = generator.check_args(n, seed, labels, 0, batch_size)
    psi = check_truncation(truncation)
    workers = 1 if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise UsageError(f"workers must be an integer between 1 and 64, got {describe(workers)}")
    part = _shards.check_shard(shard)
    out = _files.as_path(out, "output folder")
    manifest = {"model": generator.name, "model_sha256": generator.card.get("model_sha256"),
                "seed": seed, "n": n, "labels": _label_rule(generator, resolved),
                "format": fmt}
    if psi is not None:  # only when set: folders written before it existed still resume
        manifest["truncation"] = psi
    if part is not None:
        manifest["shard"] = part.record(n)
    created = not out.exists()
    _files.make_folder(out, "output folder")
    run = _Run(generator, out, manifest, resolved, batch_size, progress, part)
    with run.lock():
        # Undone only by the run holding the lock: a run refused by the lock must not
        # touch the folder (not even the lock file) of the run that holds it.
        try:
            others = run.prepare(overwrite) if part is None else run.prepare_shard(overwrite)
            if fmt == "npy":
                written, resumed_at = run.write_npy()
            else:
                written, resumed_at = run.write_pngs(workers)
        except BaseException:
            run.undo_if_empty(created)
            raise
    return WriteResult(out, n, written, resumed_at, others,
                       shard=None if part is None else (part.index, part.count),
                       indices=range(run.lo, run.hi))


class _Run:
    """One call of write_images, holding the folder's lock."""

    def __init__(self, generator: Generator, out: Path, manifest: dict,
                 labels: ResolvedLabels, batch_size: int,
                 progress: Callable[[int], None] | None, part: _shards.Shard | None = None):
        self.generator, self.out, self.manifest = generator, out, manifest
        self.n, self.seed, self.fmt = manifest["n"], manifest["seed"], manifest["format"]
        self.truncation: float | None = manifest.get("truncation")
        # The images this call writes: all of them, or the shard's slice.
        self.part = part
        self.lo, self.hi = (0, int(self.n)) if part is None else part.range(self.n)
        self.manifest_name = MANIFEST if part is None else part.manifest_name
        self.labels, self.batch_size = labels, batch_size
        self.progress = progress or (lambda k: None)
        self.wrote_manifest = False
        self.written = 0
        self.existing: set[str] = set()
        self.targets: list[_NpyFile] = []

    def lock(self) -> contextlib.AbstractContextManager:
        """A non-sharded run: the folder's lock, exclusive. A shard: the folder's lock
        shared with its sibling shards (keeping out a non-sharded run), then its own."""
        if self.part is None:
            return _files.FolderLock(self.out)
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(_files.FolderLock(self.out, shared=True))
            stack.enter_context(_files.FolderLock(
                self.out, self.part.lock_name,
                busy=f"{self.out}: shard {self.part.index} of {self.part.count} is already "
                     f"being written by another process"))
        except BaseException:
            stack.close()
            raise
        return stack

    def _listing(self) -> list[str]:
        try:
            return os.listdir(self.out)
        except OSError as e:
            raise _files.os_error(self.out, e, "cannot list folder") from None

    def _previous_manifest(self, name: str = MANIFEST) -> object:
        try:
            return json.loads((self.out / name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return "damaged"

    def prepare(self, overwrite: bool) -> tuple[str, ...]:
        """Decide what the folder holds; refuse, clear or resume; check the space; write
        the manifest. Returns the names of files that ganlite did not write."""
        names = self._listing()
        previous = self._previous_manifest()
        same_run = previous == self.manifest
        owned = [name for name in names if is_run_file(name)
                 or is_run_file(_files.temporary_target(name) or "")]
        others = tuple(sorted(name for name in names
                              if name not in owned and name != _files.LOCK_NAME))
        if not same_run and not overwrite:
            shards = sorted(name for name in names if _shards.MANIFEST_NAME.match(name))
            if previous is None and shards:
                raise OutputError(f"{self.out}: holds shards of a sharded run ({shards[0]}, "
                                  f"...); a non-sharded run cannot share its folder: "
                                  f"overwrite them or choose another folder")
            if isinstance(previous, dict):
                keys = list(self.manifest) + [k for k in previous if k not in self.manifest]
                differs = ", ".join(k for k in keys if previous.get(k) != self.manifest.get(k))
                raise OutputError(
                    f"{self.out}: holds images of another run (model "
                    f"{previous.get('model')!r}, seed {previous.get('seed')}, n "
                    f"{previous.get('n')}; differs in {differs}); overwrite them or choose "
                    f"another folder")
            if previous == "damaged":
                raise OutputError(f"{self.out}: its run manifest {MANIFEST} is damaged; "
                                  f"overwrite the folder or choose another one")
            strays = [name for name in names if name.endswith((".png", ".npy"))]
            if strays:
                raise OutputError(f"{self.out}: already holds images that no ganlite run "
                                  f"manifest describes ({strays[0]}, ...); overwrite them or "
                                  f"choose another folder")
        # The manifest goes first: a clearing cut short leaves no manifest, so the
        # remaining files are refused as strays, never taken for this run's.
        if not same_run:
            manifests = [name for name in owned
                         if name == MANIFEST or _shards.MANIFEST_NAME.match(name)]
            doomed = manifests + [name for name in owned if name not in manifests]
        else:  # debris of killed runs; a resumable npy file is kept
            doomed = [name for name in owned if _files.temporary_target(name)
                      and not name.endswith(".ganlite-partial.tmp")]
        failed = _files.remove_quietly([self.out / name for name in doomed])
        if failed:
            raise OutputError(f"{failed[0]}: cannot remove it (the folder is not writable?)")
        if not same_run:
            names = [name for name in names if name not in doomed]
        self.existing = {name for name in names if _IMAGE_FILE.match(name)}
        self._check_space()
        if not same_run:
            _files.atomic_write_bytes(self.out / MANIFEST,
                                      json.dumps(self.manifest, indent=1).encode())
            self.wrote_manifest = True
        return others

    # -- shards -------------------------------------------------------------------------
    def prepare_shard(self, overwrite: bool) -> tuple[str, ...]:
        """prepare() for a shard. Its siblings may be writing into the folder right now:
        it checks their manifests and writes its own while holding the shards' manifest
        lock (for a moment), so two shards of different runs can never both start; and it
        only ever removes files of its own (its manifest, its parts, images of its range
        that no sibling owns)."""
        busy = (f"{self.out}: another shard has held {_shards.MANIFESTS_LOCK} for "
                f"{_MANIFESTS_WAIT:.0f} s; is it stopped?")
        with _files.FolderLock(self.out, _shards.MANIFESTS_LOCK, wait=_MANIFESTS_WAIT,
                               busy=busy):
            return self._prepare_shard(overwrite)

    def _prepare_shard(self, overwrite: bool) -> tuple[str, ...]:
        part = self.part
        assert part is not None
        names = self._listing()
        others = tuple(sorted(name for name in names if not is_run_file(name)
                              and not is_run_file(_files.temporary_target(name) or "")
                              and name != _files.LOCK_NAME))
        if MANIFEST in names:
            raise OutputError(f"{self.out}: holds a non-sharded run ({MANIFEST}); shards "
                              f"cannot share its folder: choose another folder")
        siblings = {s.index: name for name in names
                    if (s := _shards.parse_name(_shards.MANIFEST_NAME, name)) is not None
                    and name != self.manifest_name}
        if siblings:
            self._check_siblings(sorted(siblings.values()))
        previous = self._previous_manifest(self.manifest_name)
        same_run = previous == self.manifest
        parts = {part.part_name("images"), part.part_name("labels")}
        if not same_run and not overwrite:
            if isinstance(previous, dict):
                differs = ", ".join(k for k in self.manifest if previous.get(k) != self.manifest[k])
                raise OutputError(
                    f"{self.out}: holds shard {part.index} of {part.count} of another run "
                    f"(model {previous.get('model')!r}, seed {previous.get('seed')}, n "
                    f"{previous.get('n')}; differs in {differs}); overwrite that shard or "
                    f"choose another folder")
            if previous == "damaged":
                raise OutputError(f"{self.out}: the manifest {self.manifest_name} of shard "
                                  f"{part.index} of {part.count} is damaged; overwrite that "
                                  f"shard or choose another folder")
            strays = [name for name in names
                      if name in parts or _index_in(name, self.lo, self.hi)]
            if strays:
                raise OutputError(f"{self.out}: already holds images of shard {part.index} "
                                  f"of {part.count} that no ganlite run manifest describes "
                                  f"({strays[0]}, ...); overwrite that shard or choose "
                                  f"another folder")

        old = None
        if isinstance(previous, dict) and isinstance(previous.get("n"), int) \
                and previous["n"] >= 1:
            old = part.range(previous["n"])

        def mine(name: str) -> bool:
            """A file of this shard's: a part, an image of its range, or an image its
            earlier run (old) wrote that no sibling shard present now owns."""
            if name in parts:
                return True
            i = image_index(name)
            if i is None:
                return False
            if self.lo <= i < self.hi:
                return True
            return old is not None and old[0] <= i < old[1] and \
                _shards.owner(i, self.n, part.count) not in siblings

        if not same_run:
            doomed = ([self.manifest_name] if previous is not None else []) + \
                [name for name in names if mine(name) or mine(_files.temporary_target(name)
                                                              or "")]
        else:  # debris of its killed runs; a resumable npy file is kept
            doomed = [name for name in names if mine(_files.temporary_target(name) or "")
                      and not name.endswith(".ganlite-partial.tmp")]
        failed = _files.remove_quietly([self.out / name for name in doomed])
        if failed:
            raise OutputError(f"{failed[0]}: cannot remove it (the folder is not writable?)")
        gone = set(doomed)
        self.existing = {name for name in names
                         if name not in gone and _index_in(name, self.lo, self.hi)}
        self._check_space()
        if not same_run:
            _files.atomic_write_bytes(self.out / self.manifest_name,
                                      json.dumps(self.manifest, indent=1).encode())
            self.wrote_manifest = True
        return others

    def _check_siblings(self, siblings: list[str]) -> None:
        """Refuse when the sibling shards present are of another run. Siblings only ever
        start when they agree with every sibling present (checked under the manifest
        lock), so the first one speaks for all; a sibling of another shard count is seen
        from its name alone."""
        part = self.part
        assert part is not None
        counts = [_shards.parse_name(_shards.MANIFEST_NAME, name) for name in siblings]
        other = next((name for name, s in zip(siblings, counts, strict=True)
                      if s is not None and s.count != part.count), siblings[0])
        sibling = self._previous_manifest(other)
        if sibling == "damaged" or not isinstance(sibling, dict):
            raise OutputError(f"{self.out}: the manifest {other} of a sibling shard is "
                              f"damaged; choose another folder")
        theirs = sibling.get("shard")
        count = theirs.get("count") if isinstance(theirs, dict) else None
        differs = [k for k in self.manifest if k != "shard" and sibling.get(k) != self.manifest[k]]
        if count != part.count:
            differs.append("shard count")
        if differs:
            raise OutputError(
                f"{self.out}: holds shards of another run ({other}: model "
                f"{sibling.get('model')!r}, seed {sibling.get('seed')}, n {sibling.get('n')}, "
                f"{count} shards; differs in {', '.join(differs)}); shards of different runs "
                f"cannot share a folder: choose another folder")

    def _check_space(self) -> None:
        if self.fmt == "npy":
            self.targets = self._npy_targets()
            needed = sum(t.size - t.have for t in self.targets)
            files = sum(1 for t in self.targets if t.have == 0)
        else:
            files = max(self.hi - self.lo - len(self.existing), 0)
            needed = files * max(_PNG_MAX_BYTES, _files.block_size(self.out))
        what = f"a run of {self.n:,} images" if self.part is None else \
            f"shard {self.part.index} of {self.part.count} ({self.hi - self.lo:,} images)"
        _files.check_free_space(self.out, needed, files, what)

    def undo_if_empty(self, created: bool) -> None:
        """After a failure before any image reached the folder: remove what this call
        wrote (the manifest, an empty npy temporary) and the folder if this call made it."""
        names = set(self._listing_or_empty())
        outputs = {t.path.name for t in self.targets} if self.fmt == "npy" else set()
        if self.part is None:
            outputs |= set(_NPY_FILES)
        if any(name in outputs or (_index_in(name, self.lo, self.hi) if self.part else
                                   _IMAGE_FILE.match(name)) for name in names):
            return
        partials = [self.out / name for name in names if name.endswith(".ganlite-partial.tmp")
                    and (self.part is None or _files.temporary_target(name) in outputs)]
        if any(_size_of(p) > 128 for p in partials):  # holds rows: keep it for a resume
            return
        _files.remove_quietly(partials)
        if self.wrote_manifest:
            _files.remove_quietly([self.out / self.manifest_name])
        # A shard leaves the folder and its lock files: its siblings may be opening them.
        if created and self.part is None:
            _files.remove_quietly([self.out / _files.LOCK_NAME])
            try:
                self.out.rmdir()
            except OSError:
                pass

    def _listing_or_empty(self) -> list[str]:
        try:
            return os.listdir(self.out)
        except OSError:
            return []

    # -- png ----------------------------------------------------------------------------
    def write_pngs(self, workers: int) -> tuple[int, int]:
        g, n = self.generator, self.n
        if len(self.existing) >= self.hi - self.lo:
            self.progress(self.hi - self.lo)
            return 0, self.hi
        resumed_at = None
        # Encoding and writing a batch (in a pool thread) overlaps the next batch's
        # inference (in this one); zlib and the file system calls release the GIL.
        with _files.FolderFiles(self.out) as files, \
                ThreadPoolExecutor(max_workers=workers) as pool:
            pending: deque[tuple[int, Future]] = deque()
            for lo in range(self.lo, self.hi, self.batch_size):
                count = min(self.batch_size, self.hi - lo)
                z, y = g._inputs(self.seed, lo, count, self.labels, self.truncation)
                names = [file_name(lo + k, n, None if y is None else int(y[k]))
                         for k in range(count)]
                todo = [k for k, name in enumerate(names) if name not in self.existing]
                if not todo:
                    self.progress(count)
                    continue
                resumed_at = lo if resumed_at is None else resumed_at
                images = g._run(z, y)
                if len(todo) < count:
                    names, images = [names[k] for k in todo], images[todo]
                pending.append((count, pool.submit(_write_pngs, files, names, images)))
                while len(pending) > workers + 1:  # bounded memory: a few batches in flight
                    self._finish(*pending.popleft())
            while pending:
                self._finish(*pending.popleft())
        return self.written, self.lo if resumed_at is None else resumed_at

    def _finish(self, count: int, future: Future) -> None:
        self.written += future.result()
        self.progress(count)

    # -- npy ----------------------------------------------------------------------------
    def _npy_targets(self) -> list[_NpyFile]:
        count = self.hi - self.lo
        images, labels = _NPY_FILES if self.part is None else \
            (self.part.part_name("images"), self.part.part_name("labels"))
        targets = [_NpyFile(self.out / images, (count, 28, 28), "|u1", IMAGE_BYTES)]
        if self.generator.conditional:
            targets.append(_NpyFile(self.out / labels, (count,), "<i8", 8))
        return targets

    def write_npy(self) -> tuple[int, int]:
        """Append the missing images to each file's resumable temporary, then rename."""
        start = min(t.done for t in self.targets)     # rows, counted from self.lo
        self.progress(start)
        open_files = [t for t in self.targets if not t.final]
        # An empty shard's parts are a header alone: opened to be written all the same.
        if start < self.hi - self.lo or any(t.have < t.size for t in open_files):
            try:
                for t in open_files:
                    t.open_at(start)
                for lo in range(self.lo + start, self.hi, self.batch_size):
                    z, y = self.generator._inputs(self.seed, lo,
                                                  min(self.batch_size, self.hi - lo),
                                                  self.labels, self.truncation)
                    images = self.generator._run(z, y)
                    for t in open_files:
                        rows = images if t.item == IMAGE_BYTES else y
                        assert rows is not None  # labels.npy exists for conditional models
                        t.append(rows)
                    self.written += len(images)
                    self.progress(len(images))
            finally:
                for t in open_files:
                    t.close()
        for t in open_files:
            t.publish()
        return self.written, self.lo + start


class _NpyFile:
    """One .npy output written through `.NAME.ganlite-partial.tmp`: a header, then rows
    appended in order, so that the rows on disk after any crash are a prefix of the run."""

    def __init__(self, path: Path, shape: tuple[int, ...], descr: str, item: int):
        self.path, self.item, self.dtype = path, item, np.dtype(descr)
        self.partial = _files.temporary_name(path, partial=True)
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf, {"descr": descr, "fortran_order": False, "shape": shape})
        self.header = buf.getvalue()
        self.size = len(self.header) + shape[0] * item
        self.n = shape[0]
        self.file: BinaryIO | None = None
        self.final = _size_of(path) == self.size
        self.have = self.size if self.final else self._partial_bytes()
        self.done = self.n if self.final else max(self.have - len(self.header), 0) // item

    def _partial_bytes(self) -> int:
        """Bytes of a valid partial file from an earlier try (0 if none or not ours)."""
        try:
            with open(self.partial, "rb") as f:
                if f.read(len(self.header)) != self.header:
                    return 0
                return min(os.fstat(f.fileno()).st_size, self.size)
        except OSError:
            return 0

    def open_at(self, start: int) -> None:
        try:
            resume = bool(start) and self.done >= start
            file: BinaryIO = open(self.partial, "r+b" if resume else "wb")  # noqa: SIM115
            self.file = file  # closed by close(), after the run's last batch
            if not resume:
                file.write(self.header)
            file.truncate(len(self.header) + start * self.item)
            file.seek(0, os.SEEK_END)
        except OSError as e:
            raise _files.os_error(self.path, e) from None

    def append(self, rows: np.ndarray) -> None:
        assert self.file is not None
        try:
            self.file.write(np.ascontiguousarray(rows, self.dtype).tobytes())
        except OSError as e:
            raise _files.os_error(self.path, e) from None

    def close(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError as e:
                self.file = None
                raise _files.os_error(self.path, e) from None
            self.file = None

    def publish(self) -> None:
        try:
            if _size_of(self.partial) != self.size:
                raise OutputError(f"{self.partial}: incomplete after writing; rerun to resume")
            os.replace(self.partial, self.path)
        except OSError as e:
            raise _files.os_error(self.path, e) from None


def _write_pngs(files: _files.FolderFiles, names: list[str], images: np.ndarray) -> int:
    """Encode uint8 [b, 28, 28] images and write them under `names`; returns b."""
    for name, data in zip(names, _png.encode_gray(images), strict=True):
        files.write(name, data)
    return len(names)


def _index_in(name: str, lo: int, hi: int) -> bool:
    """True for a run's PNG file name whose image index is in lo .. hi - 1."""
    i = image_index(name)
    return i is not None and lo <= i < hi


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
