"""A minimal PNG encoder for 8-bit grayscale images, for writing many small files fast.

Each file is the PNG signature, an IHDR chunk (8-bit grayscale, no interlace), one IDAT
chunk holding zlib.compress of the rows, each row prefixed by filter type 0 (None), and
IEND. No other chunks: the bytes depend only on the pixels and the zlib level (and the
zlib library's version, as with any encoder).

Why not Pillow: for a 28x28 image Pillow spends ~100-250 us per file in Python and
encoder setup (measured in bench/png_rate.py); this spends ~25 us, nearly all of it in
zlib, which releases the GIL while it compresses. Filter 0 is also the smallest here:
digits are runs of black with a few bright strokes, which deflate finds on their own.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# zlib level 1: measured on the default model's images (bench/png_rate.py --levels):
# 258 bytes at ~23 us, against 244 bytes at ~44 us for level 6 and 241 at ~74 us for 9;
# every one of them takes one allocation unit (4 KB) on disk anyway.
LEVEL = 1
_IDAT_CRC = zlib.crc32(b"IDAT")
_LENGTH = struct.Struct(">I")


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return _LENGTH.pack(len(data)) + kind + data + _LENGTH.pack(zlib.crc32(kind + data))


def header(height: int, width: int) -> bytes:
    """Signature and IHDR of an 8-bit grayscale, non-interlaced image."""
    return SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))


IEND = chunk(b"IEND", b"")


def encode_gray(images: np.ndarray, level: int = LEVEL) -> list[bytes]:
    """PNG files of uint8 [n, height, width] grayscale images (0 = black), one per image.

    Args:
        images: uint8 [n, height, width], height and width >= 1.
        level: zlib level, 0 (stored) .. 9.

    Returns:
        n bytes objects, each a complete PNG file.

    Raises:
        ValueError: `images` is not a 3-D uint8 array with non-empty images, or a bad level.
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3 \
            or images.shape[1] == 0 or images.shape[2] == 0:
        raise ValueError("images must be a uint8 [n, height, width] array")
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
        raise ValueError(f"zlib level must be 0..9, got {level!r}")
    n, height, width = images.shape
    # Every row starts with its filter type byte (0): one copy for the whole batch.
    rows = np.zeros((n, height, width + 1), np.uint8)
    rows[:, :, 1:] = images
    head, compress, crc32, pack = header(height, width), zlib.compress, zlib.crc32, _LENGTH.pack
    files = []
    for raw in rows:
        idat = compress(raw, level)
        files.append(b"".join((head, pack(len(idat)), b"IDAT", idat,
                               pack(crc32(idat, _IDAT_CRC)), IEND)))
    return files
