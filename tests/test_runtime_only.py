"""ganlite never imports TensorFlow; in CI this runs where TensorFlow is not installed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import has_module

RUNTIME_ONLY = os.environ.get("GANLITE_RUNTIME_ONLY") == "1"


@pytest.mark.skipif(not RUNTIME_ONLY, reason="only in the runtime-only environment")
def test_environment_has_no_training_stack():
    for name in ("tensorflow", "keras", "tf2onnx", "onnx"):
        assert not has_module(name), f"{name} is installed in the runtime environment"


@pytest.mark.skipif(not RUNTIME_ONLY, reason="only in the runtime-only environment")
def test_tests_run_against_the_installed_wheel():
    import ganlite

    assert "site-packages" in Path(ganlite.__file__).parts
    assert (Path(ganlite.__file__).parent / "_models" / f"{ganlite.DEFAULT_MODEL}.onnx").is_file()


def test_generating_imports_no_training_framework(tmp_path):
    import ganlite

    env = {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)}
    code = ("import sys, ganlite; ganlite.load().generate(4);"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'tf2onnx', 'onnx', 'torch')];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)


def test_console_script_from_any_directory(tmp_path):
    exe = Path(sys.executable).with_name("ganlite")
    if not exe.exists():
        pytest.skip("ganlite console script not installed in this environment")
    subprocess.run([str(exe), "generate", "--n", "100", "--out", "digits", "-q"],
                   check=True, cwd=tmp_path)
    assert len(list((tmp_path / "digits").glob("*.png"))) == 100


def test_generate_from_the_model_ci_trained(tmp_path):
    """CI trains and exports tiny models in the training environment first
    (tests/test_pipeline.py); here, without TensorFlow, ganlite generates from them."""
    folder = os.environ.get("GANLITE_CI_EXPORT")
    models = sorted(Path(folder).glob("tiny-*.onnx")) if folder else []
    if not models:
        pytest.skip("no CI-exported models (set GANLITE_CI_EXPORT)")
    import ganlite

    for path in models:
        generator = ganlite.Generator(path, device="cpu")
        assert generator.generate(5, seed=0).shape == (5, 28, 28)
