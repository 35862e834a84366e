"""One GAN training run: data, models, fit with callbacks, resume, final model.

Run folder layout:
  run.json          the GanConfig, versions and machine; `--resume` reads it back
  checkpoint.npz    every variable + step, written atomically every sample_every steps
  metrics.csv       losses per step (+ class_loss with an aux head, twin_loss with its twin)
  fcd.csv           FCD / classifier score per snapshot
  samples/          fixed-latent sample grids, one per snapshot; training.gif the film
  generator.keras   the final (EMA) generator, input z [b, latent_dim] (+ label [b]),
                    output float32 [b, 28, 28, 1] in [-1, 1]
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ganlite import save_animation
from ganlite.pixels import to_uint8, to_unit_range

from . import data as datasets
from . import distribute
from .callbacks import RunLogger, load_checkpoint, truncate_csv
from .config import GanConfig
from .errors import ConfigError, NonFiniteLoss, TrainError
from .saving import save_keras, write_json
from .versions import cpu_info, versions

# The training film keeps at most this many snapshots (evenly spaced, the last included).
MAX_FILM_FRAMES = 500


def _optimizer(name: str, lr: float, beta_1: float, schedule: str = "constant",
               steps: int = 1):
    import keras

    # The optimizer's iteration count is in the checkpoint, so a resumed run continues
    # the schedule where it stopped.
    if schedule == "linear":
        lr = keras.optimizers.schedules.PolynomialDecay(lr, steps, end_learning_rate=0.0)
    elif schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, steps)
    # The name is one of config.OPTIMIZERS: GanConfig checked it.
    if name == "adam":
        return keras.optimizers.Adam(lr, beta_1=beta_1)
    if name == "sgd":
        return keras.optimizers.SGD(lr)
    return keras.optimizers.RMSprop(lr)


def _steps_per_epoch(images, config: GanConfig) -> int:
    """Full batches in one pass over the images: the epoch of the batch order and of
    top-k's schedule."""
    return len(images) // config.batch_size


