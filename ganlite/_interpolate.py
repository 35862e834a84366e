"""Latent walks: spherical interpolation between the latents of several seeds, or, for
conditional models, every class drawn from one fixed latent."""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from . import _latents
from ._errors import UsageError, describe
from ._files import atomic_write_bytes, check_new_file, make_folder
from ._images import save_png
from ._model import Generator, _check_int


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


# A walk is an animation, not a data set: a GIF of 10,000 frames is already ~30 MB.
MAX_FRAMES = 10_000


def seed_latent(generator: Generator, seed: int) -> tuple[np.ndarray, int | None]:
    """The latent (and label) of image 0 of a run with this seed."""
    z, labels = _latents.draw(seed, 0, 1, generator.latent_dim,
                              generator.num_classes if generator.conditional else 0)
    return z[0], (None if labels is None else int(labels[0]))


def walk(generator: Generator, seeds: Sequence[int], steps: int,
         label: int | str | None = None) -> np.ndarray:
    """uint8 [frames, 28, 28]: `steps` frames from each seed's latent to the next one's,
    then the last seed's image; frames = steps * (len(seeds) - 1) + 1.

    Args:
        generator: a loaded model.
        seeds: at least two seeds; the walk visits image 0 of each.
        steps: frames from one seed to the next (at least 2).
        label: conditional models: the class to hold (default: the first seed's class).

    Raises:
        UsageError: fewer than two seeds, a bad seed or class, or more than MAX_FRAMES.
    """
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) < 2:
        raise UsageError(f"a walk needs a list of at least two seeds, got {describe(seeds)}")
    seeds = [_check_int("seed", s, 0, _latents.MAX_SEED) for s in seeds]
    steps = _check_int("steps", steps, 2, MAX_FRAMES)
    frames = steps * (len(seeds) - 1) + 1
    if frames > MAX_FRAMES:
        raise UsageError(f"a walk of {len(seeds)} seeds and {steps} steps has {frames:,} "
                         f"frames; the limit is {MAX_FRAMES:,}")
    points = [seed_latent(generator, s) for s in seeds]
    if label is None and generator.conditional:
        label = points[0][1]
    t = np.linspace(0, 1, steps, endpoint=False)
    z = np.concatenate([slerp(points[i][0], points[i + 1][0], t)
                        for i in range(len(points) - 1)] + [points[-1][0][None]])
    return _decode_all(generator, z, label)


def _decode_all(generator: Generator, z: np.ndarray, label: int | str | None) -> np.ndarray:
    """decode() in batches: a walk may be longer than one onnxruntime call takes."""
    step = 1024
    return np.concatenate([generator.decode(z[lo:lo + step], label)
                           for lo in range(0, len(z), step)])


def label_walk(generator: Generator, seed: int) -> np.ndarray:
    """uint8 [classes, 28, 28]: one latent, every class in turn (conditional models)."""
    if not generator.conditional:
        raise UsageError(f"model {generator.name!r} is unconditional: a walk across labels "
                         f"needs a conditional model")
    seed = _check_int("seed", seed, 0, _latents.MAX_SEED)
    z, _ = seed_latent(generator, seed)
    return generator.decode(np.repeat(z[None], generator.num_classes, axis=0),
                            np.arange(generator.num_classes))


def save_animation(frames: np.ndarray, path: str | os.PathLike, scale: int = 4,
                   frame_ms: int = 80, frames_dir: str | os.PathLike | None = None) -> Path:
    """An animated GIF (looping, enlarged `scale` times) and optionally one PNG per frame.

    Raises:
        UsageError: frames not uint8 [k, h, w] (1 <= k <= MAX_FRAMES), bad scale/frame_ms.
        OutputError: a file or the frames folder cannot be written.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8 or 0 in frames.shape \
            or len(frames) > MAX_FRAMES or max(frames.shape[1:]) > 1024:
        raise UsageError(f"frames must be uint8 [k, height, width] with 1 <= k <= "
                         f"{MAX_FRAMES:,}, got {frames.dtype} {list(frames.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 16:
        raise UsageError(f"scale must be an integer between 1 and 16, got {describe(scale)}")
    if isinstance(frame_ms, bool) or not isinstance(frame_ms, int) \
            or not 10 <= frame_ms <= 60_000:
        raise UsageError(f"frame_ms must be an integer between 10 and 60000, got "
                         f"{frame_ms!r}")
    path = check_new_file(path, "animation file")
    if frames_dir is not None:
        frames_dir = make_folder(frames_dir, "frames folder")
    h, w = frames.shape[1:]
    images = [Image.fromarray(f).resize((w * scale, h * scale), Image.Resampling.NEAREST)
              for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=frame_ms, loop=0)
    atomic_write_bytes(path, buf.getvalue())
    if frames_dir is not None:
        for i, frame in enumerate(frames):
            save_png(frame, frames_dir / f"frame_{i:04d}.png")
    return path
