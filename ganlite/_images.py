"""Writing images: PNG files (atomically), grids, and reading a folder of PNGs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._errors import ImageInputError, OutputError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: never half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def png_bytes(image: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG encoding of one uint8 [H, W] grayscale image."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(
        buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Save one uint8 [28, 28] image (0 = black, 255 = white) as a grayscale PNG."""
    path = Path(path)
    atomic_write_bytes(path, png_bytes(image))
    return path


def make_grid(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile uint8 [n, h, w] images into one uint8 image, `columns` wide, with a dark gap."""
    images = np.asarray(images, dtype=np.uint8)
    n, h, w = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = -(-n // columns)
    grid = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap), 48, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[gap + r * (h + gap):gap + r * (h + gap) + h,
             gap + c * (w + gap):gap + c * (w + gap) + w] = image
    return grid


def save_grid(images: np.ndarray, path: str | os.PathLike, columns: int | None = None,
              scale: int = 2) -> Path:
    """Save uint8 [n, 28, 28] images as one PNG grid, enlarged `scale` times."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"--grid {path}: is a folder, expected a file name such as grid.png")
    if not path.parent.is_dir():
        raise OutputError(f"--grid {path}: folder {path.parent} does not exist")
    grid = make_grid(images, columns)
    image = Image.fromarray(grid)
    if scale > 1:
        image = image.resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


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
