"""Dynamic batching for `ganlite serve`: concurrent requests for one model merged into one
onnxruntime call, as Triton's and TorchServe's dynamic batchers do.

One worker thread per model takes requests from a queue. When it is free it takes the
first waiting piece of work, then whatever else arrives within a short bounded wait (only
when requests have recently been concurrent: a lone client pays no wait), up to a maximum
number of images, and runs the model once on the concatenated latents. Every request's
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
                 loop: asyncio.AbstractEventLoop, future: asyncio.Future, pieces: int):
        self.seed, self.n, self.labels = seed, n, labels
        self.loop, self.future = loop, future
        self.images = np.empty((n, 28, 28), np.uint8)
        self.pieces_left = pieces     # touched by the worker thread only

    @property
    def settled(self) -> bool:
        """Every piece has run, or the request failed."""
        return self.pieces_left <= 0

    def piece_done(self, start: int, images: np.ndarray) -> None:
        if self.settled:
            return
        self.images[start:start + len(images)] = images
        self.pieces_left -= 1
        if self.pieces_left == 0:
            self._resolve(self.images, None)

    def fail(self, error: BaseException) -> None:
        if self.pieces_left > 0:
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
        generator: the model; only its session is run (from the worker thread).
        max_batch: most images in one onnxruntime call (1 .. MAX_BATCH_SIZE).
        wait_s: longest wait for more requests once the first is taken (seconds, >= 0).
    """

    def __init__(self, generator: Generator, max_batch: int = 256, wait_s: float = 0.002):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if wait_s < 0:
            raise ValueError(f"wait_s must be at least 0, got {wait_s}")
        self.generator, self.max_batch, self.wait_s = generator, max_batch, wait_s
        self.stats = BatcherStats()
        self._queue: queue.SimpleQueue[_Piece | None] = queue.SimpleQueue()
        self._carry: _Piece | None = None   # a piece that did not fit into the last batch
        # Set when requests were seen together (a merged batch, or work waiting when a
        # batch ended): only then is waiting for more worth its latency.
        self._concurrent = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            name=f"ganlite-batcher-{self.generator.name}")
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Let the worker finish the work queued so far, then end it."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    async def generate(self, n: int, seed: int, labels: ResolvedLabels) -> np.ndarray:
        """Images 0 .. n - 1 of (seed, labels), as Generator.generate returns them.

        Args:
            n, seed, labels: already checked (Generator.check_args): n >= 1, labels None,
                one class number, a tuple of class numbers to cycle, or int64 [n].

        Raises:
            ModelError: the model failed or returned something other than images.
        """
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        starts = range(0, n, self.max_batch)
        request = _Request(seed, n, labels, loop, future, len(starts))
        for start in starts:
            self._queue.put(_Piece(request, start, min(self.max_batch, n - start)))
        return await future

    def _next_batch(self) -> list[_Piece] | None:
        """Block for the first piece, then gather more within the wait; None: stop."""
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
                self._queue.put(None)   # stop after this batch
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
            inputs = [generator._inputs(p.request.seed, p.start, p.count, p.request.labels)
                      for p in batch]
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
        self.stats.calls += 1
        self.stats.images += len(images)
        offset = 0
        for piece in batch:
            if piece.start == 0:
                self.stats.requests += 1
            piece.request.piece_done(piece.start, images[offset:offset + piece.count])
            offset += piece.count
