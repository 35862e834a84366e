"""Reading a folder of PNGs (load_png_folder, evaluate(images=...), `ganlite evaluate
--images`): hostile files are refused with one line naming them, before their pixels are
decoded where the header already says no; accepted colour types convert as documented."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import ganlite
from ganlite import _images
from ganlite._images import MAX_FOLDER_IMAGES, MAX_IMAGE_FILE_BYTES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRAY = (np.arange(784) % 256).astype(np.uint8).reshape(28, 28)     # 0..255, three times


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, depth: int, colour_type: int, rows: list[bytes], *,
            before_idat: bytes = b"", after_idat: bytes = b"") -> bytes:
    """A PNG written chunk by chunk from the spec: IHDR, chunks, IDAT (filter 0), IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\0" + row for row in rows))
    return (PNG_SIGNATURE + chunk(b"IHDR", ihdr) + before_idat + chunk(b"IDAT", idat)
            + after_idat + chunk(b"IEND", b""))


def pillow_png(image: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **params)
    return buf.getvalue()


def folder_with(tmp_path: Path, data: bytes, name: str = "a.png") -> Path:
    folder = tmp_path / "digits"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    return folder


def refused(folder, *words: str) -> str:
    """load_png_folder(folder) raises ImageInputError: one line holding every word."""
    with pytest.raises(ganlite.ImageInputError) as info:
        ganlite.load_png_folder(folder)
    message = str(info.value)
    assert "\n" not in message and "--images" not in message
    for word in words:
        assert word in message
    return message


def bomb_png(side: int) -> bytes:
    """IHDR declares side x side 8-bit gray; the IDAT holds one row: tiny file, huge image."""
    return raw_png(side, side, 8, 0, [bytes(side)])


def text_bomb(kind: bytes) -> bytes:
    """A zTXt or iTXt chunk whose text inflates to 50 MB (compressed: about 50 KB)."""
    text = zlib.compress(b"a" * 50_000_000, 9)
    if kind == b"zTXt":
        return chunk(b"zTXt", b"comment\0\0" + text)
    return chunk(b"iTXt", b"comment\0\1\0\0\0" + text)


# -- the folder ------------------------------------------------------------------------

def test_folder_missing(tmp_path):
    refused(tmp_path / "nope", f"image folder {tmp_path / 'nope'}", "does not exist")


def test_folder_is_a_file(tmp_path):
    (tmp_path / "f.png").write_bytes(pillow_png(Image.fromarray(GRAY)))
    refused(tmp_path / "f.png", f"image folder {tmp_path / 'f.png'}", "is not a folder")


def test_folder_cannot_be_listed(tmp_path, monkeypatch):
    # Tests may run as root, for whom chmod 000 does not stop a listing.
    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(_images.os, "scandir", denied)
    refused(tmp_path, f"image folder {tmp_path}", "cannot be listed (Permission denied)")


def test_folder_without_image_files(tmp_path):
    (tmp_path / ".hidden.png").write_bytes(pillow_png(Image.fromarray(GRAY)))
    (tmp_path / "sub").mkdir()
    refused(tmp_path, f"image folder {tmp_path}", "no image files")


def test_too_many_files_refused_before_reading_or_allocating(tmp_path, monkeypatch):
    assert MAX_FOLDER_IMAGES == 1_000_000
    monkeypatch.setattr(_images, "MAX_FOLDER_IMAGES", 3)
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(b"not read")     # reading one would fail first

    class NoNumpy:
        def __getattr__(self, name):
            raise AssertionError(f"np.{name} used before the file count was checked")
    monkeypatch.setattr(_images, "np", NoNumpy())
    refused(tmp_path, f"image folder {tmp_path}", "holds 5 files", "limit of 3")


# -- one file --------------------------------------------------------------------------

