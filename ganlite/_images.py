"""Writing images: PNG files (atomically), grids, and reading a folder of PNGs."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ._errors import ImageInputError, UsageError, describe
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
    if isinstance(columns, bool) or not isinstance(columns, int) \
            or not 1 <= columns <= MAX_GRID_IMAGES:
        raise UsageError(f"columns must be an integer between 1 and {MAX_GRID_IMAGES}, got "
                         f"{describe(columns)}")
    if isinstance(gap, bool) or not isinstance(gap, int) or not 0 <= gap <= 64:
        raise UsageError(f"gap must be an integer between 0 and 64, got {describe(gap)}")
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
        raise UsageError(f"scale must be an integer between 1 and 16, got {describe(scale)}")
    grid = make_grid(images, columns)
    path = check_new_file(path, "grid file")
    image = Image.fromarray(grid)
    if scale > 1:
        image = image.resize((grid.shape[1] * scale, grid.shape[0] * scale),
                             Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


# A 28x28 PNG is well under 2 KB; anything over this is refused unread.
MAX_IMAGE_FILE_BYTES = 1 << 20
# At most this many files in one image folder (uint8 [n, 28, 28] is then 784 MB).
MAX_FOLDER_IMAGES = 1_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_png_folder(folder: str | os.PathLike) -> np.ndarray:
    """Every file in `folder` (not subfolders or names starting with ".") as a 28x28
    grayscale PNG, sorted by name: uint8 [n, 28, 28].

    Conversion by PNG colour type: grayscale of 1, 2, 4 or 8 bits is taken as is (Pillow
    spreads 1-4 bits over 0-255); 16-bit grayscale is scaled to round(v / 257); palette,
    RGB and RGBA become luminance, L = 0.299 R + 0.587 G + 0.114 B (Pillow's convert("L")).
    16-bit RGB, RGBA and grayscale+alpha are cut by Pillow to the high byte of each channel
    (v // 256, at most 1 below round(v / 257)). Alpha (LA, RGBA, palette or tRNS
    transparency) is ignored: a pixel counts by its colour alone, not blended onto any
    background.

    Anything else raises ImageInputError with one line naming the folder or file: a folder
    that is missing or unreadable, empty or holding more than MAX_FOLDER_IMAGES files; a
    file over MAX_IMAGE_FILE_BYTES, not a PNG, not 28x28 by its header (checked before
    any pixel is decoded), or that Pillow cannot decode. Pillow's warnings are silenced.
    """
    if not isinstance(folder, (str, os.PathLike)) or not os.fspath(folder):
        raise ImageInputError(f"an image folder is a path, got {describe(folder)}")
    folder = Path(folder)
    files = _list_folder(folder)
    images = np.empty((len(files), 28, 28), np.uint8)
    for i, path in enumerate(files):
        images[i] = _read_gray28(path)
    return images


def _list_folder(folder: Path) -> list[Path]:
    """The files of an image folder, sorted by name; past MAX_FOLDER_IMAGES they are only
    counted, not kept."""
    files: list[Path] = []
    count = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                count += 1
                if count <= MAX_FOLDER_IMAGES:
                    files.append(Path(entry.path))
    except FileNotFoundError:
        raise ImageInputError(f"image folder {folder} does not exist") from None
    except NotADirectoryError:
        raise ImageInputError(f"image folder {folder} is not a folder") from None
    except (OSError, ValueError) as e:      # ValueError: a NUL byte in the name
        reason = getattr(e, "strerror", None) or str(e) or e.__class__.__name__
        raise ImageInputError(f"image folder {folder} cannot be listed ({reason})") from None
    if count > MAX_FOLDER_IMAGES:
        raise ImageInputError(f"image folder {folder} holds {count} files, more than the "
                              f"limit of {MAX_FOLDER_IMAGES}")
    if not files:
        raise ImageInputError(f"image folder {folder} has no image files in it")
    return sorted(files)


def _read_gray28(path: Path) -> np.ndarray:
    """One file as uint8 [28, 28], converted as load_png_folder describes, or
    ImageInputError."""
    import io
    import warnings

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IMAGE_FILE_BYTES + 1)
    except OSError as e:
        raise ImageInputError(f"{path}: cannot be read "
                              f"({e.strerror or e.__class__.__name__})") from None
    if len(data) > MAX_IMAGE_FILE_BYTES:
        raise ImageInputError(f"{path}: file is larger than {MAX_IMAGE_FILE_BYTES} bytes, "
                              "far too big for a 28x28 PNG")
    if not data.startswith(_PNG_SIGNATURE):
        raise ImageInputError(f"{path}: not a PNG file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                if image.size != (28, 28):
                    raise ImageInputError(f"{path}: image is {image.size[0]}x"
                                          f"{image.size[1]}, expected 28x28")
                if image.mode in ("I;16", "I"):     # 16-bit grayscale ("I": older Pillow)
                    wide = np.asarray(image, np.uint32)
                    return ((wide + 128) // 257).astype(np.uint8)
                if image.mode in ("1", "L", "P", "LA", "RGB", "RGBA"):
                    return np.asarray(image.convert("L"), np.uint8)
                raise ImageInputError(f"{path}: unsupported image mode {image.mode}")
        except ImageInputError:
            raise
        except Image.DecompressionBombError:
            raise ImageInputError(f"{path}: image header declares a huge size, expected "
                                  "28x28") from None
        except Exception as e:
            # Pillow reports malformed input as OSError, SyntaxError, ValueError, EOFError,
            # RuntimeError, struct.error...: any failure to decode this untrusted file is
            # one refusal, with Pillow's error kept as the cause.
            reason = (str(e).splitlines() or [e.__class__.__name__])[0][:200]
            raise ImageInputError(f"{path}: not a readable PNG ({reason})") from e
