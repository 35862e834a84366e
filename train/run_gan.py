"""One GAN training run: data, models, fit with callbacks, resume, final model.

Run folder layout:
  run.json          the GanConfig and versions; `--resume` reads it back
  checkpoint.npz    every variable + step, written atomically every sample_every steps
  metrics.csv       losses per step;  fcd.csv  FCD / MNIST score per snapshot
  samples/          fixed-latent sample grids, one per snapshot; training.gif the film
  generator.keras   the final (EMA) generator, input z [b, latent_dim] (+ label [b]),
                    output float32 [b, 28, 28, 1] in [-1, 1]
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from . import data as datasets
from .callbacks import NonFiniteLoss, RunLogger, load_checkpoint, truncate_csv
from .config import GanConfig


class RunError(Exception):
    """A run cannot start or continue (bad folder, mismatched resume)."""


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float [b, 28, 28, 1] -> uint8 [b, 28, 28]; the same rounding as the ONNX graph."""
    return np.clip(np.rint((images[..., 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _optimizer(name: str, lr: float, beta_1: float):
    import keras

    if name == "adam":
        return keras.optimizers.Adam(lr, beta_1=beta_1)
    if name == "sgd":
        return keras.optimizers.SGD(lr)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    raise RunError(f"unknown optimizer {name!r}; choose adam, sgd or rmsprop")


def _batches(images, labels, config: GanConfig, start_step: int):
    """tf.data of (images, labels, step) for steps [start_step, config.steps).

    The order is a pure function of (seed, epoch): a permutation per epoch, so a resumed
    run sees the very batches the uninterrupted run would have seen.
    """
    import tensorflow as tf

    per_epoch = len(images) // config.batch_size
    if per_epoch == 0:
        raise RunError(f"{len(images)} training images are fewer than one batch of "
                       f"{config.batch_size}")
    epochs = -(-config.steps // per_epoch)
    order = np.stack([np.random.default_rng([config.seed, e]).permutation(len(images))
                      for e in range(epochs)]).astype(np.int32)
    images = tf.constant(datasets.to_unit_range(images))
    labels = tf.constant(labels.astype(np.int32))
    order = tf.constant(order)

    def batch(step):
        epoch, pos = step // per_epoch, step % per_epoch
        idx = order[epoch, pos * config.batch_size:(pos + 1) * config.batch_size]
        return tf.gather(images, idx), tf.gather(labels, idx), step

    return (tf.data.Dataset.range(start_step, config.steps)
            .map(batch, num_parallel_calls=1, deterministic=True).prefetch(2))


class Sampler:
    """Fixed latents (and labels) for the snapshot grids: the same picture every time."""

    def __init__(self, gan, config: GanConfig):
        self.gan = gan
        self.columns = 10 if config.conditional else 5
        n = self.columns * self.columns if config.conditional else 25
        rng = np.random.default_rng([config.seed, 2**31])
        self.z = rng.standard_normal((n, config.latent_dim), dtype=np.float32)
        self.labels = (np.arange(n) % 10).astype(np.int32)

    def __call__(self, n: int | None = None, seed: int | None = None) -> np.ndarray:
        """uint8 [n, 28, 28] from the EMA generator (fixed latents unless seed given)."""
        z, labels = self.z, self.labels
        if seed is not None:
            rng = np.random.default_rng(seed)
            z = rng.standard_normal((n, z.shape[1]), dtype=np.float32)
            labels = rng.integers(0, 10, n).astype(np.int32)
        inputs = [z, labels] if self.gan.num_classes else z
        out = self.gan.ema_generator.predict(inputs, batch_size=500, verbose=0)
        return to_uint8(out)


class FcdMonitor:
    """FCD and MNIST score of EMA samples at each snapshot, with the bundled classifier."""

    def __init__(self, sampler: Sampler, config: GanConfig, run_dir: Path, evaluator):
        self.sampler, self.config, self.path = sampler, config, run_dir / "fcd.csv"
        self.evaluator = evaluator

    def __call__(self, step: int):
        images = self.sampler(self.config.fcd_samples, seed=self.config.seed + 7919)
        report = self.evaluator.evaluate_images(images)
        new = not self.path.exists()
        with open(self.path, "a") as f:
            if new:
                f.write("step,fcd,mnist_score,min_share,max_share\n")
            f.write(f"{step},{report.fcd:.4f},{report.mnist_score:.4f},"
                    f"{report.class_share.min():.4f},{report.class_share.max():.4f}\n")
        print(f"  FCD {report.fcd:.2f} (n={self.config.fcd_samples}) MNIST score "
              f"{report.mnist_score:.2f}", file=sys.stderr, flush=True)


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__}


def train(config: GanConfig, resume: bool = False, evaluator=None) -> Path:
    """Train (or resume) a run; return the path of the final generator.keras."""
    run_dir = config.out
    ckpt_path = run_dir / "checkpoint.npz"
    if resume:
        if not ckpt_path.exists():
            raise RunError(f"{run_dir}: no checkpoint.npz to resume from")
    elif (run_dir / "run.json").exists():
        raise RunError(f"{run_dir} already holds a run; pass --resume {run_dir} to continue "
                       f"it, or choose another --out")
    if config.steps % config.sample_every:
        raise RunError(f"--steps {config.steps} must be a multiple of --sample-every "
                       f"{config.sample_every}")

    images, labels = datasets.load(config.dataset, "train", config.data)
    if config.limit:
        images, labels = images[:config.limit], labels[:config.limit]

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    from .gan import GAN
    from .models import build_gan_pair

    num_classes = 10 if config.conditional else 0
    generator, discriminator = build_gan_pair(config.arch, config.latent_dim, num_classes)
    gan = GAN(generator, discriminator, config.latent_dim, num_classes,
              seed=config.seed, ema_decay=config.ema_decay)
    gan.compile(d_optimizer=_optimizer(config.optimizer, config.d_lr, config.beta_1),
                g_optimizer=_optimizer(config.optimizer, config.g_lr, config.beta_1),
                jit_compile=config.jit_compile)
    gan.build_optimizers()

    start_step = 0
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    if resume:
        start_step = load_checkpoint(ckpt_path, gan)
        truncate_csv(run_dir / "metrics.csv", start_step)
        truncate_csv(run_dir / "fcd.csv", start_step)
        print(f"resuming {run_dir} from step {start_step}", file=sys.stderr)
    else:
        (run_dir / "run.json").write_text(json.dumps(
            {"config": config.to_json(), "versions": _versions(),
             "train_images": int(len(images))}, indent=2))

    sampler = Sampler(gan, config)
    fcd = (FcdMonitor(sampler, config, run_dir, evaluator)
           if evaluator is not None and config.fcd_samples else None)
    logger = RunLogger(config, run_dir, start_step, sampler, fcd)
    if start_step < config.steps:
        t0 = time.monotonic()
        gan.fit(_batches(images, labels, config, start_step),
                epochs=config.steps // config.sample_every,
                initial_epoch=start_step // config.sample_every,
                steps_per_epoch=config.sample_every, callbacks=[logger], verbose=0)
        _record_time(run_dir, time.monotonic() - t0)
    if logger.diverged_at is not None:
        raise NonFiniteLoss(f"loss became NaN or infinite at step {logger.diverged_at}; "
                            f"the last good state is in {ckpt_path}")

    final = run_dir / "generator.keras"
    gan.ema_generator.save(final)
    write_film(run_dir)
    return final


def _record_time(run_dir: Path, seconds: float) -> None:
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    info["train_seconds"] = round(info.get("train_seconds", 0.0) + seconds, 1)
    path.write_text(json.dumps(info, indent=2))


def write_film(run_dir: Path) -> None:
    """training.gif: the fixed-latent grid at every snapshot, in order."""
    from PIL import Image

    frames = [Image.open(p).convert("L") for p in sorted((run_dir / "samples").glob("*.png"))]
    if frames:
        frames[0].save(run_dir / "training.gif", save_all=True, append_images=frames[1:],
                       duration=200, loop=0)
