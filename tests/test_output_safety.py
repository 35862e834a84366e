"""What a run leaves in its output folder, whatever happens: one writer at a time, no
debris after kill -9, only ganlite's files replaced by overwrite, nothing rewritten by a
rerun, and runs that cannot fit refused before they write."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganlite
from ganlite import _files

MANIFEST = ".ganlite-run.json"


def _env():
    return {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)}


def _ganlite(*args, **kwargs):
    """Start `python -m ganlite ARGS` as a real process."""
    return subprocess.Popen([sys.executable, "-m", "ganlite", *map(str, args)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".png")


def _debris(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def _assert_is_run(folder: Path, generator, n: int, seed: int) -> None:
    """The folder holds exactly run (seed, n): names, bytes, manifest; no debris."""
    files = _pngs(folder)
    assert len(files) == n
    expected = generator.generate(n, seed=seed)
    for i in (0, n // 2, n - 1):
        assert np.array_equal(np.asarray(Image.open(files[i])), expected[i])
    assert json.loads((folder / MANIFEST).read_text())["seed"] == seed
    assert not _debris(folder)


def test_two_runs_at_once_never_mix(tmp_path, default_generator):
    """Two real processes with different seeds started together into one folder, many
    times: exactly one writes, the other exits 1 at once with one line and writes
    nothing."""
    n = 300
    for attempt in range(6):
        out = tmp_path / f"same{attempt}"
        procs = {seed: _ganlite("generate", "--n", n, "--out", out, "--seed", seed, "-q")
                 for seed in (0, 1)}
        results = {seed: (p.wait(timeout=300), p.stderr.read()) for seed, p in procs.items()}
        winners = [seed for seed, (code, _) in results.items() if code == 0]
        assert len(winners) == 1, results
        (loser,) = set(results) - set(winners)
        code, err = results[loser]
        assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert "another ganlite run is writing" in err or "another run" in err
        _assert_is_run(out, default_generator, n, winners[0])


def test_locked_folder_is_refused_at_once_and_free_after_kill(tmp_path):
    out = tmp_path / "locked"
    first = _ganlite("generate", "--n", 20_000, "--out", out, "-q")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_pngs(out) if out.exists() else []) < 50:
        time.sleep(0.02)
    started = time.monotonic()
    second = _ganlite("generate", "--n", 20_000, "--out", out, "-q")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 1, err
    assert f"{out}: another ganlite run is writing into this folder (process {first.pid})" \
        in err
    assert time.monotonic() - started < 30   # at once, not after the first run ends
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    third = _ganlite("generate", "--n", 100, "--out", out, "-q", "--overwrite")
    _, err = third.communicate(timeout=300)
    assert third.returncode == 0, err       # the kernel released the dead run's lock
    assert len(_pngs(out)) == 100


@pytest.mark.parametrize("fmt", ["png", "npy"])
def test_kill_9_then_rerun_leaves_exactly_the_run(tmp_path, default_generator, fmt):
    n = 5_000 if fmt == "png" else 30_000
    out = tmp_path / fmt
    args = ("generate", "--n", n, "--out", out, "--seed", 5, "--format", fmt,
            "--batch-size", 512)
    proc = _ganlite(*args)
    partial = out / ".images.npy.ganlite-partial.tmp"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if fmt == "png" and out.exists() and len(os.listdir(out)) > 300:
            break
        if fmt == "npy" and partial.exists() and partial.stat().st_size > 2_000_000:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    # Debris a kill can leave (and the names of ganlite 0.1): the next run removes them.
    (out / ".0007.png.ganlite-999999.tmp").write_bytes(b"")
    (out / ".images.npy.12345.tmp").write_bytes(b"x" * 1000)
    rerun = _ganlite(*args)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert not _debris(out)
    expected = default_generator.generate(n, seed=5)
    if fmt == "npy":
        assert "resumed at image" in err            # not restarted from 0
        assert np.array_equal(np.load(out / "images.npy"), expected)
        names = {"images.npy", "labels.npy", MANIFEST, _files.LOCK_NAME}
        assert set(os.listdir(out)) == names
    else:
        files = _pngs(out)
        assert len(files) == n
        for i in range(0, n, 499):
            assert np.array_equal(np.asarray(Image.open(files[i])), expected[i])


def test_overwrite_replaces_only_ganlite_files(cli, tmp_path):
    out = tmp_path / "d"
    assert cli("generate", "--n", 38, "--out", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    result = cli("generate", "--n", 10, "--seed", 1, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert len(_pngs(out)) == 10
    assert "left 1 file(s) ganlite did not write" in result.output and "notes.txt" in \
        result.output
    assert (out / "notes.txt").read_text() == "mine"
    result = cli("generate", "--n", 10, "--out", out, "--overwrite", "--format", "npy")
    assert result.exit_code == 0, result.output
    assert not _pngs(out) and (out / "images.npy").exists()
    assert set(os.listdir(out)) == {"images.npy", "labels.npy", MANIFEST, _files.LOCK_NAME,
                                    "notes.txt"}


def test_rerun_of_a_complete_run_rewrites_nothing(cli, tmp_path):
    for fmt in ("png", "npy"):
        out = tmp_path / fmt
        assert cli("generate", "--n", 30, "--out", out, "--format", fmt).exit_code == 0
        # The lock file is rewritten (it records the pid of the run holding it); the
        # images, arrays and manifest are not.
        before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()
                  if p.name != _files.LOCK_NAME}
        result = cli("generate", "--n", 30, "--out", out, "--format", fmt)
        assert result.exit_code == 0 and "already holds this run" in result.output
        after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()
                 if p.name != _files.LOCK_NAME}
        assert before == after


def test_manifest_stores_the_label_rule_not_the_labels(tmp_path, default_generator):
    out = tmp_path / "m"
    ganlite.write_images(default_generator, 2000, out, labels=ganlite.LabelCycle(range(10)),
                         fmt="npy")
    assert json.loads((out / MANIFEST).read_text())["labels"] == {"cycle": list(range(10))}
    per_image = np.arange(2000) % 3
    ganlite.write_images(default_generator, 2000, tmp_path / "p", labels=per_image,
                         fmt="npy")
    text = (tmp_path / "p" / MANIFEST).read_text()
    assert len(text) < 1000 and "per_image_sha256" in text
    assert np.array_equal(np.load(tmp_path / "p" / "labels.npy"), per_image)


def test_foreign_images_are_not_taken_for_a_run(cli, tmp_path):
    (tmp_path / "0000.png").write_bytes(b"not ours")
    result = cli("generate", "--n", 3, "--out", tmp_path)
    assert result.exit_code == 1 and "no ganlite run manifest describes" in result.output
    assert (tmp_path / "0000.png").read_bytes() == b"not ours"


@pytest.mark.parametrize("extra", [[], ["--balanced"], ["--digit", "3"],
                                   ["--format", "npy"]])
def test_a_run_that_cannot_fit_is_refused_before_writing(cli, tmp_path, extra):
    out = tmp_path / "huge"
    started = time.monotonic()
    result = cli("generate", "--n", 10**12, "--out", out, *extra)
    assert result.exit_code == 1, result.output
    assert "needs" in result.output and "free" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    assert time.monotonic() - started < 20


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB file system (tmpfs; needs root)."""
    disk = tmp_path / "disk"
    _tmpfs(disk, "1m")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_free_space_is_checked_on_the_real_file_system(cli, small_disk):
    result = cli("generate", "--n", 2000, "--out", small_disk / "e", "--format", "npy")
    assert result.exit_code == 1, result.output
    assert "needs 1.6 MB but only" in result.output    # 2000 * (784 + 8) + 2 headers
    assert not (small_disk / "e").exists()
    result = cli("generate", "--n", 1000, "--out", small_disk / "d", "--format", "npy")
    assert result.exit_code == 0, result.output        # 792 KB fits in 1 MB


