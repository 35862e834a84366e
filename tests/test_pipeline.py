"""End to end: train a tiny model on the real fixture, export it, generate from it.

What export guarantees by construction (its parity bounds, on its own samples) is not
re-asserted from the card: the exported model is compared with the Keras model here on
other inputs, and tests/test_stages_cli.py shows that export refuses a model whose
conversion disagrees, writing nothing."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import FASHION_SMALL, MNIST_SMALL

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
    result = _run("export", "model", str(run), "--out", str(out))
    assert "parity" in result.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["conditional"] is conditional and card["train_steps"] == 40
    assert card["train_machine"] == json.loads((run / "run.json").read_text())["machine"]
    # Exported graphs are optimized (export/optimize.py), parity-checked against Keras.
    assert card["parity"]["graph"].startswith("optimized")
    assert card["parity"]["max_gray_levels"] <= 1
    import onnx

    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert not {"ConvTranspose", "Tanh", "Round"} & ops, ops
    # The card's command is the run's config, as the CLI parses it.
    from train.cli import parse_gan
    from train.config import GanConfig

    args = shlex.split(card["train_command"])
    assert args[:4] == ["python", "-m", "train", "gan"]
    assert parse_gan(args[4:]) == GanConfig.from_json(
        json.loads((run / "run.json").read_text())["config"])
    assert out.with_suffix(".png").is_file()
    from PIL import Image

    # The training film: the untrained generator's noise, then each snapshot (steps 20, 40).
    with Image.open(out.with_name(f"tiny-{arch}-training.gif")) as film:
        assert film.n_frames == 3

    import keras

    import ganlite
    from ganlite.pixels import to_uint8

    generator = ganlite.Generator(out, device="cpu")
    images = generator.generate(64, seed=1)
    assert images.shape == (64, 28, 28) and images.dtype == np.uint8
    # The same latents through the Keras generator: at most 1 gray level apart.
    z, labels = ganlite.latents.draw(1, 0, 64, card["latent_dim"],
                                     card["num_classes"] if conditional else 0)
    model = keras.models.load_model(run / "generator.keras")
    keras_images = to_uint8(model.predict([z, labels.astype(np.int32)] if conditional
                                          else z, verbose=0)[..., 0])
    assert np.abs(keras_images.astype(int) - images.astype(int)).max() <= 1
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
    _run("export", "model", str(run), "--out", str(out), "--no-optimize")
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["dataset"] == "fashion_mnist" and card["class_names"][7] == "sneaker"
    assert "graph" not in card["parity"] and card["export_command"].endswith("--no-optimize")
    import onnx

    assert "ConvTranspose" in {n.op_type for n in onnx.load(str(out)).graph.node}
    _run("ganlite", "generate", "--n", "4", "--out", str(tmp_path / "shoes"), "--model",
         str(out), "--class", "sneaker,ankle boot")
    assert sorted(p.name for p in (tmp_path / "shoes").glob("*.png")) == [
        "0000_7.png", "0001_9.png", "0002_7.png", "0003_9.png"]


def test_exported_classifier_parity(tmp_path):
    """A one-epoch classifier on the fixture exports and agrees with Keras on the real
    test digits (not the noise export checks itself with)."""
    run = tmp_path / "clf"
    _run("train", "classifier", "--out", str(run), "--data", str(MNIST_SMALL),
         "--epochs", "1")
    out = tmp_path / "clf.onnx"
    _run("export", "model", str(run), "--out", str(out))
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["kind"] == "classifier" and card["num_classes"] == 10
    from train.cli import parse_classifier
    from train.config import ClassifierConfig

    assert parse_classifier(shlex.split(card["train_command"])[4:]) == \
        ClassifierConfig.from_json(json.loads((run / "run.json").read_text())["config"])
    import keras

    import ganlite
    from ganlite.datasets import read_split

    evaluator = ganlite.Evaluator(classifier=out)
    images, _ = read_split(MNIST_SMALL, "test", "mnist")
    probs, _ = evaluator.classify(images)
    keras_probs, _ = keras.models.load_model(run / "classifier.keras").predict(
        images[..., None].astype(np.float32) / 255.0, verbose=0)
    assert np.abs(probs - keras_probs).max() <= 1e-4
    assert evaluator.evaluate_images(images).n == 200
