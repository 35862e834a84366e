"""Writing images: PNG files (atomically), grids, and reading a folder of PNGs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

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
