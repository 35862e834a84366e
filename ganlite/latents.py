"""Latents (and labels) as a pure function of (seed, image index): public, so that the
training and export stages draw exactly the latents the runtime draws.

Image i of a run with seed s uses row i % BLOCK of block i // BLOCK, where every block is
drawn from its own generator seeded with (s, block). Any batching, any resumed or sharded
run therefore feeds image i the same latent, and so produces the same bytes.

Truncation (the "truncation trick" of BigGAN, Brock et al. 2019): with truncation=psi,
every component of a block's latents whose magnitude exceeds psi is replaced by a draw
from the standard normal distribution truncated to [-psi, psi]; components within psi are
kept. The replacements come from a second generator of the block (the first child of its
seed sequence), always for the whole block, so image i's truncated latent is still a pure
function of (seed, i, psi). They are drawn by rejection with a uniform proposal on
[-psi, psi], accepted with probability exp(-x^2 / 2) (tested as an Exp(1) draw > x^2 / 2):
exact; a try succeeds with probability 0.125 or more on average for any psi up to
MAX_TRUNCATION (over 0.85 for psi <= 1), so even a tiny psi ends at once; and the
arithmetic added to numpy's generators is multiplications and comparisons only (no
transcendental function whose last bit could differ between CPUs). Smaller psi: latents
nearer the mode, images more typical and alike (precision up, recall down).
"""
from __future__ import annotations

import math

import numpy as np

from ._errors import UsageError, describe

__all__ = ["BLOCK", "MAX_SEED", "MAX_TRUNCATION", "MAX_VALUES", "check_truncation", "draw"]

BLOCK = 16  # small: a batch of 1 draws 16 latents, not thousands
MAX_SEED = 2**63 - 1
_MAX_DIM = 1 << 20
MAX_VALUES = 1 << 30   # count * latent_dim: 4 GiB of float32 at most in one call
# numpy's float32 standard normal never exceeds 8.21 in magnitude (its ziggurat's tail
# ends at r + 24 ln 2 / r, r = 3.654): a psi above 10 would change nothing, so it is
# refused as a likely mistake.
MAX_TRUNCATION = 10.0


def _block(seed: int, block: int, latent_dim: int,
           num_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng([seed, block])
    z = rng.standard_normal((BLOCK, latent_dim), dtype=np.float32)
    labels = rng.integers(0, num_classes, BLOCK) if num_classes else None
    return z, labels


def _truncate(z: np.ndarray, seed: int, block: int, psi: float) -> np.ndarray:
    """z [BLOCK, latent_dim] of block `block` with every |value| > psi replaced by a draw
    of N(0, 1) truncated to [-psi, psi] (see the module's docstring)."""
    flat = z.reshape(-1)    # a view: z is the block's own fresh array
    beyond = np.flatnonzero(np.abs(flat) > psi)
    if not beyond.size:
        return z
    rng = np.random.default_rng(np.random.SeedSequence([seed, block], spawn_key=(0,)))
    # The largest float32 <= psi: float32 proposals then never round beyond psi.
    bound = np.float32(psi)
    if bound > psi:
        bound = np.nextafter(bound, np.float32(0))
    # Tries for every value at once: 0.6 or more of them succeed for psi <= 2, 0.125 or
    # more for any psi (module docstring), so one round nearly always fills every value.
    # The successes fill the values in order: the result is fixed by the stream alone.
    per_value = 2 if psi <= 2 else 8
    while beyond.size:
        tries = per_value * beyond.size + 16
        x = (rng.random(tries, dtype=np.float32) * np.float32(2) - np.float32(1)) * bound
        accepted = x[rng.standard_exponential(tries) > 0.5 * np.square(x, dtype=np.float64)]
        filled = min(len(accepted), beyond.size)
        flat[beyond[:filled]] = accepted[:filled]
        beyond = beyond[filled:]
    return z


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not low <= value <= high:
        raise UsageError(f"{name} must be an integer between {low} and {high}, got "
                         f"{describe(value)}")
    return int(value)


def check_truncation(truncation: object) -> float | None:
    """A truncation argument, checked: None (off) or a float psi, 0 < psi <= MAX_TRUNCATION.

    Raises:
        UsageError: anything else (naming the value and the range).
    """
    if truncation is None:
        return None
    if not isinstance(truncation, bool) and isinstance(truncation, (int, float, np.integer,
                                                                    np.floating)):
        psi = float(truncation)
        if math.isfinite(psi) and 0 < psi <= MAX_TRUNCATION:
            return psi
    raise UsageError(f"truncation must be None (off) or a number greater than 0 and at "
                     f"most {MAX_TRUNCATION:g}, got {describe(truncation)}")


def draw(seed: int, start: int, count: int, latent_dim: int,
         num_classes: int = 0, truncation: float | None = None,
         ) -> tuple[np.ndarray, np.ndarray | None]:
    """The latents and labels of images start .. start + count - 1 of a run.

    Args:
        seed: the run's seed, 0 .. MAX_SEED.
        start: index of the first image (>= 0).
        count: how many images (>= 1; count * latent_dim at most MAX_VALUES).
        latent_dim: width of a latent vector.
        num_classes: classes to draw labels from (0: no labels, an unconditional model).
        truncation: None (off: the latents as ever) or psi, 0 < psi <= MAX_TRUNCATION:
            every component beyond +-psi redrawn from N(0, 1) truncated to [-psi, psi].
            Labels do not change with it.

    Returns:
        (z float32 [count, latent_dim] ~ N(0, 1) (truncated to [-psi, psi] with
        truncation), labels int64 [count] in 0 .. num_classes - 1, or None when
        num_classes is 0).

    Raises:
        UsageError: an argument is not an integer in its range, or a bad truncation.
    """
    seed = _int("seed", seed, 0, MAX_SEED)
    start = _int("start", start, 0, MAX_SEED)
    count = _int("count", count, 1, MAX_SEED - start)
    latent_dim = _int("latent_dim", latent_dim, 1, _MAX_DIM)
    num_classes = _int("num_classes", num_classes, 0, _MAX_DIM)
    psi = check_truncation(truncation)
    if count * latent_dim > MAX_VALUES:
        raise UsageError(f"{count:,} latents of {latent_dim} values exceed the limit of "
                         f"{MAX_VALUES:,} values per call: draw them in parts")
    zs, labels = [], []
    first, last = start // BLOCK, (start + count - 1) // BLOCK
    for block in range(first, last + 1):
        z, y = _block(seed, block, latent_dim, num_classes)
        if psi is not None:
            z = _truncate(z, seed, block, psi)
        lo = max(start - block * BLOCK, 0)
        hi = min(start + count - block * BLOCK, BLOCK)
        zs.append(z[lo:hi])
        if y is not None:
            labels.append(y[lo:hi])
    z = np.concatenate(zs) if len(zs) > 1 else zs[0]
    return z, (np.concatenate(labels).astype(np.int64) if labels else None)
