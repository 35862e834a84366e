"""Pixel conversions between a generator's float range and image bytes: the one
definition that training, export and the tests share.

A generator's tanh output lies in [-1, 1]; images are uint8, 0 = black, 255 = white.
to_uint8 is the rounding the exported ONNX graphs perform (export/convert.py builds the
same arithmetic in TensorFlow, and a test checks that the two agree pixel for pixel).
"""
from __future__ import annotations

import numpy as np

from ._errors import UsageError, describe

__all__ = ["to_uint8", "to_unit_range"]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float pixels in [-1, 1] -> uint8 0..255: clip(round((x + 1) * 127.5), 0, 255),
    rounding half to even (as numpy's rint and TensorFlow's round do).

    Args:
        images: a floating-point array of any shape; values outside [-1, 1] are clipped.

    Returns:
        uint8 array of the same shape.

    Raises:
        UsageError: `images` is not a floating-point array or holds NaN.
    """
    array = np.asarray(images) if isinstance(images, np.ndarray) else None
    if array is None or array.dtype.kind != "f":
        raise UsageError(f"images must be a floating-point array in [-1, 1], got "
                         f"{describe(images)}")
    scaled = np.rint((array.astype(np.float32, copy=False) + np.float32(1.0))
                     * np.float32(127.5))
    if np.isnan(scaled).any():
        raise UsageError("images hold NaN: no pixel value to give them")
    return np.clip(scaled, 0, 255).astype(np.uint8)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 -> float32 in [-1, 1] (x / 127.5 - 1), the range of a
    generator's tanh output; to_uint8 inverts it exactly.

    Args:
        images: a uint8 array of any shape.

    Returns:
        float32 array of the same shape.

    Raises:
        UsageError: `images` is not a uint8 array.
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise UsageError(f"images must be a uint8 array, got {describe(images)}")
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
