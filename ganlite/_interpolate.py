"""Latent walks: spherical interpolation between the latents of several seeds, or, for
conditional models, every class drawn from one fixed latent."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from . import _latents
from ._errors import UsageError
from ._images import atomic_write_bytes, save_png
from ._model import Generator


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of two vectors at fractions t [k] -> [k, d] (Shoemake 1985);
    Gaussian latents keep their typical norm along the way, unlike a straight line."""
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    t = np.asarray(t, np.float64)[:, None]
    if omega < 1e-6:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(
        np.float32)


def seed_latent(generator: Generator, seed: int):
    """The latent (and label) of image 0 of a run with this seed."""
    z, labels = _latents.draw(seed, 0, 1, generator.latent_dim,
                              generator.num_classes if generator.conditional else 0)
    return z[0], (None if labels is None else int(labels[0]))


def walk(generator: Generator, seeds: list[int], steps: int, label: int | None = None):
    """uint8 [frames, 28, 28]: `steps` frames from each seed's latent to the next one's."""
    if len(seeds) < 2:
        raise UsageError("a walk needs at least two seeds, e.g. --seeds 1,2")
    if steps < 2:
        raise UsageError(f"--steps must be at least 2, got {steps}")
    points = [seed_latent(generator, s) for s in seeds]
    if label is None and generator.conditional:
        label = points[0][1]
    t = np.linspace(0, 1, steps, endpoint=False)
    z = np.concatenate([slerp(points[i][0], points[i + 1][0], t)
                        for i in range(len(points) - 1)] + [points[-1][0][None]])
    return generator.decode(z, None if label is None else np.full(len(z), label))


def label_walk(generator: Generator, seed: int):
    """uint8 [classes, 28, 28]: one latent, every class in turn (conditional models)."""
    if not generator.conditional:
        raise UsageError(f"model {generator.name!r} is unconditional: a walk across labels "
                         f"needs a conditional model")
    z, _ = seed_latent(generator, seed)
    return generator.decode(np.repeat(z[None], generator.num_classes, axis=0),
                            np.arange(generator.num_classes))


def save_animation(frames: np.ndarray, path: str | os.PathLike, scale: int = 4,
                   frame_ms: int = 80, frames_dir: str | os.PathLike | None = None) -> Path:
    """An animated GIF (looping, enlarged `scale` times) and optionally one PNG per frame."""
    path = Path(path)
    if path.is_dir() or not path.parent.is_dir():
        raise UsageError(f"--out {path}: expected a file name in an existing folder")
    images = [Image.fromarray(f).resize((28 * scale, 28 * scale), Image.NEAREST)
              for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=frame_ms, loop=0)
    atomic_write_bytes(path, buf.getvalue())
    if frames_dir is not None:
        frames_dir = Path(frames_dir)
        frames_dir.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            save_png(frame, frames_dir / f"frame_{i:04d}.png")
    return path
