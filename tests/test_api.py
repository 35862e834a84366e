"""The Python API: load, generate, determinism, batching, labels, threads."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ganlite


def test_default_model_generates_uint8_digits(default_generator):
    images = default_generator.generate(16, seed=1)
    assert images.shape == (16, 28, 28) and images.dtype == np.uint8
    # Digits: mostly black background with bright strokes, not noise and not blank.
    assert (images < 30).mean() > 0.6 and (images > 200).mean() > 0.03


def test_same_seed_same_bytes_other_seed_other_images(default_generator):
    a = default_generator.generate(8, seed=42)
    assert np.array_equal(a, default_generator.generate(8, seed=42))
    assert not np.array_equal(a, default_generator.generate(8, seed=43))


@pytest.mark.parametrize("batch_size", [1, 7, 1000, 1500])
def test_image_i_does_not_depend_on_batching(default_generator, batch_size):
    reference = default_generator.generate(1100, seed=5, batch_size=1024)
    assert np.array_equal(default_generator.generate(1100, seed=5, batch_size=batch_size),
                          reference)


def test_batches_can_resume_from_any_index(default_generator):
    full = default_generator.generate(40, seed=9)
    tail = [b for b in default_generator.batches(40, seed=9, start=25, batch_size=4)]
    assert tail[0].start == 25
    assert np.array_equal(np.concatenate([b.images for b in tail]), full[25:])


def test_card_is_read_from_the_model(default_generator):
    card = default_generator.card
    assert card["kind"] == "generator" and card["dataset"] == "mnist"
    assert default_generator.latent_dim == card["latent_dim"]
    assert len(card["model_sha256"]) == 64
    assert card["parity"]["max_gray_levels"] <= 1


def test_list_models_lists_what_load_takes():
    generators = ganlite.list_models()
    assert set(generators) == {"mnist-cdcgan", "fashion-cdcgan", "mnist-cdcgan-int8",
                               "fashion-cdcgan-int8"}
    for name in generators:
        ganlite.load(name)
    classifiers = ganlite.list_models("classifier")
    assert set(classifiers) == {"mnist-classifier", "fashion-classifier"}
    assert ganlite.list_models(kind=None) == {**generators, **classifiers}
    with pytest.raises(ganlite.UsageError, match="choose one of generator, classifier"):
        ganlite.list_models("gan")


def test_conditional_labels(default_generator):
    if not default_generator.conditional:
        pytest.skip("default model is unconditional")
    sevens = default_generator.generate(5, seed=0, labels=7)
    per_image = default_generator.generate(5, seed=0, labels=[7, 7, 7, 7, 7])
    assert np.array_equal(sevens, per_image)
    batch = next(default_generator.batches(4, seed=0, labels=[1, 2, 3, 4]))
    assert batch.labels.tolist() == [1, 2, 3, 4]
    # Class names from the card work wherever class numbers do.
    by_name = default_generator.generate(5, seed=0, labels="7")
    assert np.array_equal(sevens, by_name)
    batch = next(default_generator.batches(2, seed=0, labels=["1", "2"]))
    assert batch.labels.tolist() == [1, 2]
    with pytest.raises(ganlite.UsageError, match="choose from 0, 1, 2"):
        default_generator.generate(2, labels="sneaker")


def test_unconditional_model_refuses_labels(tiny_generator):
    assert not tiny_generator.conditional
    with pytest.raises(ganlite.UsageError, match="unconditional"):
        tiny_generator.generate(3, labels=1)


def test_shared_generator_is_thread_safe(default_generator):
    seeds = list(range(16))
    sequential = [default_generator.generate(64, seed=s) for s in seeds]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda s: default_generator.generate(64, seed=s), seeds))
    for a, b in zip(sequential, parallel, strict=True):
        assert np.array_equal(a, b)


def test_save_helpers(tmp_path, default_generator):
    from PIL import Image

    images = default_generator.generate(12, seed=0)
    path = ganlite.save_png(images[0], tmp_path / "one.png")
    with Image.open(path) as im:
        assert im.size == (28, 28) and im.mode == "L"
        assert np.array_equal(np.asarray(im), images[0])
    grid = ganlite.save_grid(images, tmp_path / "grid.png", columns=4, scale=1)
    with Image.open(grid) as im:
        assert im.size == (4 * 30 + 2, 3 * 30 + 2)
    assert not list(tmp_path.glob(".*tmp"))
