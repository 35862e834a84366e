"""Latents (and labels) as a pure function of (seed, image index).

Image i of a run with seed s uses row i % BLOCK of block i // BLOCK, where every block is
drawn from its own generator seeded with (s, block). Any batching, any resumed or sharded
run therefore feeds image i the same latent, and so produces the same bytes.
"""
from __future__ import annotations

import numpy as np

BLOCK = 16  # small: a batch of 1 draws 16 latents, not thousands
MAX_SEED = 2**63 - 1


def _block(seed: int, block: int, latent_dim: int, num_classes: int):
    rng = np.random.default_rng([seed, block])
    z = rng.standard_normal((BLOCK, latent_dim), dtype=np.float32)
    labels = rng.integers(0, num_classes, BLOCK) if num_classes else None
    return z, labels


def draw(seed: int, start: int, count: int, latent_dim: int, num_classes: int = 0):
    """z float32 [count, latent_dim] ~ N(0, 1) and labels int64 [count] (or None) of
    images start .. start + count - 1."""
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
