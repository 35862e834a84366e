"""Writing images: PNG files (atomically), grids, and reading a folder of PNGs."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._errors import ImageInputError, UsageError
from ._files import atomic_write_bytes, check_new_file

# make_grid/save_grid: a grid is a picture, not a data file (that is write_images' job).
MAX_GRID_IMAGES = 10_000


def png_bytes(image: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG encoding of one uint8 [H, W] grayscale image."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(
        buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Save one uint8 [28, 28] image (0 = black, 255 = white) as a grayscale PNG.

    Raises:
        UsageError: `image` is not a 2-D uint8 array.
        OutputError: the file cannot be written.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8 or not image.size:
        raise UsageError(f"an image must be uint8 [height, width], got {image.dtype} "
                         f"{list(image.shape)}")
    return atomic_write_bytes(path, png_bytes(image))


def _check_images(images: object) -> np.ndarray:
    """uint8 [n, h, w] with n >= 1, or UsageError."""
    array = np.asarray(images)
    if array.ndim != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise UsageError(f"images must be uint8 [n, height, width] with n >= 1, got "
                         f"{array.dtype} {list(array.shape)}")
    if array.shape[1] > 1024 or array.shape[2] > 1024 or len(array) > MAX_GRID_IMAGES:
        raise UsageError(f"a grid takes at most {MAX_GRID_IMAGES} images of at most "
                         f"1024x1024, got {list(array.shape)}")
    return array


def make_grid(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile uint8 [n, h, w] images into one uint8 image, `columns` wide, with a dark gap.

    Raises:
        UsageError: not uint8 [n, h, w], too many images, or a bad `columns`/`gap`.
    """
    images = _check_images(images)
    n, h, w = images.shape
    columns = int(np.ceil(np.sqrt(n))) if columns is None else columns
    if isinstance(columns, bool) or not isinstance(columns, int) or not 1 <= columns <= n:
        raise UsageError(f"columns must be an integer between 1 and {n}, got {columns!r}")
    if isinstance(gap, bool) or not isinstance(gap, int) or not 0 <= gap <= 64:
        raise UsageError(f"gap must be an integer between 0 and 64, got {gap!r}")
    rows = -(-n // columns)
    grid = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap), 48, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[gap + r * (h + gap):gap + r * (h + gap) + h,
             gap + c * (w + gap):gap + c * (w + gap) + w] = image
    return grid


def save_grid(images: np.ndarray, path: str | os.PathLike, columns: int | None = None,
              scale: int = 2) -> Path:
    """Save uint8 [n, 28, 28] images as one PNG grid, enlarged `scale` times.

    Raises:
        UsageError: bad images, columns or scale.
        OutputError: the file cannot be written (a folder, a missing folder, disk full).
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 16:
        raise UsageError(f"scale must be an integer between 1 and 16, got {scale!r}")
    grid = make_grid(images, columns)
    path = check_new_file(path, "grid file")
    image = Image.fromarray(grid)
    if scale > 1:
        image = image.resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def load_png_folder(folder: str | os.PathLike) -> np.ndarray:
    """All *.png in a folder as uint8 [n, 28, 28]; any other or wrong-size file is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageInputError(f"--images {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ImageInputError(f"--images {folder}: no image files in it")
    images = np.empty((len(files), 28, 28), np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                if image.size != (28, 28):
                    raise ImageInputError(f"{path}: image is {image.size[0]}x"
                                          f"{image.size[1]}, expected 28x28")
                if image.mode not in ("L", "1", "P", "RGB", "RGBA", "LA", "I;16", "I"):
                    raise ImageInputError(f"{path}: unsupported image mode {image.mode}")
                images[i] = np.asarray(image.convert("L"))
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise ImageInputError(f"{path}: not a readable image ({e.__class__.__name__})") \
                from None
    return images
