"""End to end: train a tiny model on the real fixture, export it, parity, generate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import FASHION_SMALL, MNIST_SMALL  # noqa: E402

pytestmark = [pytest.mark.train, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
# CI keeps the exported model here, for the runtime-only environment to generate from.
EXPORT_DIR = Path(os.environ.get("GANLITE_CI_EXPORT", ROOT / "runs" / "ci-export"))


def _run(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)


@pytest.mark.parametrize("arch,conditional", [("mlp", False), ("dcgan", True)])
def test_train_export_generate(tmp_path, arch, conditional):
    run = tmp_path / "run"
    _run("train", "gan", "--out", str(run), "--data", str(MNIST_SMALL), "--arch", arch,
         "--steps", "40", "--sample-every", "20", "--batch-size", "32", "--fcd-samples",
         "200", *(["--conditional"] if conditional else []))
    assert (run / "fcd.csv").read_text().count("\n") == 3
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    out = EXPORT_DIR / f"tiny-{arch}.onnx"
    result = _run("export", str(run), "--out", str(out))
    assert "parity" in result.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["parity"]["max_abs_float"] <= 1e-4
    assert card["parity"]["max_gray_levels"] <= 1
    assert card["conditional"] is conditional and card["train_steps"] == 40
    assert card["train_command"].startswith("python -m train gan")
    assert out.with_suffix(".png").is_file()
    from PIL import Image

    # The training film: the untrained generator's noise, then each snapshot (steps 20, 40).
    with Image.open(out.with_name(f"tiny-{arch}-training.gif")) as film:
        assert film.n_frames == 3

    import ganlite

    generator = ganlite.Generator(out, device="cpu")
    images = generator.generate(10, seed=1)
    assert images.shape == (10, 28, 28) and images.dtype == np.uint8
    result = _run("ganlite", "generate", "--n", "10", "--out", str(tmp_path / "digits"),
                  "--model", str(out))
    assert len(list((tmp_path / "digits").glob("*.png"))) == 10


def test_fashion_conditional(tmp_path):
    """Fashion-MNIST end to end: its class names reach the card and `--class sneaker`."""
    run = tmp_path / "run"
    _run("train", "gan", "--out", str(run), "--data", str(FASHION_SMALL), "--dataset",
         "fashion_mnist", "--conditional", "--steps", "20", "--sample-every", "20",
         "--batch-size", "32", "--fcd-samples", "0")
    out = tmp_path / "fashion.onnx"
    _run("export", str(run), "--out", str(out))
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["dataset"] == "fashion_mnist" and card["class_names"][7] == "sneaker"
    _run("ganlite", "generate", "--n", "4", "--out", str(tmp_path / "shoes"), "--model",
         str(out), "--class", "sneaker,ankle boot")
    assert sorted(p.name for p in (tmp_path / "shoes").glob("*.png")) == [
        "0000_7.png", "0001_9.png", "0002_7.png", "0003_9.png"]


def test_exported_classifier_parity(tmp_path):
    """A one-epoch classifier on the fixture exports and agrees with Keras."""
    run = tmp_path / "clf"
    _run("train", "classifier", "--out", str(run), "--data", str(MNIST_SMALL),
         "--epochs", "1")
    out = tmp_path / "clf.onnx"
    _run("export", str(run), "--out", str(out))
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["kind"] == "classifier" and card["parity"]["max_abs_probs"] <= 1e-4
    import ganlite

    evaluator = ganlite.Evaluator(classifier=out)
    images = np.frombuffer(__import__("gzip").open(
        MNIST_SMALL / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    report = evaluator.evaluate_images(images.reshape(-1, 28, 28))
    assert report.n == 200
