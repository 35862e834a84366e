"""The bulk PNG encoder (ganlite._png) and the files it is written through
(_files.FolderFiles): valid PNGs that Pillow decodes to exactly the pixels, byte for byte the
same for any batching or resume, complete files only, no debris after kill -9."""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import ganlite
from ganlite import OutputError, _files, _png


def parse_png(data: bytes) -> np.ndarray:
    """Decode one of our PNGs by the specification, without Pillow, checking everything
    Pillow may let pass: the signature, every chunk's CRC, the chunk order, IHDR's fields,
    the zlib stream (its Adler-32 included) and each row's filter byte."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert len(body) == length, "truncated chunk"
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data), "bytes after the last chunk"
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, method, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1])
    assert (depth, colour, method, filtering, interlace) == (8, 0, 0, 0, 0)
    assert chunks[2][1] == b""
    raw = zlib.decompress(chunks[1][1])  # checks the zlib header and Adler-32
    rows = np.frombuffer(raw, np.uint8).reshape(height, width + 1)
    assert not rows[:, 0].any(), "a row filter other than None"
    return rows[:, 1:]


def pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        assert image.mode == "L"
        return np.asarray(image)


def pillow_verify(data: bytes) -> None:
    """Pillow's own check of the chunk CRCs (verify() reads every chunk)."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        image.verify()


EDGE = {
    "black": np.zeros((3, 28, 28), np.uint8),
    "white": np.full((3, 28, 28), 255, np.uint8),
    "noise": np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8),
    "ramp": np.arange(28 * 28, dtype=np.uint32).reshape(1, 28, 28).astype(np.uint8),
    "one pixel": np.array([[[7]]], np.uint8),
    "wide": np.random.default_rng(1).integers(0, 256, (2, 3, 300), dtype=np.uint8),
}


@pytest.mark.parametrize("name", list(EDGE))
def test_edge_cases_decode_to_the_pixels(name):
    images = EDGE[name]
    files = _png.encode_gray(images)
    assert len(files) == len(images)
    for data, image in zip(files, images, strict=True):
        assert np.array_equal(parse_png(data), image)
        assert np.array_equal(pillow(data), image)
        pillow_verify(data)


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_model_output_decodes_to_the_pixels_at_every_level(default_generator, level):
    images = default_generator.generate(300, seed=7)
    for data, image in zip(_png.encode_gray(images, level), images, strict=True):
        assert np.array_equal(pillow(data), image)
        assert np.array_equal(parse_png(data), image)


def test_real_digits_decode_to_the_pixels(real_digits):
    images = real_digits[0]
    for data, image in zip(_png.encode_gray(images), images, strict=True):
        assert np.array_equal(pillow(data), image)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1),
       st.sampled_from(["noise", "sparse", "flat"]))
def test_any_grayscale_image_round_trips(height, width, seed, kind):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width), dtype=np.uint8)
    if kind == "sparse":   # digit-like: mostly black, a few bright pixels
        image[rng.random((height, width)) < 0.8] = 0
    elif kind == "flat":
        image[:] = image[0, 0]
    (data,) = _png.encode_gray(image[None])
    assert np.array_equal(parse_png(data), image)
    assert np.array_equal(pillow(data), image)


# Each <img> drawn on a canvas once the page has loaded; gray v must come back as opaque
# (v, v, v): -1 marks a pixel that did not.
_PAGE = """<html><body>%s<pre id="out">pending</pre><script>
window.onload = () => {
  const all = [];
  for (const img of document.images) {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const d = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const gray = [];
    for (let i = 0; i < d.length; i += 4)
      gray.push(d[i] === d[i + 1] && d[i] === d[i + 2] && d[i + 3] === 255 ? d[i] : -1);
    all.push(gray);
  }
  document.getElementById("out").textContent = JSON.stringify(all);
};
</script></body></html>"""


def _chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine")
def test_a_browser_decodes_the_same_pixels(tmp_path, default_generator):
    """A real headless Chromium draws each PNG on a canvas: the pixels it reads back are
    the image's, for the model's output, black, white and noise."""
    images = np.concatenate([default_generator.generate(40, seed=2), EDGE["black"][:1],
                             EDGE["white"][:1], EDGE["noise"][:5]])
    tags = "".join(f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                   for data in _png.encode_gray(images))
    page = tmp_path / "page.html"
    page.write_text(_PAGE % tags)
    browser = _chromium()
    assert browser is not None
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="out">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    decoded = np.array(json.loads(html.unescape(found[1])))
    assert np.array_equal(decoded.reshape(images.shape), images)


def test_bytes_are_deterministic_and_independent_of_the_batch(default_generator):
    images = default_generator.generate(64, seed=3)
    whole = _png.encode_gray(images)
    assert whole == _png.encode_gray(images.copy())
    one_by_one = [_png.encode_gray(images[i:i + 1])[0] for i in range(len(images))]
    assert whole == one_by_one
    # and fixed by the pixels alone: a different image gives different bytes
    assert len(set(whole)) == len({image.tobytes() for image in images})