@pytest.mark.parametrize("fmt", ["png", "npy"])
def test_disk_full_while_writing_is_one_line(cli, small_disk, monkeypatch, fmt):
    """Another process fills the disk after the space check: a real ENOSPC, reported as
    one line naming the file; no half file."""
    monkeypatch.setattr(_files, "check_free_space", lambda *a, **k: None)
    result = cli("generate", "--n", 5000, "--out", small_disk / "d", "--format", fmt, "-q")
    assert result.exit_code == 1
    assert "No space left on device" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    for p in (small_disk / "d").glob("*.png"):
        assert Image.open(p).size == (28, 28)


def test_disk_full_for_grid_and_animation(cli, small_disk, tmp_path):
    (small_disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 8192))
    result = cli("generate", "--n", 100, "--out", tmp_path / "d", "--grid",
                 small_disk / "grid.png")
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert not list(small_disk.glob("*grid*"))
    result = cli("interpolate", "--seeds", "1,2", "--steps", 200, "--out",
                 small_disk / "walk.gif")
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert not list(small_disk.glob("*walk*"))


def test_debris_of_a_killed_grid_or_animation_is_removed(cli, tmp_path):
    """kill -9 while a grid or GIF is written leaves `.NAME.ganlite-PID.tmp`: the next
    write of that file removes it if that process is gone (and leaves a live one's)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in ("grid.png", "walk.gif"):
        (tmp_path / f".{name}.ganlite-{dead.pid}.tmp").write_bytes(b"half")
        (tmp_path / f".{name}.ganlite-1.tmp").write_bytes(b"pid 1 is alive")
    assert cli("generate", "-n", 4, "--out", tmp_path / "d", "--grid",
               tmp_path / "grid.png").exit_code == 0
    assert cli("interpolate", "--out", tmp_path / "walk.gif").exit_code == 0
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert left == [".grid.png.ganlite-1.tmp", ".walk.gif.ganlite-1.tmp"]