def _batches(images, labels, config: GanConfig, start_step: int):
    """tf.data of (images, labels, step) for steps [start_step, config.steps).

    The order is a pure function of (seed, epoch): a permutation per epoch, so a resumed
    run sees the very batches the uninterrupted run would have seen.
    """
    import tensorflow as tf

    per_epoch = _steps_per_epoch(images, config)
    if per_epoch == 0:
        raise ConfigError(f"{len(images)} training images are fewer than one batch "
                          f"(--batch-size {config.batch_size})")
    epochs = -(-config.steps // per_epoch)
    order = np.stack([np.random.default_rng([config.seed, e]).permutation(len(images))
                      for e in range(epochs)]).astype(np.int32)
    images = tf.constant(to_unit_range(images)[..., None])
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
        self.classes = config.num_classes
        # Conditional: one row per class, one column per class; else 5x5.
        self.columns = self.classes or 5
        n = self.columns * self.columns
        rng = np.random.default_rng([config.seed, 2**31])
        self.z = rng.standard_normal((n, config.latent_dim), dtype=np.float32)
        self.labels = (np.arange(n) % max(self.classes, 1)).astype(np.int32)

    def __call__(self, n: int | None = None, seed: int | None = None) -> np.ndarray:
        """uint8 [n, 28, 28] from the EMA generator (fixed latents unless seed given)."""
        z, labels = self.z, self.labels
        if seed is not None:
            rng = np.random.default_rng(seed)
            z = rng.standard_normal((n, z.shape[1]), dtype=np.float32)
            labels = rng.integers(0, max(self.classes, 1), n).astype(np.int32)
        inputs = [z, labels] if self.classes else z
        out = distribute.predict(self.gan.ema_generator, inputs, batch_size=500)
        return to_uint8(out[..., 0])


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
                f.write("step,fcd,classifier_score,min_share,max_share\n")
            f.write(f"{step},{report.fcd:.4f},{report.classifier_score:.4f},"
                    f"{report.class_share.min():.4f},{report.class_share.max():.4f}\n")
        print(f"  FCD {report.fcd:.2f} (n={self.config.fcd_samples}) MNIST score "
              f"{report.classifier_score:.2f}", file=sys.stderr, flush=True)


def train(config: GanConfig, resume: bool = False, evaluator=None) -> Path:
    """Train (or resume) a run; return the path of the final generator.keras."""
    where = distribute.placement(config)
    with distribute.cluster_failures(config):
        if where.chief:
            return _train(config, resume, evaluator, where, config.out)
        # Another worker of a multi-worker run: the same work, into a scratch folder.
        scratch = distribute.scratch_folder(where)
        try:
            _train(config, resume, None, where, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return config.out / "generator.keras"


def _train(config: GanConfig, resume: bool, evaluator, where: distribute.Placement,
           run_dir: Path) -> Path:
    ckpt_path = config.out / "checkpoint.npz"     # resume: every worker reads the chief's
    if resume:
        if not ckpt_path.exists():
            raise TrainError(f"{config.out}: no checkpoint.npz to resume from")
        if where.chief:
            _extend(config)
    elif (run_dir / "run.json").exists():
        raise TrainError(f"{run_dir} already holds a run; pass --resume {run_dir} to "
                         f"continue it, or choose another --out")
    elif run_dir.exists() and not run_dir.is_dir():
        raise TrainError(f"{run_dir} exists and is not a folder")

    images, labels = datasets.load(config.dataset, "train", config.data)
    if config.limit:
        images, labels = images[:config.limit], labels[:config.limit]
    if len(images) < config.batch_size:     # before the run folder holds anything
        raise ConfigError(f"{len(images)} training images are fewer than one batch "
                          f"(--batch-size {config.batch_size})")

    import keras
    import tensorflow as tf

    strategy = distribute.make_strategy(config, where)    # before TensorFlow starts
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    from .gan import GAN
    from .models import build_gan_pair, float32_copy

    num_classes = config.num_classes
    with distribute.scope(strategy):
        generator, discriminator = build_gan_pair(
            config.arch, config.latent_dim, num_classes, spectral_norm=config.spectral_norm,
            g_width=config.g_width, d_width=config.d_width, d_dropout=config.d_dropout,
            precision=config.precision, class_heads=config.class_heads)
        gan = GAN(generator, discriminator, config.latent_dim, num_classes,
                  seed=config.seed, ema_decay=config.ema_decay, loss=config.loss,
                  r1_gamma=config.r1_gamma, augment=config.augment_policy,
                  top_k=config.top_k, top_k_decay=config.top_k_decay,
                  aux_class_weight=config.aux_class_weight,
                  twin_classifier=config.twin_classifier,
                  steps_per_epoch=_steps_per_epoch(images, config))
        gan.compile(d_optimizer=_optimizer(config.optimizer, config.d_lr, config.beta_1,
                                           config.lr_schedule, config.steps),
                    g_optimizer=_optimizer(config.optimizer, config.g_lr, config.beta_1,
                                           config.lr_schedule, config.steps),
                    jit_compile=config.jit_compile)
        gan.build_optimizers()
    distribute.prepare(gan, strategy)

    start_step = 0
    try:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainError(f"{run_dir}: cannot create the run folder "
                         f"({e.strerror or type(e).__name__})") from None
    if resume:
        start_step = load_checkpoint(ckpt_path, gan)
        truncate_csv(run_dir / "metrics.csv", start_step)
        truncate_csv(run_dir / "fcd.csv", start_step)
        print(f"resuming {config.out} from step {start_step}", file=sys.stderr)
        distribute.check_resume(config.out / "run.json", strategy)
    if not resume or not where.chief:
        write_json(run_dir / "run.json",
                   {"config": config.to_json(),
                    "versions": versions("tensorflow", "keras", "numpy"),
                    "machine": cpu_info(),
                    "train_images": len(images), **distribute.record(strategy)})

    sampler = Sampler(gan, config)
    fcd = (FcdMonitor(sampler, config, run_dir, evaluator)
           if evaluator is not None and config.fcd_samples else None)
    logger = RunLogger(config, run_dir, start_step, sampler, fcd)
    if start_step < config.steps:
        t0 = time.monotonic()
        batches = _batches(images, labels, config, start_step) if strategy is None else \
            distribute.distribute_batches(
                lambda: _batches(images, labels, config, start_step), strategy,
                config.batch_size)
        try:
            gan.fit(batches,
                    epochs=config.steps // config.sample_every,
                    initial_epoch=start_step // config.sample_every,
                    steps_per_epoch=config.sample_every, callbacks=[logger], verbose=0,
                    shuffle=False)     # the batches come in their seeded order already
        finally:
            # Also when interrupted: the budget counts every second spent, including the
            # steps past the last checkpoint that a resume will redo.
            _record_time(run_dir, time.monotonic() - t0)
    if logger.diverged_at is not None:
        raise NonFiniteLoss(f"loss became NaN or infinite at step {logger.diverged_at}; "
                            f"the last good state is in {ckpt_path}")

    distribute.check_in_sync(gan, strategy)
    final = run_dir / "generator.keras"
    # A mixed-precision generator is saved in float32: what export converts and checks.
    save_keras(gan.ema_generator if config.precision == "float32"
               else float32_copy(gan.ema_generator), final)
    write_film(run_dir)
    return final


def _extend(config: GanConfig) -> None:
    """A resumed run given more steps than its run.json records: check and record them.

    With constant learning rates the latents, batches and updates of step s depend on
    (seed, s) alone, so the run extended to N steps is the run trained for N steps in one
    go: run.json then says N, and its command reproduces the model.

    Raises:
        ConfigError: fewer steps than recorded, or a learning-rate schedule (it decays to
            0 at the recorded last step: more steps would be another run).
    """
    path = config.out / "run.json"
    try:
        info = json.loads(path.read_text())
        recorded = info["config"]["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        raise TrainError(f"{path}: no readable run configuration to resume") from None
    if config.steps == recorded:
        return
    if config.steps < recorded:
        raise ConfigError(f"steps (--steps) {config.steps}: {config.out} was made for "
                          f"{recorded} steps; a resumed run goes further, not shorter")
    if config.lr_schedule != "constant":
        raise ConfigError(f"steps (--steps) {config.steps}: {config.out} decays its "
                          f"learning rates to 0 at step {recorded} (lr_schedule "
                          f"{config.lr_schedule}); only a constant-rate run can go further")
    info["config"]["steps"] = config.steps
    info.setdefault("extended_from", []).append(recorded)
    write_json(path, info)
    print(f"extending {config.out} from {recorded} to {config.steps} steps", file=sys.stderr)


def _record_time(run_dir: Path, seconds: float) -> None:
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    info["train_seconds"] = round(info.get("train_seconds", 0.0) + seconds, 1)
    # Seconds from two machines do not add up to one machine's speed: say so.
    here = cpu_info()
    if info.get("machine") not in (None, here) and here not in info.get("resumed_on", []):
        info.setdefault("resumed_on", []).append(here)
    write_json(path, info)


def write_film(run_dir: Path) -> None:
    """training.gif: the fixed-latent grid of every snapshot, in order (at most
    MAX_FILM_FRAMES, evenly spaced), written atomically by ganlite.save_animation."""
    paths = sorted((run_dir / "samples").glob("step_*.png"))
    if len(paths) > MAX_FILM_FRAMES:
        keep = np.linspace(0, len(paths) - 1, MAX_FILM_FRAMES).round().astype(int)
        paths = [paths[i] for i in sorted(set(keep.tolist()))]
    frames = []
    for path in paths:
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("L")))
    if frames and len({f.shape for f in frames}) == 1:
        save_animation(np.stack(frames), run_dir / "training.gif", scale=1, frame_ms=200)
