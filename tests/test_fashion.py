"""The built-in Fashion-MNIST models: class names, generation by name, its own classifier."""
from __future__ import annotations

import json

import pytest
from conftest import FASHION_SMALL

import ganlite
from ganlite.datasets import read_split

FASHION = "fashion-cdcgan"


@pytest.fixture(scope="module")
def fashion():
    return ganlite.load(FASHION, device="cpu")


@pytest.fixture(scope="module")
def fashion_evaluator():
    return ganlite.Evaluator("fashion_mnist", device="cpu")


def test_listed_with_its_classifier(cli):
    listing = cli("models").output
    assert FASHION in listing and "fashion-classifier" in listing
    card = json.loads(cli("info", "--model", FASHION, "--json").output)
    assert card["dataset"] == "fashion_mnist" and card["conditional"] is True
    assert card["class_names"] == ["t-shirt", "trouser", "pullover", "dress", "coat",
                                   "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
    # the --class choices
    assert "sneaker, bag, ankle-boot" in cli("info", "--model", FASHION).output


@pytest.mark.parametrize("spelling", ["ankle-boot", "Ankle boot", "ANKLE_BOOT"])
def test_class_names_resolve(fashion, spelling):
    assert fashion.class_index(spelling) == 9


def test_unknown_class_lists_the_choices(fashion):
    with pytest.raises(ganlite.UsageError, match="choose from t-shirt, trouser"):
        fashion.class_index("hat")


def test_generate_by_name_gives_what_was_asked(cli, tmp_path, fashion, fashion_evaluator):
    result = cli("generate", "--model", FASHION, "--n", 6, "--class", "sneaker,bag",
                 "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png"))[:2] == [
        "0000_7.png", "0001_8.png"]
    # The Fashion classifier sees sneakers and bags where they were asked for.
    for name, index in (("sneaker", 7), ("bag", 8), ("trouser", 1)):
        probs, _ = fashion_evaluator.classify(fashion.generate(200, seed=1, labels=name))
        assert (probs.argmax(axis=1) == index).mean() > 0.9, name


def test_evaluate_uses_the_fashion_classifier(cli):
    result = cli("evaluate", "--model", FASHION, "--n", 1000, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dataset"] == "fashion_mnist"
    assert report["fcd"] < 20 and report["min_class_share"] > 0.05
    assert "Fashion score" in cli("evaluate", "--model", FASHION, "--n", 100).output


def test_real_fashion_images_judged_by_their_own_classifier(cli, tmp_path):
    """The fixture's real clothes: the Fashion classifier knows them; the MNIST one does not
    (FCD many times larger), so the classifier must follow the dataset."""
    images, labels = read_split(FASHION_SMALL, "test", "fashion_mnist")
    own = ganlite.Evaluator("fashion_mnist", device="cpu")
    probs, _ = own.classify(images)
    assert (probs.argmax(axis=1) == labels).mean() > 0.85
    (tmp_path / "real").mkdir()
    for i, image in enumerate(images):
        ganlite.save_png(image, tmp_path / "real" / f"{i:04d}.png")
    fashion_json = json.loads(cli("evaluate", "--images", tmp_path / "real", "--dataset",
                                  "fashion_mnist", "--json").output)
    mnist_json = json.loads(cli("evaluate", "--images", tmp_path / "real", "--json").output)
    assert fashion_json["dataset"] == "fashion_mnist" and mnist_json["dataset"] == "mnist"
    assert mnist_json["fcd"] > 5 * fashion_json["fcd"]


def test_dataset_errors(cli, tmp_path):
    result = cli("evaluate", "--images", tmp_path, "--dataset", "cifar")
    assert result.exit_code == 2 and "available: mnist, fashion_mnist" in result.output
    result = cli("evaluate", "--model", FASHION, "--dataset", "mnist")
    assert result.exit_code == 2 and "--dataset goes with --images" in result.output


def test_interpolate_holds_a_class_by_name(cli, tmp_path):
    result = cli("interpolate", "--model", FASHION, "--seeds", "1,2", "--steps", 3,
                 "--class", "dress", "--out", tmp_path / "walk.gif")
    assert result.exit_code == 0, result.output
    result = cli("interpolate", "--model", FASHION, "--seeds", "1,2", "--class", "hat",
                 "--out", tmp_path / "bad.gif")
    assert result.exit_code == 2 and "choose from" in result.output
    assert not (tmp_path / "bad.gif").exists()


def test_write_images_by_class_name(tmp_path, fashion):
    """Names resolve once for the whole run: files, manifest and resume use class numbers."""
    out = tmp_path / "out"
    assert ganlite.write_images(fashion, 4, out, labels=["sneaker", "bag"] * 2).written == 4
    assert sorted(p.name for p in out.glob("*.png")) == [
        "0000_7.png", "0001_8.png", "0002_7.png", "0003_8.png"]
    assert ganlite.write_images(fashion, 4, out, labels=[7, 8, 7, 8]).written == 0  # same run