def test_file_cannot_be_read(tmp_path, monkeypatch):
    folder = folder_with(tmp_path, pillow_png(Image.fromarray(GRAY)))

    def denied(path, mode="r"):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(_images, "open", denied, raising=False)
    refused(folder, str(folder / "a.png"), "cannot be read (Permission denied)")


def test_oversized_file_refused_unread(tmp_path):
    # A valid 28x28 PNG padded past the cap after IEND: Pillow alone would accept it.
    assert MAX_IMAGE_FILE_BYTES == 1 << 20
    data = pillow_png(Image.fromarray(GRAY))
    folder = folder_with(tmp_path, data + bytes(MAX_IMAGE_FILE_BYTES + 1 - len(data)))
    refused(folder, str(folder / "a.png"), f"larger than {MAX_IMAGE_FILE_BYTES} bytes")


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "GIF", "TIFF", "text"])
def test_not_a_png(tmp_path, fmt):
    if fmt == "text":
        data = b"not a png"
    else:
        buf = io.BytesIO()
        Image.fromarray(GRAY).save(buf, format=fmt)
        data = buf.getvalue()
    refused(folder_with(tmp_path, data), str(tmp_path / "digits" / "a.png"), "not a PNG file")


def test_wrong_size(tmp_path):
    folder = folder_with(tmp_path, pillow_png(Image.new("L", (32, 28))))
    refused(folder, str(folder / "a.png"), "image is 32x28, expected 28x28")


def test_decompression_bomb_header_refused(tmp_path):
    folder = folder_with(tmp_path, bomb_png(30_000))
    assert (folder / "a.png").stat().st_size < 1000
    refused(folder, str(folder / "a.png"), "huge size", "expected 28x28")


