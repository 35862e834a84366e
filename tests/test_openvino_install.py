"""README's OpenVINO install, for real, in a fresh venv: `pip install ganlite[openvino]`
leaves exactly one onnxruntime distribution (OpenVINO's runtime beside it, not a second
onnxruntime build), `--device openvino` generates, and 'openvino-bf16' works only on a CPU
with bf16 arithmetic, else it is one line and exit 2.

Downloads openvino (~60 MB) and the base dependencies: runs only with
GANLITE_TEST_OPENVINO_INSTALL=1 (.ci/run sets it)."""
from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.environ.get("GANLITE_TEST_OPENVINO_INSTALL") != "1",
                                reason="set GANLITE_TEST_OPENVINO_INSTALL=1 (downloads "
                                       "~60 MB)")


def _sh(*args, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=900, **kwargs)


def test_openvino_extra_installs_beside_onnxruntime(tmp_path):
    env_dir = tmp_path / "venv-openvino"
    venv.create(env_dir, with_pip=True)
    pip, python = env_dir / "bin" / "pip", env_dir / "bin" / "python"
    done = _sh(pip, "install", "-q", f"{ROOT}[openvino]")
    assert done.returncode == 0, done.stderr
    listed = _sh(pip, "list", "--format=freeze").stdout.lower().splitlines()
    assert [line.split("==")[0] for line in listed if line.startswith("onnxruntime")] \
        == ["onnxruntime"], listed
    assert any(line.startswith("openvino==") for line in listed), listed
    builds = _sh(python, "-c", "from ganlite._providers import installed_onnxruntimes; "
                               "print(installed_onnxruntimes())").stdout.strip()
    assert builds == "['onnxruntime']"

    ganlite = env_dir / "bin" / "ganlite"
    done = _sh(ganlite, "generate", "-n", 3, "--out", tmp_path / "d", "--device", "openvino",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "d").glob("*.png"))) == 3
    assert "openvino (CPU)" in done.stderr

    bf16 = _sh(python, "-c", "import openvino; print('BF16' in openvino.Core().get_property("
                             "'CPU', 'OPTIMIZATION_CAPABILITIES'))").stdout.strip()
    done = _sh(ganlite, "generate", "-n", 3, "--out", tmp_path / "b", "--device",
               "openvino-bf16", cwd=tmp_path)
    if bf16 == "True":
        assert done.returncode == 0 and "openvino (CPU, bf16)" in done.stderr, done.stderr
    else:
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "no bf16 arithmetic" in lines[0] and not (tmp_path / "b").exists()
