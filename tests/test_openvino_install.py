"""README's OpenVINO install, for real, in a fresh venv: `pip install ganlite[openvino]`
leaves exactly one onnxruntime distribution (OpenVINO's runtime beside it, not a second
onnxruntime build), `--device openvino` generates, and 'openvino-bf16' works only on a CPU
with bf16 arithmetic, else it is one line and exit 2.

Downloads openvino (~60 MB) and the base dependencies: runs only with
GANLITE_TEST_OPENVINO_INSTALL=1 (.ci/run sets it)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import FreshVenv

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.environ.get("GANLITE_TEST_OPENVINO_INSTALL") != "1",
                                reason="set GANLITE_TEST_OPENVINO_INSTALL=1 (downloads "
                                       "~60 MB)")


def test_openvino_extra_installs_beside_onnxruntime(tmp_path):
    env = FreshVenv(tmp_path / "venv-openvino")
    env.pip_install(f"{ROOT}[openvino]")
    assert env.onnxruntimes() == ["onnxruntime"], env.distributions()
    assert any(line.startswith("openvino==") for line in env.distributions())
    builds = env.run("python", "-c", "from ganlite._providers import installed_onnxruntimes"
                                     "; print(installed_onnxruntimes())").stdout.strip()
    assert builds == "['onnxruntime']"

    done = env.run("ganlite", "generate", "-n", 3, "--out", tmp_path / "d", "--device",
                   "openvino", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "d").glob("*.png"))) == 3
    assert "openvino (CPU)" in done.stderr

    bf16 = env.run("python", "-c", "import openvino; print('BF16' in openvino.Core()."
                                   "get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))"
                   ).stdout.strip()
    done = env.run("ganlite", "generate", "-n", 3, "--out", tmp_path / "b", "--device",
                   "openvino-bf16", cwd=tmp_path)
    if bf16 == "True":
        assert done.returncode == 0, done.stderr
        assert len(list((tmp_path / "b").glob("*.png"))) == 3
        assert "openvino (CPU, bf16)" in done.stderr
    else:
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "no bf16 arithmetic" in lines[0] and not (tmp_path / "b").exists()
