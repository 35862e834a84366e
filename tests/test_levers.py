"""The training levers of `python -m train gan`: hinge loss, spectral normalization, R1,
DiffAugment, width multipliers, the discriminator's dropout, learning-rate schedules, top-k
training, mixed bfloat16 precision, an AC-GAN auxiliary classifier and TAC-GAN's twin. Each
is an option that really changes training, keeps runs reproducible and resumable, and
exports."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import MNIST_SMALL, kill_at_first_checkpoint  # noqa: E402

pytestmark = pytest.mark.train
ROOT = Path(__file__).resolve().parent.parent
TINY = ["--data", str(MNIST_SMALL), "--arch", "dcgan", "--latent-dim", "8", "--conditional",
        "--batch-size", "16", "--fcd-samples", "0", "--seed", "5"]
ALL_LEVERS = ["--loss", "hinge", "--spectral-norm", "--r1-gamma", "1",
              "--diffaugment", "color,translation,cutout", "--g-width", "0.5",
              "--d-width", "0.75", "--d-dropout", "0.1", "--lr-schedule", "cosine",
              "--top-k", "0.5", "--top-k-decay", "0.5", "--precision", "bfloat16",
              "--aux-class-weight", "0.5", "--twin-classifier"]


def _train(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "train", "gan", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=check)


def _weights(run_dir):
    with np.load(run_dir / "checkpoint.npz") as ckpt:
        return {k: ckpt[k] for k in ckpt.files}


# --- configuration ---------------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"loss": "wgan"}, "loss (--loss) must be one of ns, hinge"),
    ({"r1_gamma": -1.0}, "r1_gamma (--r1-gamma) must be a number in [0, 1e+06]"),
    ({"diffaugment": "blur"}, "diffaugment (--diffaugment) must be a comma-separated list"),
    ({"diffaugment": "color,color"}, "each at most once"),
    ({"g_width": 0.0}, "g_width (--g-width) must be a number in (0, 8]"),
    ({"d_width": 9.0}, "d_width (--d-width) must be a number in (0, 8]"),
    ({"d_dropout": 1.0}, "d_dropout (--d-dropout) must be a number in [0, 1)"),
    ({"d_dropout": -0.1}, "d_dropout (--d-dropout) must be a number in [0, 1)"),
    ({"lr_schedule": "step"}, "lr_schedule (--lr-schedule) must be one of constant"),
    ({"top_k": 0.0}, "top_k (--top-k) must be a number in (0, 1]"),
    ({"top_k": 1.5}, "top_k (--top-k) must be a number in (0, 1]"),
    ({"top_k_decay": 0.0}, "top_k_decay (--top-k-decay) must be a number in (0, 1]"),
    ({"top_k": 0.5, "strategy": "mirrored"}, "top_k (--top-k) 0.5 needs strategy"),
    ({"top_k_decay": 0.5}, "top_k_decay (--top-k-decay) 0.5 has no effect with top_k"),
    ({"aux_class_weight": -0.5}, "aux_class_weight (--aux-class-weight) must be a number in "
                                 "[0, 100]"),
    ({"aux_class_weight": 1.0}, "aux_class_weight (--aux-class-weight) 1 needs conditional"),
    ({"twin_classifier": True, "conditional": True},
     "twin_classifier (--twin-classifier) needs aux_class_weight (--aux-class-weight) above 0"),
    ({"precision": "float16"}, "precision (--precision) must be one of float32, bfloat16"),
    ({"arch": "mlp", "g_width": 2.0}, "the mlp generator is the tutorial's"),
    ({"arch": "mlp", "d_dropout": 0.0}, "the mlp discriminator is the tutorial's"),
])
def test_bad_lever_values_are_refused(values, message):
    from train.config import GanConfig
    from train.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        GanConfig(out=Path("run"), **values)


def test_lever_options_round_trip_through_the_command(tmp_path):
    from train.cli import parse_gan

    config = parse_gan(["--out", str(tmp_path / "r"), "--conditional", *ALL_LEVERS])
    assert (config.loss, config.spectral_norm, config.r1_gamma) == ("hinge", True, 1.0)
    assert config.augment_policy == ("color", "translation", "cutout")
    assert (config.g_width, config.d_width, config.lr_schedule) == (0.5, 0.75, "cosine")
    assert config.d_dropout == 0.1 and config.precision == "bfloat16"
    assert (config.top_k, config.top_k_decay) == (0.5, 0.5)
    assert config.aux_class_weight == 0.5 and config.twin_classifier is True
    assert config.class_heads == 2
    import shlex
    assert parse_gan(shlex.split(config.command())[4:]) == config


def test_defaults_are_the_recipe_before_the_levers():
    from train.config import GanConfig

    c = GanConfig(out=Path("run"))
    assert (c.loss, c.spectral_norm, c.r1_gamma, c.augment_policy, c.g_width, c.d_width,
            c.d_dropout, c.lr_schedule, c.precision) == ("ns", False, 0.0, (), 1.0, 1.0, 0.3,
                                                         "constant", "float32")
    assert c.top_k == 1.0       # off: the generator learns from every fake
    assert c.aux_class_weight == 0.0 and c.twin_classifier is False and c.class_heads == 0


# --- the pieces ------------------------------------------------------------------------

def test_diffaugment_is_seeded_differentiable_and_does_what_it_says():
    import tensorflow as tf

    from train.augment import diff_augment

    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32))
    seed = tf.constant([1, 2], tf.int64)
    for policy in (("color",), ("translation",), ("cutout",)):
        a = diff_augment(x, policy, seed).numpy()
        assert np.array_equal(a, diff_augment(x, policy, seed).numpy()), policy
        assert not np.array_equal(a, diff_augment(x, policy, seed + 1).numpy()), policy
        assert not np.array_equal(a, x.numpy()), policy
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(diff_augment(x, policy, seed))
        assert np.abs(tape.gradient(total, x).numpy()).sum() > 0, policy
    assert diff_augment(x, (), seed) is x

    # Translation moves pixels: each output pixel is an input pixel or background.
    moved = diff_augment(x, ("translation",), seed).numpy()
    for image, source in zip(moved, x.numpy(), strict=True):
        found = False
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                padded = np.pad(source[..., 0], 4, constant_values=-1.0)
                shifted = padded[4 - dy:32 - dy, 4 - dx:32 - dx]
                found |= np.array_equal(shifted, image[..., 0])
        assert found

    # Cutout blanks at most a 14x14 square to the background, and nothing else.
    cut = diff_augment(x, ("cutout",), seed).numpy()
    changed = cut != x.numpy()
    assert np.all(cut[changed] == -1.0)
    for mask in changed[..., 0]:
        rows, cols = np.nonzero(mask)
        if len(rows):
            assert np.ptp(rows) < 14 and np.ptp(cols) < 14


def test_spectral_norm_divides_by_the_largest_singular_value():
    import keras
    import tensorflow as tf

    from train.layers import SNConv2D, SNDense

    keras.utils.set_random_seed(0)
    dense = SNDense(16)
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 32)).astype(np.float32))
    for _ in range(50):                      # power iterations converge on sigma
        dense(x, training=True)
    kernel = dense.normalized_kernel(training=False).numpy()
    assert abs(np.linalg.svd(kernel, compute_uv=False)[0] - 1.0) < 1e-3
    assert abs(np.linalg.svd(dense.kernel.numpy(), compute_uv=False)[0] - 1.0) > 0.05
    # A gradient reaches the raw kernel through the normalization.
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(dense(x, training=True))
    assert np.abs(tape.gradient(total, dense.kernel).numpy()).sum() > 0
    assert any("sn_u" in w.path for w in dense.non_trainable_weights)

    conv = SNConv2D(8, 4, strides=2, padding="same")
    image = tf.zeros((2, 28, 28, 3))
    for _ in range(50):
        conv(image, training=True)
    flat = conv.normalized_kernel(training=False).numpy().reshape(-1, 8)
    assert abs(np.linalg.svd(flat, compute_uv=False)[0] - 1.0) < 1e-3
    u = conv.sn_u.numpy().copy()
    conv(image, training=False)              # inference leaves the estimate alone
    assert np.array_equal(u, conv.sn_u.numpy())


def test_hinge_and_ns_losses():
    import tensorflow as tf

    from train.gan import GAN
    from train.models import build_gan_pair

    g, d = build_gan_pair("dcgan", 4, 0)
    real, fake = tf.constant([[2.0], [0.5]]), tf.constant([[-3.0], [0.0]])
    hinge = GAN(g, d, 4, 0, seed=0, ema_decay=0.0, loss="hinge")
    # D: mean(relu(1 - real)) + mean(relu(1 + fake)) = (0 + 0.5)/2 + (0 + 1)/2
    assert float(hinge._d_loss(real, fake)) == pytest.approx(0.75)
    assert float(hinge._g_loss(fake)) == pytest.approx(1.5)
    ns = GAN(g, d, 4, 0, seed=0, ema_decay=0.0)
    sp = lambda v: np.log1p(np.exp(v))  # noqa: E731
    assert float(ns._d_loss(real, fake)) == pytest.approx(
        np.mean([sp(-2.0) + sp(-3.0), sp(-0.5) + sp(0.0)]), rel=1e-6)
    with pytest.raises(ValueError, match="unknown loss 'wgan'"):
        GAN(g, d, 4, 0, seed=0, ema_decay=0.0, loss="wgan")


def test_learning_rate_schedules_reach_zero_at_the_last_step():
    from train.run_gan import _optimizer

    assert float(_optimizer("adam", 1e-3, 0.5).learning_rate) == pytest.approx(1e-3)
    for schedule in ("linear", "cosine"):
        lr = _optimizer("adam", 1e-3, 0.5, schedule, 100)._learning_rate
        assert float(lr(0)) == pytest.approx(1e-3)
        assert float(lr(50)) == pytest.approx(5e-4)     # both halfway at the middle
        assert float(lr(100)) == pytest.approx(0.0, abs=1e-12)


def test_width_multipliers_scale_the_channels():
    from train.models import build_gan_pair

    g1, d1 = build_gan_pair("dcgan", 8, 10)
    g2, d2 = build_gan_pair("dcgan", 8, 10, g_width=2.0, d_width=0.5)
    conv_filters = lambda m: [l.filters for l in m.layers if hasattr(l, "filters")]  # noqa
    assert conv_filters(g1) == [64, 32, 1] and conv_filters(g2) == [128, 64, 1]
    assert conv_filters(d1) == [64, 128] and conv_filters(d2) == [32, 64]
    _, d_sn = build_gan_pair("dcgan", 8, 10, spectral_norm=True)
    assert sum("sn_u" in w.path for w in d_sn.weights) == 3    # 2 convs + the linear head


def test_discriminator_dropout_rate_and_off():
    import keras

    from train.models import build_gan_pair

    rates = lambda m: [l.rate for l in m.layers if isinstance(l, keras.layers.Dropout)]  # noqa
    assert rates(build_gan_pair("dcgan", 8, 10)[1]) == [0.3, 0.3]
    assert rates(build_gan_pair("dcgan", 8, 10, d_dropout=0.1)[1]) == [0.1, 0.1]
    assert rates(build_gan_pair("dcgan", 8, 10, d_dropout=0.0)[1]) == []


def test_top_k_keeps_the_fakes_rated_most_real_on_a_decaying_schedule():
    from train.gan import GAN
    from train.models import build_gan_pair

    g, d = build_gan_pair("dcgan", 8, 10)
    gan = GAN(g, d, 8, 10, seed=0, ema_decay=0.5, top_k=0.25, top_k_decay=0.5,
              steps_per_epoch=10)
    logits = np.array([[0.5], [-2.0], [5.0], [1.0], [-0.5], [4.0], [2.0], [-1.0]], np.float32)

    def kept(step):
        return sorted(np.asarray(gan._best_fakes(logits, step)).tolist())

    # Epoch 0 (steps 0-9) keeps the whole batch; epoch 1 half of it (0.5**1), the best
    # four; from epoch 2 on the floor, a quarter (0.5**2 = 0.25, 0.5**3 < 0.25): the best two.
    assert kept(0) == kept(9) == sorted(logits.ravel().tolist())
    assert kept(10) == [1.0, 2.0, 4.0, 5.0]
    assert kept(25) == kept(1000) == [4.0, 5.0]
    # The kept count is rounded up and at least one: 3 of 8 at 0.3, 1 of 2 at 0.25.
    gan.top_k, gan.top_k_decay = 0.3, 0.01
    assert kept(50) == [2.0, 4.0, 5.0]
    assert sorted(np.asarray(gan._best_fakes(logits[:2], 50)).tolist()) == [0.5]
    gan.top_k = 1.0                                    # off
    assert kept(1000) == sorted(logits.ravel().tolist())


def _after_one_step(class_heads, weight, *, d_lr, g_lr=1e-2, g_seed=0, real_seed=1,
                    equal_heads=False):
    """A conditional dcgan GAN with `class_heads` class heads (2: with the twin) after one
    SGD step on 4 uniform-noise "real" images (`real_seed`), its generator from `g_seed`
    beside the same discriminator; the heads' kernels before the step; the step's logs."""
    import keras
    import tensorflow as tf

    from train.gan import GAN
    from train.models import build_gan_pair

    keras.utils.set_random_seed(0)
    g, d = build_gan_pair("dcgan", 8, 10, class_heads=class_heads)
    keras.utils.set_random_seed(g_seed)     # another generator, the same discriminator
    g.set_weights(build_gan_pair("dcgan", 8, 10)[0].get_weights())
    heads = ("class_logits", "twin_logits")[:class_heads]
    if equal_heads:
        d.get_layer("twin_logits").set_weights(d.get_layer("class_logits").get_weights())
    before = [d.get_layer(n).get_weights()[0].copy() for n in heads]
    gan = GAN(g, d, 8, 10, seed=0, ema_decay=0.5, aux_class_weight=weight,
              twin_classifier=class_heads == 2)
    gan.compile(d_optimizer=keras.optimizers.SGD(d_lr), g_optimizer=keras.optimizers.SGD(g_lr))
    images = tf.constant(np.random.default_rng(real_seed).uniform(-1, 1, (4, 28, 28, 1)),
                         tf.float32)
    logs = gan.train_step((images, tf.constant([1, 2, 3, 4], tf.int32),
                           tf.constant(0, tf.int64)))
    return gan, before, logs


def test_aux_classifier_head_loss_and_step():
    from train.gan import GAN
    from train.models import build_gan_pair

    for arch in ("dcgan", "mlp"):
        _, d = build_gan_pair(arch, 8, 10, class_heads=1)
        assert [tuple(o.shape) for o in d.outputs] == [(None, 1), (None, 10)], arch
    assert len(build_gan_pair("dcgan", 8, 10)[1].outputs) == 1      # off by default
    g, d = build_gan_pair("dcgan", 8, 10)
    with pytest.raises(ValueError, match="has 0 class heads; these losses need 1"):
        GAN(g, d, 8, 10, seed=0, ema_decay=0.5, aux_class_weight=1.0)

    g, d = build_gan_pair("dcgan", 8, 10, class_heads=1)
    gan = GAN(g, d, 8, 10, seed=0, ema_decay=0.5, aux_class_weight=1.0)
    class_logits = np.array([[2.0, 0.0, -1.0] + [0.0] * 7, [0.0] * 9 + [3.0]], np.float32)
    labels = np.array([0, 4], np.int32)
    expected = np.mean([np.log(np.exp(row).sum()) - row[label]
                        for row, label in zip(class_logits, labels, strict=True)])
    assert float(gan._class_loss(class_logits, labels)) == pytest.approx(expected, rel=1e-6)

    def one_step(weight, d_lr=1e-3):
        gan, (head,), logs = _after_one_step(1, weight, d_lr=d_lr, g_lr=1e-3)
        return gan, head, logs

    gan, head, logs = one_step(1.0)
    # D's class head learns (only the classification loss reaches it), and is logged.
    assert not np.array_equal(head, d_head := gan.discriminator.get_layer(
        "class_logits").get_weights()[0])
    assert "class_loss_mean" in logs and float(logs["class_loss_mean"]) > 0
    # With D frozen, G's step still depends on the weight: the class loss reaches G.
    frozen_a, _, _ = one_step(1.0, d_lr=0.0)
    frozen_b, _, _ = one_step(3.0, d_lr=0.0)
    assert any(not np.array_equal(a, b) for a, b in zip(
        frozen_a.generator.get_weights(), frozen_b.generator.get_weights(), strict=True))
    assert d_head.shape == (head.shape[0], 10)

    def head_after_step(g_seed):
        gan = _after_one_step(1, 1.0, d_lr=1e-2, g_seed=g_seed)[0]
        return gan.discriminator.get_layer("class_logits").get_weights()

    # D's class head learns from real images only: other fakes, the same first update.
    one, other = head_after_step(1), head_after_step(2)
    assert all(np.array_equal(a, b) for a, b in zip(one, other, strict=True))


def test_twin_classifier_heads_and_losses():
    from train.gan import GAN
    from train.models import build_gan_pair

    for arch in ("dcgan", "mlp"):
        _, d = build_gan_pair(arch, 8, 10, class_heads=2)
        assert [tuple(o.shape) for o in d.outputs] == [(None, 1), (None, 10), (None, 10)], arch
    with pytest.raises(ValueError, match="class_heads must be 0, 1 or 2"):
        build_gan_pair("dcgan", 8, 10, class_heads=3)
    with pytest.raises(ValueError, match="needs a conditional discriminator"):
        build_gan_pair("dcgan", 8, 0, class_heads=1)    # no labels: no head to train
    g, d = build_gan_pair("dcgan", 8, 10, class_heads=1)
    with pytest.raises(ValueError, match="has 1 class heads; these losses need 2"):
        GAN(g, d, 8, 10, seed=0, ema_decay=0.5, aux_class_weight=1.0, twin_classifier=True)
    with pytest.raises(ValueError, match="twin_classifier needs aux_class_weight"):
        GAN(g, d, 8, 10, seed=0, ema_decay=0.5, twin_classifier=True)

    # G's class loss is the class head's cross-entropy MINUS the twin's: with the two heads
    # equal they cancel, so G's step does not depend on the weight (a mutant adding the
    # twin's term, or dropping it, makes it depend); with different heads it does.
    def g_weights(weight, equal_heads):
        return _after_one_step(2, weight, d_lr=0.0,
                               equal_heads=equal_heads)[0].generator.get_weights()

    def largest_difference(a, b):
        return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))

    assert largest_difference(g_weights(1.0, True), g_weights(3.0, True)) < 1e-6
    assert largest_difference(g_weights(1.0, False), g_weights(3.0, False)) > 1e-4

    # D learns the twin on fakes and the class head on real images: the twin's first
    # update depends on the fakes and not on the real images, the class head's the reverse.
    def heads_after(**kwargs):
        gan, before, logs = _after_one_step(2, 1.0, d_lr=1e-2, **kwargs)
        after = [gan.discriminator.get_layer(n).get_weights()[0]
                 for n in ("class_logits", "twin_logits")]
        assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
        assert float(logs["twin_loss_mean"]) > 0 and float(logs["class_loss_mean"]) > 0
        return after

    base = heads_after()
    other_fakes, other_reals = heads_after(g_seed=2), heads_after(real_seed=3)
    assert np.array_equal(base[0], other_fakes[0])
    assert not np.array_equal(base[1], other_fakes[1])
    assert np.array_equal(base[1], other_reals[1])
    assert not np.array_equal(base[0], other_reals[0])


def test_bfloat16_computes_in_bfloat16_and_copies_to_float32():
    import keras

    from train.gan import GAN
    from train.models import build_gan_pair, float32_copy

    def computes(model, skip=()):
        return {layer.compute_dtype for layer in model.layers
                if layer.weights and not isinstance(layer, skip)}

    for arch in ("dcgan", "mlp"):
        g, d = build_gan_pair(arch, 8, 10, precision="bfloat16")
        assert keras.config.dtype_policy().name == "float32"    # restored after building
        assert computes(d, skip=keras.layers.Embedding) == {"bfloat16"}, arch
        *hidden, last = [layer for layer in g.layers if layer.weights]
        assert last.compute_dtype == "float32" and "bfloat16" in {
            layer.compute_dtype for layer in hidden}, arch
        assert {layer.variable_dtype for layer in g.layers} == {"float32"}, arch
        z = keras.ops.convert_to_tensor(
            np.random.default_rng(0).standard_normal((3, 8), dtype=np.float32))
        labels = keras.ops.convert_to_tensor(np.array([0, 4, 9], np.int32))
        assert np.asarray(g([z, labels])).dtype == np.float32
        gan = GAN(g, d, 8, 10, seed=0, ema_decay=0.5)       # the EMA copy is mixed too
        assert computes(gan.ema_generator) == computes(g)
        logits, _, _ = gan._disc(g([z, labels]), labels, 0, 0)
        assert logits.dtype == "float32"                    # what the losses see

        copy = float32_copy(g)
        assert {layer.compute_dtype for layer in copy.layers} == {"float32"}
        assert all(np.array_equal(a, b) for a, b in
                   zip(copy.get_weights(), g.get_weights(), strict=True))
        # Same weights, float32 arithmetic: the image agrees to bfloat16's precision.
        np.testing.assert_allclose(np.asarray(copy([z, labels])),
                                   np.asarray(g([z, labels])), atol=0.05)
    assert computes(build_gan_pair("dcgan", 8, 10)[0]) == {"float32"}


AVX2_ONLY = {"model": "AMD EPYC", "cores": 2, "flags": ["avx2"]}


@pytest.mark.parametrize("precision, flags, noted", [
    ("bfloat16", ["avx2"], True),
    ("bfloat16", ["avx2", "avx512f", "avx512_vnni"], True),      # AVX-512 without BF16
    ("bfloat16", ["amx_bf16", "amx_tile", "avx2", "avx512_bf16"], False),
    ("bfloat16", ["avx2", "avx512_bf16", "avx512f"], False),     # AVX512-BF16, no AMX
    ("float32", ["avx2"], False),
    ("bfloat16", [], False),                                    # flags unknown: no guess
])
def test_bfloat16_note_only_where_the_cpu_lacks_bf16(precision, flags, noted):
    from train.cli import precision_note

    note = precision_note(precision, {**AVX2_ONLY, "flags": flags})
    assert (note is not None) == noted
    if noted:
        assert note.startswith("note: this CPU (AMD EPYC) has no bfloat16 arithmetic")


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_gan_command_prints_the_bfloat16_note_then_trains(monkeypatch, runner, tmp_path,
                                                          precision):
    import train.cli
    import train.run_gan

    trained = []
    monkeypatch.setattr(train.cli, "cpu_info", lambda: AVX2_ONLY)
    monkeypatch.setattr(train.run_gan, "train", lambda config, resume, evaluator:
                        trained.append(config.precision) or tmp_path / "generator.keras")
    result = runner.invoke(train.cli.main, ["gan", "--out", str(tmp_path / "run"),
                                            "--precision", precision, "--fcd-samples", "0"])
    assert result.exit_code == 0, result.output
    assert trained == [precision]      # a note, not a refusal
    assert ("has no bfloat16 arithmetic" in result.stderr) == (precision == "bfloat16")


# --- end to end ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("lever", [["--loss", "hinge"], ["--spectral-norm"],
                                   ["--r1-gamma", "10"], ["--diffaugment", "translation"],
                                   ["--d-width", "0.5"], ["--d-dropout", "0"],
                                   ["--lr-schedule", "linear"],
                                   ["--precision", "bfloat16"],
                                   ["--aux-class-weight", "1"]],
                         ids=lambda a: a[0][2:])
def test_each_lever_changes_training(tmp_path, lever, baseline_run):
    run = tmp_path / "run"
    _train("--out", run, "--steps", "6", "--sample-every", "6", *TINY, *lever)
    a, b = _weights(baseline_run), _weights(run)
    # Same step count, same data, same latents: only the lever can make the weights differ.
    assert a.keys() != b.keys() or any(not np.array_equal(a[k], b[k]) for k in a), lever


@pytest.mark.slow
def test_top_k_changes_training_from_the_second_epoch(tmp_path):
    # 32 images in batches of 16: epoch 0 is steps 0-1, so top-k acts from step 2 on.
    args = [*TINY, "--limit", "32", "--sample-every", "2"]
    top_k = ["--top-k", "0.5", "--top-k-decay", "0.5"]     # epoch 1 keeps 8 of 16
    for name, steps, lever in [("a2", 2, []), ("b2", 2, top_k), ("a6", 6, []), ("b6", 6, top_k)]:
        _train("--out", tmp_path / name, "--steps", steps, *args, *lever)
    a2, b2, a6, b6 = (_weights(tmp_path / n) for n in ("a2", "b2", "a6", "b6"))
    assert all(np.array_equal(a2[k], b2[k]) for k in a2)   # the whole batch in epoch 0
    assert any(not np.array_equal(a6[k], b6[k]) for k in a6)


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("baseline") / "run"
    _train("--out", run, "--steps", "6", "--sample-every", "6", *TINY)
    return run


@pytest.mark.slow
def test_all_levers_resume_exactly_and_export(tmp_path):
    # 64 images: 4 steps an epoch, so top-k's schedule moves during the run.
    args = ["--steps", "30", "--sample-every", "5", "--limit", "64", *TINY, *ALL_LEVERS]
    straight = tmp_path / "straight"
    _train("--out", straight, *args)

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kill_at_first_checkpoint(args, killed, env, ROOT, 30)
    _train("--resume", killed)
    a, b = _weights(straight), _weights(killed)
    assert all(np.array_equal(a[k], b[k]) for k in a), "resumed weights differ"
    # The class heads' losses are logged beside the others, and resume like them.
    metrics = (straight / "metrics.csv").read_text()
    header, *rows = metrics.splitlines()
    assert header == "step,d_loss,g_loss,d_real,d_fake,class_loss,twin_loss"
    assert len(rows) == 30
    assert all(0 < float(v) < 20 for row in rows for v in row.split(",")[5:])
    assert (killed / "metrics.csv").read_text() == metrics

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "export", "model", str(straight), "--out",
                             str(tmp_path / "levers.onnx")], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import ganlite
    gen = ganlite.load(tmp_path / "levers.onnx")
    assert gen.card["train_command"].count("--spectral-norm") == 1
    assert gen.generate(4, seed=1).shape == (4, 28, 28)
    # A bfloat16 run saves (and exports) a float32 generator.
    import keras
    saved = keras.saving.load_model(straight / "generator.keras", compile=False)
    assert {layer.compute_dtype for layer in saved.layers} == {"float32"}
