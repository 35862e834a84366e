"""Training speed: the project's train_step against the tutorial's loop, same `mlp`
architecture, same batch size (32), on real MNIST.

    PYTHONPATH=. .venv-train/bin/python bench/train_speed.py --data ../shared/datasets/mnist

The tutorial's loop per step: generator.predict, discriminator.train_on_batch twice (real,
fake), combined.train_on_batch (in Keras 3 that pattern also silently freezes the
discriminator; here it is timed only). Ours: GAN.fit with the tf.function train_step, with
and without XLA (jit_compile). Median steps/s of 3 timed runs each, after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH, LATENT = 32, 100


def tutorial_rate(images: np.ndarray, steps: int) -> float:
    import keras

    from train.models import mlp_discriminator, mlp_generator

    generator = mlp_generator(LATENT)
    logits = mlp_discriminator()
    discriminator = keras.Sequential([logits, keras.layers.Activation("sigmoid")])
    discriminator.compile(loss="binary_crossentropy",
                          optimizer=keras.optimizers.Adam(2e-4, 0.5), metrics=["accuracy"])
    discriminator.trainable = False
    z = keras.Input((LATENT,))
    combined = keras.Model(z, discriminator(generator(z)))
    combined.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(2e-4, 0.5))
    rng = np.random.default_rng(0)
    valid, fake = np.ones((BATCH, 1)), np.zeros((BATCH, 1))

    def step():
        real = images[rng.integers(0, len(images), BATCH)]
        noise = rng.standard_normal((BATCH, LATENT)).astype(np.float32)
        generated = generator.predict(noise, verbose=0)
        discriminator.train_on_batch(real, valid)
        discriminator.train_on_batch(generated, fake)
        combined.train_on_batch(noise, valid)

    for _ in range(20):
        step()
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def ours_rate(raw_images, labels, steps: int, jit: bool) -> float:
    import keras

    from train.config import GanConfig
    from train.gan import GAN
    from train.models import build_gan_pair
    from train.run_gan import _batches

    generator, discriminator = build_gan_pair("mlp", LATENT, 0)
    gan = GAN(generator, discriminator, LATENT, 0, seed=0, ema_decay=0.999)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5),
                jit_compile=jit)
    config = GanConfig(out=Path("unused"), arch="mlp", steps=steps * 5, batch_size=BATCH,
                       sample_every=steps)
    data = _batches(raw_images, labels, config, 0)
    gan.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)  # warm-up: tracing
    rates = []
    for epoch in range(1, 4):
        t0 = time.perf_counter()
        gan.fit(data, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps, verbose=0)
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_speed.json")
    args = parser.parse_args()

    import keras

    from ganlite.datasets import read_split
    from ganlite.pixels import to_unit_range

    keras.utils.set_random_seed(0)
    raw, labels = read_split(args.data, "train", "mnist")
    result = {"batch": BATCH, "arch": "mlp",
              "tutorial_steps_per_s": tutorial_rate(to_unit_range(raw)[..., None], args.steps),
              "train_step_steps_per_s": ours_rate(raw, labels, args.steps * 2, jit=False),
              "train_step_xla_steps_per_s": ours_rate(raw, labels, args.steps * 2, jit=True)}
    result["speedup"] = result["train_step_steps_per_s"] / result["tutorial_steps_per_s"]
    result["speedup_xla"] = result["train_step_xla_steps_per_s"] / result["tutorial_steps_per_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
