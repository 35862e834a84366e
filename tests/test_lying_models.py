"""Models whose card is consistent and sealed but whose graph lies about what it returns
(tests/data/lying, made by tests/data/make_lying_models.py): refused with one line before
anything is written; and every batch a session returns is checked."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, TINY_UNCONDITIONAL

import ganlite
from ganlite import _card

LYING = DATA / "lying"
LYING_GRAPHS = {
    # name: text in the message; their cards are consistent and sealed
    "one-image": "the model returned uint8 [1, 28, 28] for a batch of 20; "
                 "expected uint8 [20, 28, 28]",
    "wide-images": "the model returned uint8 [20, 56, 14] for a batch of 20; "
                   "expected uint8 [20, 28, 28]",
    "float-images": "field 'outputs.image' must be",
    "wide-declared": "field 'outputs.image' must be",
}


def test_lying_fixtures_are_sealed_and_honest_one_runs():
    for name in [*LYING_GRAPHS, "honest"]:
        path = LYING / f"{name}.onnx"
        assert _card.check_seal(path, path.read_bytes())["name"] == name
    images = ganlite.Generator(LYING / "honest.onnx").generate(20, seed=0)
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8


@pytest.mark.parametrize("name", list(LYING_GRAPHS))
def test_lying_graph(cli, tmp_path, name):
    """The card is honest about everything it can be checked against at load; the graph
    lies only in what it returns: the first batch is refused before a byte is written."""
    path = LYING / f"{name}.onnx"
    with pytest.raises(ganlite.ModelError, match=re.escape(LYING_GRAPHS[name])) as caught:
        ganlite.Generator(path).generate(20)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    for fmt in ("png", "npy"):
        out = tmp_path / fmt
        result = cli("generate", "--n", 20, "--out", out, "--format", fmt, "--model", path)
        assert result.exit_code == 1 and LYING_GRAPHS[name] in result.output
        assert "Traceback" not in result.output
        assert not out.exists()   # no image, no manifest, no folder
    result = cli("evaluate", "--n", 20, "--model", LYING / f"{name}.onnx")
    assert result.exit_code == 1 and LYING_GRAPHS[name] in result.output


class _Session:
    """Stands in for an onnxruntime session that returns `result(feeds)` or raises."""

    def __init__(self, result):
        self.result = result

    def run(self, outputs, feeds, run_options=None):
        return self.result(feeds)


@pytest.mark.parametrize("returned,message", [
    (lambda b: np.zeros((b, 28, 28), np.float32), "returned float32 [3, 28, 28]"),
    (lambda b: np.zeros((b, 28, 28, 1), np.uint8), "returned uint8 [3, 28, 28, 1]"),
    (lambda b: np.zeros((b + 1, 28, 28), np.uint8), "returned uint8 [4, 28, 28]"),
    (lambda b: np.zeros((0, 28, 28), np.uint8), "returned uint8 [0, 28, 28]"),
    (lambda b: "image", "returned str"),
])
def test_every_batch_is_checked(returned, message):
    generator = ganlite.Generator(TINY_UNCONDITIONAL)
    generator.session = _Session(lambda feeds: [returned(len(feeds["z"]))])
    for run in (lambda: generator.generate(3, batch_size=3),
                lambda: generator.decode(np.zeros((3, 8), np.float32)),
                lambda: next(generator.batches(3))):
        with pytest.raises(ganlite.ModelError, match=re.escape(
                f"{message} for a batch of 3; expected uint8 [3, 28, 28]")):
            run()


def test_onnxruntime_errors_while_running_are_model_errors():
    generator = ganlite.Generator(TINY_UNCONDITIONAL)

    def fail(feeds):
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : boom\nmore")
    generator.session = _Session(fail)
    with pytest.raises(ganlite.ModelError, match="onnxruntime failed running the model "
                                                 r"\(\[ONNXRuntimeError\].*boom\)$"):
        generator.generate(2)


def _classifier(tmp_path, name: str) -> ganlite.Evaluator:
    path = tmp_path / f"{name}.onnx"
    shutil.copy(LYING / f"{name}.onnx", path)
    shutil.copy(ganlite.list_models("classifier")["mnist-classifier"].with_suffix(".npz"),
                path.with_suffix(".npz"))
    return ganlite.Evaluator(classifier=path, device="cpu")


@pytest.mark.parametrize("name,message", [
    ("classifier-one-row", ("the classifier returned probs float32 [1, 10] for a batch of 7; "
                            "expected float32 [7, 10]")),
    ("classifier-nan", ("the classifier returned probs with the value nan for a batch of 7; "
                        "expected values finite and in [0, 1]")),
])
def test_lying_classifier(tmp_path, name, message):
    images = np.zeros((7, 28, 28), np.uint8)
    probs, features = _classifier(tmp_path, "classifier-honest").classify(images)
    assert probs.shape == (7, 10) and features.shape == (7, 128)
    evaluator = _classifier(tmp_path, name)
    with pytest.raises(ganlite.ModelError, match=re.escape(message)):
        evaluator.classify(images)
    with pytest.raises(ganlite.ModelError, match=re.escape(message)):
        evaluator.evaluate_images(images)


def test_onnxruntime_run_failure_is_one_line_on_stderr(tmp_path):
    """A card resealed to claim an 11th class: label 10 passes the card's range check and
    makes onnxruntime's Gather fail. onnxruntime logs such errors itself unless told not
    to: the user must see one line, ours."""
    data = ganlite.list_models()["mnist-cdcgan"].read_bytes()
    card, _, _ = _card.unverified_card("x", data)
    card = {**card, "num_classes": 11, "class_names": card["class_names"] + ["ten"]}
    path = tmp_path / "eleven.onnx"
    path.write_bytes(_card.seal(data, json.loads(json.dumps(card))))
    done = subprocess.run(
        [sys.executable, "-m", "ganlite", "generate", "-n", "3", "--digit", "10", "--model",
         str(path), "--out", str(tmp_path / "out")], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)},
        timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "onnxruntime failed running the model" in lines[0], done.stderr
    assert not (tmp_path / "out").exists()
