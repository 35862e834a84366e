"""Dynamic batching for `ganlite serve`: concurrent requests for one model merged into one
onnxruntime call, as Triton's and TorchServe's dynamic batchers do.

Worker threads (two per model by default) take requests from a queue. A free worker takes
the first waiting piece of work and every piece queued behind it (those that arrived while
the workers were busy), optionally waiting a bounded time for more (only when requests
have recently been concurrent: a lone client pays no wait; 0 by default, which measured
best on CPU, bench/results/load.md), up to a maximum number of images, and runs the model
once on the concatenated latents. One worker gathers at a time while the other runs its
batch (onnxruntime releases the GIL): two calls in flight keep the cores busier than one
session.run's own threads do (measured, bench/results/load.md). Every request's
latents and labels come from the same pure function of (seed, image index) that
Generator.generate uses, so a merged request gets exactly the bytes generate() returns.

A request larger than the maximum batch is split into pieces of at most that size; the
pieces of one request are queued together, in order.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from ._model import Generator, ResolvedLabels


class _Request:
    """One request: its arguments, its result array filled piece by piece, and the
    asyncio future that gets the array (or the error) once every piece has run."""

    def __init__(self, seed: int, n: int, labels: ResolvedLabels,
                 loop: asyncio.AbstractEventLoop, future: asyncio.Future, pieces: int,
                 lock: threading.Lock, truncation: float | None = None):
        self.seed, self.n, self.labels, self.truncation = seed, n, labels, truncation
        self.loop, self.future = loop, future
        self.images = np.empty((n, 28, 28), np.uint8)
        self.pieces_left = pieces     # under `lock`: pieces may finish on different workers
        self.lock = lock

    @property
    def settled(self) -> bool:
        """Every piece has run, or the request failed."""
        return self.pieces_left <= 0

    def piece_done(self, start: int, images: np.ndarray) -> None:
        self.images[start:start + len(images)] = images   # a disjoint slice per piece
        with self.lock:
            if self.settled:
                return
            self.pieces_left -= 1
            last = self.pieces_left == 0
        if last:
            self._resolve(self.images, None)

    def fail(self, error: BaseException) -> None:
        with self.lock:
            if self.settled:
                return
            self.pieces_left = 0
        self._resolve(None, error)

    def _resolve(self, images: np.ndarray | None, error: BaseException | None) -> None:
        def settle() -> None:
            if self.future.done():      # the awaiting handler was cancelled
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(images)
        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:            # the event loop is closed: nobody is waiting
            pass


@dataclass
class _Piece:
    """Images start .. start + count - 1 of a request."""
    request: _Request
    start: int
    count: int


@dataclass
class BatcherStats:
    """Counters since start: onnxruntime calls, images, requests (for logs and benches)."""
    calls: int = 0
    images: int = 0
    requests: int = 0


class Batcher:
    """Merges concurrent generate requests for one Generator into shared onnxruntime calls.

    Args:
        generator: the model; only its session is run (from the worker threads).
        max_batch: most images in one onnxruntime call (1 .. MAX_BATCH_SIZE).
        wait_s: longest wait for more requests once the first is taken (seconds, >= 0).
        workers: worker threads, each running one onnxruntime call at a time (>= 1).
    """

    def __init__(self, generator: Generator, max_batch: int = 256, wait_s: float = 0.0,
                 workers: int = 2):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if wait_s < 0:
            raise ValueError(f"wait_s must be at least 0, got {wait_s}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.generator, self.max_batch, self.wait_s = generator, max_batch, wait_s
        self.workers = workers
        self.stats = BatcherStats()
        self._queue: queue.SimpleQueue[_Piece | None] = queue.SimpleQueue()
        self._gather = threading.Lock()     # one worker gathers a batch at a time
        self._lock = threading.Lock()       # requests' piece counts and the stats
        self._carry: _Piece | None = None   # a piece that did not fit into the last batch
        # Set when requests were seen together (a merged batch, or work waiting when a
        # batch ended): only then is waiting for more worth its latency.
        self._concurrent = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads (once)."""
        if not self._threads:
            self._threads = [threading.Thread(target=self._work, daemon=True,
                                              name=f"ganlite-batcher-{self.generator.name}-{i}")
                             for i in range(self.workers)]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Let the workers finish the work queued so far, then end them."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    async def generate(self, n: int, seed: int, labels: ResolvedLabels,
                       truncation: float | None = None) -> np.ndarray:
        """Images 0 .. n - 1 of (seed, labels, truncation), as Generator.generate returns
        them.

        Args:
            n, seed, labels: already checked (Generator.check_args): n >= 1, labels None,
                one class number, a tuple of class numbers to cycle, or int64 [n].
            truncation: None or psi, already checked (ganlite.latents.check_truncation).

        Raises:
            ModelError: the model failed or returned something other than images.
        """
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        starts = range(0, n, self.max_batch)
        request = _Request(seed, n, labels, loop, future, len(starts), self._lock, truncation)
        for start in starts:
            self._queue.put(_Piece(request, start, min(self.max_batch, n - start)))
        return await future

    def _next_batch(self) -> list[_Piece] | None:
        """Block for the first piece, then gather more within the wait; None: stop."""
        with self._gather:
            return self._gather_batch()

    def _gather_batch(self) -> list[_Piece] | None:
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is None:
            return None
        batch, total = [first], first.count
        deadline = time.monotonic() + (self.wait_s if self._concurrent else 0.0)
        while total < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                piece = self._queue.get(timeout=remaining) if remaining > 0 \
                    else self._queue.get_nowait()
            except queue.Empty:
                break
            if piece is None:
                self._queue.put(None)   # for this worker after this batch (or another)
                break
            if total + piece.count > self.max_batch:
                self._carry = piece
                break
            batch.append(piece)
            total += piece.count
        self._concurrent = len(batch) > 1 or self._carry is not None
        return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)
            if not self._queue.empty():
                self._concurrent = True

    def _run(self, batch: list[_Piece]) -> None:
        batch = [p for p in batch if not p.request.settled]   # pieces of a failed request
        if not batch:
            return
        generator = self.generator
        try:
            inputs = [generator._inputs(p.request.seed, p.start, p.count, p.request.labels,
                                        p.request.truncation) for p in batch]
            z = np.concatenate([z for z, _ in inputs]) if len(inputs) > 1 else inputs[0][0]
            labels = None if inputs[0][1] is None else (
                np.concatenate([y for _, y in inputs]) if len(inputs) > 1 else inputs[0][1])
            images = generator._run(z, labels)
        except BaseException as e:  # noqa: BLE001  (every waiting request gets the error)
            for piece in batch:
                piece.request.fail(e)
            if not isinstance(e, Exception):
                raise
            return
        with self._lock:
            self.stats.calls += 1
            self.stats.images += len(images)
            self.stats.requests += sum(piece.start == 0 for piece in batch)
        offset = 0
        for piece in batch:
            piece.request.piece_done(piece.start, images[offset:offset + piece.count])
            offset += piece.count
