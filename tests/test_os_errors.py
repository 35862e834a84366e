"""The operating system says no (unwritable places, full or closed stdout, a deleted
working directory): one line, exit 1, checked before work starts where it can be."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ganlite


def _run(args, cwd=None, stdout=subprocess.PIPE, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)}
    return subprocess.run([sys.executable, "-m", "ganlite", *map(str, args)], env=env,
                          cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=300, **kwargs)


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    return lines[0]


@pytest.mark.parametrize("args", [["info"], ["info", "--json"], ["models"]])
def test_full_stdout(args):
    with open("/dev/full", "w") as full:
        done = _run(args, stdout=full)
    assert done.returncode == 1
    assert "No space left on device" in _one_error_line(done.stderr)


def test_closed_stdout():
    done = _run(["info"], stdout=None, stdin=subprocess.DEVNULL,
                preexec_fn=lambda: os.close(1))
    assert done.returncode == 1
    assert "standard output is closed" in _one_error_line(done.stderr)


def test_stdout_closed_by_the_reader():
    """`ganlite info --json | head -0`: the reader is gone before ganlite writes."""
    r, w = os.pipe()
    os.close(r)
    done = _run(["info", "--json"], stdout=w)
    os.close(w)
    assert done.returncode == 1
    assert "Broken pipe" in _one_error_line(done.stderr)


def test_deleted_working_directory(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, runpy; os.rmdir(sys.argv[1]); sys.argv = ['ganlite', 'generate',"
         " '--n', '3', '--out', 'rel']; runpy.run_module('ganlite', run_name='__main__')",
         str(gone)],
        cwd=gone, env={**os.environ,
                       "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)},
        stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "rel" in _one_error_line(err)


@pytest.mark.parametrize("args,message", [
    (["generate", "--n", 3, "--out", "/sys/ganlite-out"], "/sys/ganlite-out"),
    (["generate", "--n", 3, "--out", "{tmp}/d", "--grid", "/sys/grid.png"], "/sys/grid.png"),
    (["generate", "--n", 3, "--out", "{tmp}/d", "--grid", "{tmp}/no/such/grid.png"],
     "does not exist"),
    (["interpolate", "--out", "/sys/walk.gif"], "/sys/walk.gif"),
    (["interpolate", "--out", "{tmp}/walk.gif", "--frames", "{tmp}/file.txt/frames"],
     "file.txt/frames"),
    (["interpolate", "--out", "{tmp}/walk.gif", "--frames", "/sys/frames"], "/sys/frames"),
])
def test_unwritable_places_are_refused_before_any_work(cli, tmp_path, args, message):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    result = cli(*args)
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert message.replace("{tmp}", str(tmp_path)) in line
    # Nothing generated: no output folder, no GIF.
    assert not (tmp_path / "d").exists() and not (tmp_path / "walk.gif").exists()


@pytest.mark.parametrize("args,message", [
    (["evaluate", "--n", 10**9], "--n"),
    (["interpolate", "--out", "w.gif", "--steps", 10**7], "--steps"),
    (["generate", "--n", 10, "--out", "d", "--batch-size", 10**9], "--batch-size"),
    (["generate", "--n", 3, "--out", "d", "--digit", "²"], "is not a class number"),
])
def test_absurd_sizes_and_odd_digits_are_usage_errors(cli, tmp_path, monkeypatch, args,
                                                      message):
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())


def test_in_memory_generation_is_bounded(default_generator):
    with pytest.raises(ganlite.UsageError, match="use batches"):
        default_generator.generate(10**10)
    with pytest.raises(ganlite.UsageError, match="steps must be between 2 and 10000"):
        ganlite.walk(default_generator, [1, 2], 10**7)