def test_large_header_refused_before_decoding_without_warnings(tmp_path, monkeypatch):
    # 10000x10000 is past Pillow's warning limit but under its error limit: the header
    # check refuses it before any pixel is decoded, and the DecompressionBombWarning
    # stays inside.
    from PIL import PngImagePlugin

    decoded = []
    prepare = PngImagePlugin.PngImageFile.load_prepare

    def spy(self):
        decoded.append(self.size)
        return prepare(self)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_prepare", spy)
    folder = folder_with(tmp_path, bomb_png(10_000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused(folder, str(folder / "a.png"), "image is 10000x10000, expected 28x28")
    assert [str(w.message) for w in caught] == []
    assert decoded == []
    ganlite.load_png_folder(folder_with(tmp_path, pillow_png(Image.fromarray(GRAY))))
    assert decoded == [(28, 28)]        # the spy does see a decode


@pytest.mark.parametrize("where", ["zTXt before IDAT", "iTXt before IDAT", "zTXt after IDAT",
                                   "80 zTXt of 1 MB"])
def test_text_chunk_bomb(tmp_path, where):
    rows = [bytes(28)] * 28
    if where == "80 zTXt of 1 MB":      # each under Pillow's per-chunk cap, 80 MB in all
        one = chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"a" * 1_000_000, 9))
        data = raw_png(28, 28, 8, 0, rows, before_idat=one * 80)
    elif where.endswith("before IDAT"):
        data = raw_png(28, 28, 8, 0, rows, before_idat=text_bomb(where[:4].encode()))
    else:
        data = raw_png(28, 28, 8, 0, rows, after_idat=text_bomb(b"zTXt"))
    assert len(data) < MAX_IMAGE_FILE_BYTES
    folder = folder_with(tmp_path, data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused(folder, str(folder / "a.png"), "not a readable PNG")
    assert caught == []


def test_plain_text_chunk_over_the_cap(tmp_path):
    data = raw_png(28, 28, 8, 0, [bytes(28)] * 28,
                   before_idat=chunk(b"tEXt", b"comment\0" + b"a" * (2 << 20)))
    folder = folder_with(tmp_path, data)
    refused(folder, str(folder / "a.png"), "larger than")


def test_truncated_png(tmp_path):
    data = pillow_png(Image.fromarray(GRAY), compress_level=0)
    folder = folder_with(tmp_path, data[:len(data) // 2])
    refused(folder, str(folder / "a.png"), "not a readable PNG")


def test_unsupported_mode_refused(tmp_path, monkeypatch):
    # No PNG opens in another mode with this Pillow; pretend one does (16-bit gray read as
    # Pillow's big-endian I;16B) to reach the refusal.
    from PIL import PngImagePlugin

    monkeypatch.setitem(PngImagePlugin._MODES, (16, 0), ("I;16B", "I;16B"))
    folder = folder_with(tmp_path, pillow_png(Image.fromarray(GRAY.astype(np.uint16))))
    refused(folder, str(folder / "a.png"), "unsupported image mode I;16B")


# -- accepted colour types -------------------------------------------------------------

@pytest.mark.parametrize("opened_as", ["I;16", "I"])
def test_16bit_gray_is_scaled_not_clipped(tmp_path, monkeypatch, opened_as):
    from PIL import PngImagePlugin

    if opened_as == "I":        # as Pillow before I;16 support opened 16-bit gray PNGs
        monkeypatch.setitem(PngImagePlugin._MODES, (16, 0), ("I", "I;16B"))
    values = np.linspace(0, 65535, 784).round().astype(np.uint16).reshape(28, 28)
    values[0, :4] = [0, 128, 129, 65535]        # round(v / 257) just below and above .5
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    with Image.open(io.BytesIO(pillow_png(image))) as reopened:
        assert reopened.mode == opened_as
    got = ganlite.load_png_folder(folder_with(tmp_path, pillow_png(image)))[0]
    assert list(got[0, :4]) == [0, 0, 1, 255]
    np.testing.assert_array_equal(got, np.rint(values / 257).astype(np.uint8))


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


RGB = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
ALPHA = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
# 16-bit samples, big-endian as PNG stores them; high byte GRAY, low byte 0..255.
WIDE = (GRAY.astype(np.uint32) * 256 + np.arange(784).reshape(28, 28) % 256).astype(">u2")


def _cases():
    palette = RGB.reshape(-1, 3)[:256]
    indices = GRAY
    p = Image.frombytes("P", (28, 28), indices.tobytes())
    p.putpalette(palette.tobytes())
    bits = GRAY % 2 == 1
    yield "8-bit gray", pillow_png(Image.fromarray(GRAY)), GRAY
    yield "8-bit gray, tRNS", pillow_png(Image.fromarray(GRAY), transparency=7), GRAY
    yield "1-bit", pillow_png(Image.fromarray(bits)), np.where(bits, 255, 0)
    yield ("2-bit gray", raw_png(28, 28, 2, 0, [bytes([0b00011011] * 7)] * 28),
           np.tile([0, 85, 170, 255], (28, 7)))
    yield ("4-bit gray", raw_png(28, 28, 4, 0, [bytes([0x0F, 0x7A] * 7)] * 28),
           np.tile([0, 255, 119, 170], (28, 7)))
    yield "palette", pillow_png(p), luma(palette[indices].astype(float))
    la = Image.frombytes("LA", (28, 28), np.stack([GRAY, ALPHA], -1).tobytes())
    yield "gray+alpha, alpha ignored", pillow_png(la), GRAY
    yield "RGB", pillow_png(Image.fromarray(RGB)), luma(RGB.astype(float))
    yield ("RGBA, alpha ignored", pillow_png(Image.fromarray(np.dstack([RGB, ALPHA]))),
           luma(RGB.astype(float)))
    wide_rgb = [np.repeat(row, 3).tobytes() for row in WIDE]
    yield "16-bit RGB", raw_png(28, 28, 16, 2, wide_rgb), WIDE // 256
    wide_la = [np.stack([row, 65535 - row], -1).astype(">u2").tobytes() for row in WIDE]
    yield "16-bit gray+alpha", raw_png(28, 28, 16, 4, wide_la), WIDE // 256


CASES = list(_cases())


@pytest.mark.parametrize("data, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_accepted_modes_convert_as_documented(tmp_path, data, expected):
    got = ganlite.load_png_folder(folder_with(tmp_path, data))
    assert got.shape == (1, 28, 28) and got.dtype == np.uint8
    # Luminance is Pillow's fixed-point version of 0.299 R + 0.587 G + 0.114 B.
    assert np.abs(got[0].astype(float) - np.asarray(expected, float)).max() <= 1
    if np.asarray(expected).dtype != float:
        np.testing.assert_array_equal(got[0], expected)


def test_files_sorted_by_name(tmp_path):
    folder = folder_with(tmp_path, pillow_png(Image.fromarray(GRAY)), "b.png")
    folder_with(tmp_path, pillow_png(Image.fromarray(255 - GRAY)), "a.png")
    got = ganlite.load_png_folder(folder)
    np.testing.assert_array_equal(got, [255 - GRAY, GRAY])


# -- whatever the bytes: an array or one ImageInputError --------------------------------

SEEDS = [pillow_png(Image.fromarray(GRAY)), pillow_png(Image.fromarray(RGB)),
         pillow_png(Image.fromarray(GRAY.astype(np.uint16) * 257)),
         raw_png(28, 28, 16, 4, [np.repeat(row, 2).tobytes() for row in WIDE])]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS),
       edits=st.lists(st.tuples(st.integers(8, 2000), st.integers(0, 255)), max_size=6),
       cut=st.integers(8, 3000))
def test_mangled_png_gives_array_or_image_input_error(seed, edits, cut):
    data = bytearray(seed[:cut])
    for at, value in edits:
        if at < len(data):
            data[at] = value
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a.png").write_bytes(bytes(data))
        try:
            got = ganlite.load_png_folder(tmp)
        except ganlite.ImageInputError as e:
            assert "\n" not in str(e) and str(Path(tmp) / "a.png") in str(e)
        else:
            assert got.shape == (1, 28, 28)


# -- callers: evaluate(images=...) and the CLI -----------------------------------------

def test_api_evaluate_passes_the_refusal_on(tmp_path):
    folder = folder_with(tmp_path, bomb_png(30_000))
    with pytest.raises(ganlite.ImageInputError, match="huge size"):
        ganlite.evaluate(images=folder)


HOSTILE = {
    "missing folder": lambda tmp: tmp / "nope",
    "bomb": lambda tmp: folder_with(tmp, bomb_png(30_000)),
    "large header": lambda tmp: folder_with(tmp, bomb_png(10_000)),
    "zTXt bomb": lambda tmp: folder_with(tmp, raw_png(28, 28, 8, 0, [bytes(28)] * 28,
                                                      before_idat=text_bomb(b"zTXt"))),
    "not a png": lambda tmp: folder_with(tmp, b"not a png"),
    "wrong size": lambda tmp: folder_with(tmp, pillow_png(Image.new("L", (32, 32)))),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_cli_one_line_exit_2(cli, tmp_path, kind):
    folder = HOSTILE[kind](tmp_path)
    result = cli("evaluate", "--images", folder)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(folder) in lines[0]
    assert "Traceback" not in result.output and "Warning" not in result.output


@pytest.mark.parametrize("side", [30_000, 10_000])
def test_cli_subprocess_stderr_is_one_line(tmp_path, side):
    # A real process: nothing but the one line may reach stderr (no warning, no traceback),
    # even with every warning shown.
    folder = folder_with(tmp_path, bomb_png(side))
    env = dict(os.environ, PYTHONWARNINGS="always",
               PYTHONPATH=str(Path(ganlite.__file__).parent.parent))
    proc = subprocess.run([sys.executable, "-m", "ganlite", "evaluate", "--images", folder],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"Error: {folder / 'a.png'}: ")
