"""SIGTERM / Ctrl-C in the middle of a large run: only complete files; a rerun completes
the set with the bytes of an uninterrupted run."""
from __future__ import annotations

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

N = 20_000


def _default_sigint() -> None:
    # A shell starting a job in the background without job control (`cmd &` in a script,
    # as a CI runner may start this suite) sets SIGINT to "ignore", children inherit it,
    # and Python then installs no Ctrl-C handler: the run would finish as if never
    # interrupted. Ctrl-C at a terminal reaches a process whose SIGINT is the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out: Path):
    env = {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)}
    return subprocess.Popen([sys.executable, "-m", "ganlite", "generate", "--n", str(N),
                             "--out", str(out), "--seed", "11", "-q"], env=env,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_then_rerun(tmp_path, sig, default_generator):
    out = tmp_path / "digits"
    proc = _start(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or len(os.listdir(out)) < 500):
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    names = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    assert 0 < len(names) < N
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    for name in names[-50:]:  # the newest files are the ones a kill could have cut
        with Image.open(out / name) as im:
            im.load()
            assert im.size == (28, 28)

    proc = _start(out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    files = sorted(p for p in out.iterdir() if p.suffix == ".png")
    assert len(files) == N
    expected = default_generator.generate(N, seed=11)
    for i in list(range(0, N, 997)) + [len(names) - 1, len(names), N - 1]:
        assert np.array_equal(np.asarray(Image.open(files[i])), expected[i])
