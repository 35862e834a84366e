"""Shared fixtures: a CLI runner, the small real MNIST fixture, tiny committed models."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from ganlite.datasets import read_split

DATA = Path(__file__).parent / "data"
MNIST_SMALL = DATA / "mnist-small"
FASHION_SMALL = DATA / "fashion-small"      # the first 600/200 Fashion-MNIST images
# The Debian package dataset-fashion-mnist (installed by .ci/run).
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
# A tiny unconditional dcgan (latent_dim 8) trained for a few steps on the fixture: a real
# exported model, small enough to commit, for the tests of an unconditional generator.
TINY_UNCONDITIONAL = DATA / "tiny-dcgan.onnx"


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="session")
def real_digits():
    """600 real MNIST training digits, uint8 [600, 28, 28], and their labels (int64)."""
    return read_split(MNIST_SMALL, "train", "mnist")


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def cli(runner):
    """Run `ganlite ARGS...`; returns the click Result."""
    from ganlite.cli import main

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
    return invoke


@pytest.fixture(scope="session")
def default_generator():
    import ganlite

    return ganlite.load()


@pytest.fixture(scope="session")
def tiny_generator():
    import ganlite

    return ganlite.Generator(TINY_UNCONDITIONAL, device="cpu")


def pytest_report_header(config):
    import ganlite

    return [f"ganlite from {Path(ganlite.__file__).parent}",
            f"tensorflow importable: {has_module('tensorflow')}",
            f"GANLITE_RUNTIME_ONLY={os.environ.get('GANLITE_RUNTIME_ONLY', '')}"]


def kill_at_first_checkpoint(args: list, run_dir, env: dict, cwd, steps: int) -> None:
    """Start `python -m train gan --out run_dir ARGS`, SIGKILL it as soon as its first
    checkpoint exists, and check it had not finished (the resume tests' interruption)."""
    import numpy as np

    proc = subprocess.Popen([sys.executable, "-m", "train", "gan", "--out", str(run_dir),
                             *map(str, args)], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with np.load(run_dir / "checkpoint.npz") as ckpt:
        assert int(ckpt["step"]) < steps, "the run finished before it could be killed"


class FreshVenv:
    """A new virtual environment with pip, for README's install commands run as a user
    would run them (tests/test_*_install.py)."""

    def __init__(self, root: Path):
        venv.create(root, with_pip=True)
        self.root = root

    def run(self, program, *args, **kwargs):
        """Run bin/PROGRAM (a name in the venv) with ARGS; the CompletedProcess, text."""
        return subprocess.run([str(self.root / "bin" / program), *map(str, args)],
                              capture_output=True, text=True, timeout=900, **kwargs)

    def pip_install(self, *args) -> None:
        done = self.run("pip", "install", "-q", *args)
        assert done.returncode == 0, done.stderr

    def distributions(self) -> list[str]:
        """`pip list --format=freeze`, lower-cased, one 'name==version' per item."""
        return self.run("pip", "list", "--format=freeze").stdout.lower().splitlines()

    def onnxruntimes(self) -> list[str]:
        """The names of the onnxruntime builds installed (two builds would clash)."""
        return [line.split("==")[0] for line in self.distributions()
                if line.startswith("onnxruntime")]
