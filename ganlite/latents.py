"""Latents (and labels) as a pure function of (seed, image index): public, so that the
training and export stages draw exactly the latents the runtime draws.

Image i of a run with seed s uses row i % BLOCK of block i // BLOCK, where every block is
drawn from its own generator seeded with (s, block). Any batching, any resumed or sharded
run therefore feeds image i the same latent, and so produces the same bytes.
"""
from __future__ import annotations

import numpy as np

from ._errors import UsageError, describe

__all__ = ["BLOCK", "MAX_SEED", "MAX_VALUES", "draw"]

BLOCK = 16  # small: a batch of 1 draws 16 latents, not thousands
MAX_SEED = 2**63 - 1
_MAX_DIM = 1 << 20
MAX_VALUES = 1 << 30   # count * latent_dim: 4 GiB of float32 at most in one call


def _block(seed: int, block: int, latent_dim: int,
           num_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng([seed, block])
    z = rng.standard_normal((BLOCK, latent_dim), dtype=np.float32)
    labels = rng.integers(0, num_classes, BLOCK) if num_classes else None
    return z, labels


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not low <= value <= high:
        raise UsageError(f"{name} must be an integer between {low} and {high}, got "
                         f"{describe(value)}")
    return int(value)


def draw(seed: int, start: int, count: int, latent_dim: int,
         num_classes: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """The latents and labels of images start .. start + count - 1 of a run.

    Args:
        seed: the run's seed, 0 .. MAX_SEED.
        start: index of the first image (>= 0).
        count: how many images (>= 1; count * latent_dim at most MAX_VALUES).
        latent_dim: width of a latent vector.
        num_classes: classes to draw labels from (0: no labels, an unconditional model).

    Returns:
        (z float32 [count, latent_dim] ~ N(0, 1), labels int64 [count] in
        0 .. num_classes - 1, or None when num_classes is 0).

    Raises:
        UsageError: an argument is not an integer in its range.
    """
    seed = _int("seed", seed, 0, MAX_SEED)
    start = _int("start", start, 0, MAX_SEED)
    count = _int("count", count, 1, MAX_SEED - start)
    latent_dim = _int("latent_dim", latent_dim, 1, _MAX_DIM)
    num_classes = _int("num_classes", num_classes, 0, _MAX_DIM)
    if count * latent_dim > MAX_VALUES:
        raise UsageError(f"{count:,} latents of {latent_dim} values exceed the limit of "
                         f"{MAX_VALUES:,} values per call: draw them in parts")
    zs, labels = [], []
    first, last = start // BLOCK, (start + count - 1) // BLOCK
    for block in range(first, last + 1):
        z, y = _block(seed, block, latent_dim, num_classes)
        lo = max(start - block * BLOCK, 0)
        hi = min(start + count - block * BLOCK, BLOCK)
        zs.append(z[lo:hi])
        if y is not None:
            labels.append(y[lo:hi])
    z = np.concatenate(zs) if len(zs) > 1 else zs[0]
    return z, (np.concatenate(labels).astype(np.int64) if labels else None)
