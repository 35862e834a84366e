"""Standing statistics (export/standing.py): a generator's BatchNorm statistics measured on
its own samples, and `python -m export model --standing-stats N`. Needs the training
environment."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import ganlite
from export.cli import main as export_main
from export.errors import ExportError
from export.standing import batchnorm_layers, standing_latents, standing_statistics
from train.clitools import run_cli
from train.config import GanConfig

pytestmark = pytest.mark.train


def _generator(arch: str, classes: int, seed: int = 0):
    import keras

    from train.models import build_gan_pair

    keras.utils.set_random_seed(seed)
    return build_gan_pair(arch, 8, classes)[0]


def _numpy(tensor) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(tensor)


def _statistics(model) -> list[np.ndarray]:
    return [np.concatenate([layer.moving_mean.numpy(), layer.moving_variance.numpy()])
            for layer in batchnorm_layers(model)]


@pytest.mark.parametrize("arch,classes", [("dcgan", 10), ("mlp", 0)])
def test_inference_then_computes_what_training_mode_computes_on_those_samples(arch, classes):
    """With the statistics of exactly these samples, inference-mode BatchNorm normalizes as
    training mode does with the whole set as its batch -- layer by layer, so this fails if a
    layer is measured before the ones beneath it are set, on the wrong axes, or not at all."""
    model = _generator(arch, classes)
    z, labels = standing_latents(8, classes, 1_000, seed=3)
    feeds = [z, labels] if classes else [z]
    before = _numpy(model(feeds, training=False))
    in_training_mode = _numpy(model(feeds, training=True))
    assert np.abs(before - in_training_mode).max() > 0.1     # untrained: far apart

    model = _generator(arch, classes)      # training mode moved the statistics: rebuild
    assert standing_statistics(model, 8, classes, 1_000, seed=3) == 3
    after = _numpy(model(feeds, training=False))
    assert np.abs(after - in_training_mode).max() < 1e-3


def test_deterministic_in_the_seed():
    one, two, other = (_generator("dcgan", 10) for _ in range(3))
    for model, seed in ((one, 0), (two, 0), (other, 1)):
        standing_statistics(model, 8, 10, 1_000, seed)
    for a, b, c in zip(_statistics(one), _statistics(two), _statistics(other), strict=True):
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)


def test_latents_are_the_generation_distribution():
    z, labels = standing_latents(100, 10, 20_000, seed=0)
    assert z.dtype == np.float32 and z.shape == (20_000, 100)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert labels.dtype == np.int32 and set(np.unique(labels)) == set(range(10))
    assert standing_latents(100, 0, 5, seed=0)[1] is None


def test_a_generator_without_batchnorm_is_refused():
    import keras

    z = keras.Input((8,))
    model = keras.Model(z, keras.layers.Dense(784)(z), name="plain")
    with pytest.raises(ExportError, match="plain: no BatchNormalization layer"):
        standing_statistics(model, 8, 0, 1_000, 0)


# -- python -m export model --standing-stats N ---------------------------------------------

@pytest.fixture(scope="module")
def tiny_conditional_run(tmp_path_factory):
    """An (untrained) conditional dcgan run folder: its BatchNorm statistics are the
    initial ones (mean 0, variance 1), far from its activations'."""
    from train.saving import save_keras

    run = tmp_path_factory.mktemp("standing") / "run"
    run.mkdir()
    config = GanConfig(out=run, latent_dim=8, conditional=True, steps=10, sample_every=10,
                       fcd_samples=0, seed=5)
    (run / "run.json").write_text(json.dumps({"config": config.to_json(),
                                              "train_images": 600}))
    save_keras(_generator("dcgan", 10), run / "generator.keras")
    return run


def _export(args, capsys) -> tuple[int, str]:
    status = run_cli(export_main, [str(a) for a in args], "python -m export")
    return status, capsys.readouterr().err


def test_export_with_standing_statistics(tiny_conditional_run, tmp_path, capsys):
    import keras

    plain, standing = tmp_path / "plain.onnx", tmp_path / "standing.onnx"
    run_bytes = (tiny_conditional_run / "generator.keras").read_bytes()
    assert _export(["model", tiny_conditional_run, "--out", plain], capsys)[0] == 0
    status, err = _export(["model", tiny_conditional_run, "--out", standing,
                           "--standing-stats", 1_000], capsys)
    assert status == 0, err
    assert "standing statistics: 3 BatchNorm layer(s) from 1,000 samples" in err
    # The run folder is read, never written: its generator keeps the trained statistics.
    assert (tiny_conditional_run / "generator.keras").read_bytes() == run_bytes

    card = ganlite.read_card(standing)
    assert card["standing_stats"] == {"samples": 1_000, "seed": 5, "layers": 3}
    assert "standing_stats" not in ganlite.read_card(plain)
    assert shlex.split(card["export_command"])[-2:] == ["--standing-stats", "1000"]
    # The Keras model beside the ONNX one carries the statistics the ONNX model computes
    # with: those of standing_statistics, not the run's.
    run_model = keras.models.load_model(tiny_conditional_run / "generator.keras")
    expected = keras.models.load_model(tiny_conditional_run / "generator.keras")
    standing_statistics(expected, 8, 10, 1_000, seed=5)
    shipped = keras.models.load_model(standing.with_suffix(".keras"))
    for got, want, old in zip(_statistics(shipped), _statistics(expected),
                              _statistics(run_model), strict=True):
        assert np.array_equal(got, want) and not np.allclose(got, old)
    # ... and the ONNX model's images are those of the new statistics.
    images = {path: ganlite.Generator(path, device="cpu").generate(20, seed=1, labels=3)
              for path in (plain, standing)}
    assert np.abs(images[plain].astype(int) - images[standing]).max() > 20
    z, _ = ganlite.latents.draw(1, 0, 20, 8, 10)
    want = _numpy(expected([z, np.full(20, 3, np.int32)], training=False))[..., 0]
    assert np.abs(ganlite.pixels.to_uint8(want).astype(int) - images[standing]).max() <= 1


@pytest.mark.parametrize("value", ["5", "-1", "999", "200001", "ten"])
def test_bad_sample_counts_are_usage_errors(tiny_conditional_run, tmp_path, capsys, value):
    status, err = _export(["model", tiny_conditional_run, "--out", tmp_path / "x.onnx",
                           "--standing-stats", value], capsys)
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--standing-stats" in lines[0], err
    assert not list(tmp_path.iterdir())


def test_a_classifier_run_refuses_standing_statistics(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"kind": "classifier", "config": {}}))
    status, err = _export(["model", run, "--out", tmp_path / "c.onnx",
                           "--standing-stats", 1_000], capsys)
    assert status == 1
    assert err.strip() == (f"Error: {run}: standing_stats (--standing-stats) applies to "
                           f"generators; this run is a classifier")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