def test_the_checker_catches_a_wrong_crc():
    """The CRC check above is real: a mutant encoder that got one CRC wrong fails it (and
    Pillow's verify); so does one that left out the chunk type from the CRC."""
    (data,) = _png.encode_gray(EDGE["noise"][:1])
    idat_end = len(data) - 12     # the IEND chunk is the last 12 bytes
    broken = data[:idat_end - 1] + bytes([data[idat_end - 1] ^ 1]) + data[idat_end:]
    with pytest.raises(AssertionError, match="bad CRC in b'IDAT'"):
        parse_png(broken)
    with pytest.raises(SyntaxError):
        pillow_verify(broken)
    body = data[8 + 25 + 8:idat_end - 4]
    typeless = data[:idat_end - 4] + struct.pack(">I", zlib.crc32(body))
    with pytest.raises(AssertionError, match="bad CRC"):
        parse_png(typeless + data[idat_end:])


@pytest.mark.parametrize("bad", [np.zeros((28, 28), np.uint8), np.zeros((1, 28, 28), np.int16),
                                 np.zeros((1, 0, 28), np.uint8), [[[0]]]])
def test_encoder_refuses_what_is_not_a_batch_of_gray_images(bad):
    with pytest.raises(ValueError):
        _png.encode_gray(bad)


def test_encoder_refuses_a_bad_level():
    for level in (-1, 10, True, 1.0):
        with pytest.raises(ValueError):
            _png.encode_gray(EDGE["black"], level)


def _files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".png"}


def test_written_pngs_are_generate_s_images_for_any_batch_size_and_resume(tmp_path,
                                                                           default_generator):
    n = 700
    expected = default_generator.generate(n, seed=9)
    runs = {}
    for batch_size in (1, 97, 256, 700):
        out = tmp_path / f"b{batch_size}"
        ganlite.write_images(default_generator, n, out, seed=9, batch_size=batch_size)
        runs[batch_size] = _files_of(out)
    files = runs[256]
    assert len(files) == n
    for i, (name, data) in enumerate(files.items()):
        assert name.startswith(f"{i:04d}_")
        assert np.array_equal(pillow(data), expected[i])
        assert np.array_equal(parse_png(data), expected[i])
    assert runs[1] == runs[97] == runs[256] == runs[700]

    # Resume: remove files here and there (as a killed run leaves gaps), rerun.
    out = tmp_path / "b97"
    for name in list(files)[::37] + list(files)[-5:]:
        (out / name).unlink()
    result = ganlite.write_images(default_generator, n, out, seed=9, batch_size=64)
    assert result.written == len(list(files)[::37]) + 5
    assert _files_of(out) == files


def test_folder_files_write_complete_files_and_leave_nothing_else(tmp_path):
    with _files.FolderFiles(tmp_path) as files:
        assert files.uses_tmpfile   # Linux on ext4 / tmpfs: no temporary names at all
        files.write("a.png", b"first")
        files.write("a.png", b"second, replacing")   # an existing name is replaced
        files.write("b.png", b"")
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]
    assert (tmp_path / "a.png").read_bytes() == b"second, replacing"
    assert (tmp_path / "b.png").read_bytes() == b""
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_folder_files_fallback_renames_a_temporary(tmp_path):
    """Where O_TMPFILE is missing: the temporary + rename path, same files, no debris."""
    with _files.FolderFiles(tmp_path) as files:
        files._tmpfile = False
        files.write("a.png", b"x" * 5000)
        files.write("a.png", b"y")
    assert os.listdir(tmp_path) == ["a.png"]
    assert (tmp_path / "a.png").read_bytes() == b"y"


@pytest.mark.parametrize("tmpfile", [True, False])
def test_a_write_cut_short_leaves_no_file(tmp_path, monkeypatch, tmpfile):
    """The disk fills after half the bytes: an OutputError naming the file, and neither
    the file nor a temporary in the folder."""
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 1:
            return real_write(fd, bytes(data)[:len(data) // 2])
        raise OSError(28, "No space left on device")

    with _files.FolderFiles(tmp_path) as files:
        files._tmpfile = tmpfile
        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(OutputError, match=f"{tmp_path / 'a.png'}: cannot write "
                                              r"\(No space left on device\)"):
            files.write("a.png", b"0123456789")
        monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_folder_files_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(OutputError, match=f"{missing}: cannot write"):
        _files.FolderFiles(missing)
    folder = tmp_path / "gone"
    folder.mkdir()
    with _files.FolderFiles(folder) as files:
        folder.rmdir()
        for tmpfile in (True, False):
            files._tmpfile = tmpfile
            with pytest.raises(OutputError, match=f"{folder / 'x.png'}: cannot write"):
                files.write("x.png", b"data")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_kill_9_leaves_only_complete_pngs_and_no_temporaries(tmp_path):
    """Files are written unnamed (O_TMPFILE) and linked when complete: a process killed
    at any moment leaves no half file and no temporary to clean up."""
    out = tmp_path / "k"
    env = {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "ganlite", "generate", "--n", "20000",
                             "--out", str(out), "-q", "--batch-size", "64"], env=env,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or len(os.listdir(out)) < 402):
        time.sleep(0.005)   # 400 images, the manifest and the lock file
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    names = os.listdir(out)
    assert not [name for name in names if name.endswith(".tmp")]
    pngs = [out / name for name in names if name.endswith(".png")]
    assert 400 <= len(pngs) < 20000
    for path in pngs:
        parse_png(path.read_bytes())
