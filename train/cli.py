"""The click commands of `python -m train`: options -> a validated config -> a run.

Option defaults come from the config dataclasses (one source); values are checked by the
dataclasses (ConfigError, exit 2); errors become exit statuses in train/clitools.py only.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from ganlite.datasets import DATASETS

from .clitools import CONTEXT, option_source_given
from .config import (
    ARCHITECTURES,
    CLASSIFIER_ARCHITECTURES,
    LOSSES,
    LR_SCHEDULES,
    OPTIMIZERS,
    PRECISIONS,
    STRATEGIES,
    ClassifierConfig,
    GanConfig,
)
from .errors import ConfigError, TrainError
from .versions import cpu_info, has_bf16_arithmetic

_PATH = click.Path(path_type=Path)
_FOLDER = click.Path(path_type=Path, file_okay=False)


def _default(cls: type, name: str) -> object:
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def _opt(cls: type, name: str, help: str, **kwargs: object):
    """An option whose default is the config field's."""
    flag = "--" + name.replace("_", "-")
    if kwargs.get("is_flag"):
        return click.option(flag, help=help, **kwargs)
    return click.option(flag, default=_default(cls, name), show_default=True, help=help,
                        **kwargs)


@click.group(context_settings=CONTEXT)
def main() -> None:
    """Train GAN generators and evaluation classifiers of 28x28 images (Keras 3 on
    TensorFlow). See README.md, "Training and exporting"."""


def _gan_options(func):
    options = [
        click.option("--out", type=_FOLDER, default=None,
                     help="Run folder to create (required unless --resume)."),
        click.option("--resume", type=_FOLDER, default=None, metavar="RUN_DIR",
                     help="Continue an interrupted run from its last checkpoint, with the "
                          "settings in RUN_DIR/run.json; no other option may be given."),
        _opt(GanConfig, "arch", "Architecture.", type=click.Choice(ARCHITECTURES)),
        _opt(GanConfig, "dataset", "Dataset (its class names go into the model card).",
             type=click.Choice(tuple(DATASETS))),
        click.option("--data", type=_FOLDER, default=None,
                     help="Folder of the four IDX .gz files (default: keras.datasets "
                          "download)."),
        _opt(GanConfig, "limit", "Use the first N training images only (0: all).",
             type=int),
        _opt(GanConfig, "latent_dim", "Latent size.", type=int),
        _opt(GanConfig, "conditional", "Class-conditional model.", is_flag=True),
        _opt(GanConfig, "steps", "Training steps (a multiple of --sample-every). With "
                                 "--resume: train the run further, to this many steps "
                                 "(constant learning rates only).", type=int),
        _opt(GanConfig, "batch_size", "Images per step.", type=int),
        _opt(GanConfig, "optimizer", "Optimizer of both networks.",
             type=click.Choice(OPTIMIZERS)),
        click.option("--lr", type=float, default=None,
                     help="Both learning rates (instead of --g-lr and --d-lr)."),
        _opt(GanConfig, "g_lr", "Generator learning rate.", type=float),
        _opt(GanConfig, "d_lr", "Discriminator learning rate.", type=float),
        _opt(GanConfig, "beta_1", "Adam's beta_1.", type=float),
        _opt(GanConfig, "ema_decay", "Decay of the generator's weight average (0: off).",
             type=float),
        _opt(GanConfig, "loss", "GAN loss: ns (non-saturating) or hinge.",
             type=click.Choice(LOSSES)),
        _opt(GanConfig, "spectral_norm", "Spectral normalization of the discriminator's "
                                         "layers.", is_flag=True),
        _opt(GanConfig, "r1_gamma", "Weight of the R1 gradient penalty on real images "
                                    "(0: off).", type=float),
        _opt(GanConfig, "diffaugment", "Differentiable augmentation of D's inputs: a "
                                       "comma-separated list of color, translation, cutout "
                                       "(empty: off).", type=str),
        _opt(GanConfig, "g_width", "Channel multiplier of the dcgan generator.", type=float),
        _opt(GanConfig, "d_width", "Channel multiplier of the discriminator.", type=float),
        _opt(GanConfig, "d_dropout", "Dropout rate after each conv of the dcgan "
                                     "discriminator (0: off).", type=float),
        _opt(GanConfig, "lr_schedule", "Learning rates: constant, or decayed to 0 at the "
                                       "last step (linear, cosine).",
             type=click.Choice(LR_SCHEDULES)),
        _opt(GanConfig, "top_k", "Top-k training: the generator learns only from the "
                                 "fraction of its batch that the discriminator rates most "
                                 "real; the fraction starts at 1 and decays by "
                                 "--top-k-decay per epoch down to this (1: off).",
             type=float),
        _opt(GanConfig, "top_k_decay", "Per-epoch decay of --top-k's fraction.", type=float),
        _opt(GanConfig, "aux_class_weight", "AC-GAN auxiliary classifier (conditional "
                                            "models): the discriminator also learns to "
                                            "classify real images, and the generator to make "
                                            "fakes it classifies as their label; the weight "
                                            "of both classification losses (0: off).",
             type=float),
        _opt(GanConfig, "twin_classifier", "TAC-GAN's twin classifier (with "
                                           "--aux-class-weight): a second class head learns "
                                           "the fakes' labels, and the generator's class loss "
                                           "subtracts its cross-entropy, so that fakes are not "
                                           "drawn towards what is easiest to classify.",
             is_flag=True),
        _opt(GanConfig, "precision", "Compute precision of both networks: float32, or "
                                     "bfloat16 (Keras' mixed precision: weights, losses and "
                                     "the saved generator stay float32; faster only on CPUs "
                                     "with AMX or AVX512-BF16).",
             type=click.Choice(PRECISIONS)),
        _opt(GanConfig, "sample_every", "Sample grid, checkpoint and metrics every N "
                                        "steps.", type=int),
        _opt(GanConfig, "fcd_samples", "Samples for the FCD curve at each snapshot "
                                       "(0: off).", type=int),
        _opt(GanConfig, "seed", "Seed of everything random: same seed, same run.",
             type=int),
        _opt(GanConfig, "jit_compile", "XLA-compile the train step.", is_flag=True),
        _opt(GanConfig, "strategy", "tf.distribute strategy: default (one device), "
                                    "mirrored (the devices of this machine), multi-worker "
                                    "(several machines, set up by TF_CONFIG). The batch is "
                                    "split evenly across replicas.",
             type=click.Choice(STRATEGIES)),
        _opt(GanConfig, "devices", "Replicas of --strategy mirrored: N GPUs (0: all), or "
                                   "on a machine without GPU N logical devices split from "
                                   "the CPU (for testing).", type=int),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def gan_config(ctx: click.Context) -> tuple[GanConfig, bool]:
    """(config, resume?) of a parsed `gan` command line.

    Raises:
        ConfigError: bad values, --resume with other options, neither --out nor --resume.
        TrainError: --resume names a folder without a readable run.json.
    """
    p = dict(ctx.params)
    resume = p.pop("resume")
    if resume is not None:
        given = [name for name in p if option_source_given(ctx, name) and name != "steps"]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ConfigError(f"--resume continues {resume} with the settings in its "
                              f"run.json; it takes no other option but --steps (given: "
                              f"{flags})")
        config = _resumed_config(resume)
        if option_source_given(ctx, "steps"):   # train further: checked by run_gan.train
            config = dataclasses.replace(config, steps=p["steps"])
        return config, True
    if p["out"] is None:
        raise ConfigError("give --out RUN_DIR for a new run, or --resume RUN_DIR to "
                          "continue one")
    lr = p.pop("lr")
    if lr is not None:
        both = [f"--{n.replace('_', '-')}" for n in ("g_lr", "d_lr")
                if option_source_given(ctx, n)]
        if both:
            raise ConfigError(f"give --lr or {' and '.join(both)}, not both")
        p["g_lr"] = p["d_lr"] = lr
    return GanConfig(**p), False


def _resumed_config(run_dir: Path) -> GanConfig:
    run_json = run_dir / "run.json"
    try:
        info = json.loads(run_json.read_text())
    except FileNotFoundError:
        raise TrainError(f"{run_json} not found: {run_dir} is not a run folder") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or "not valid JSON"
        raise TrainError(f"{run_json} cannot be read ({reason})") from None
    if not isinstance(info, dict) or "config" not in info:
        raise TrainError(f"{run_json} holds no run configuration")
    config = GanConfig.from_json(info["config"], source=str(run_json))
    return dataclasses.replace(config, out=run_dir)


def parse_gan(args: Sequence[str]) -> GanConfig:
    """The config that `python -m train gan ARGS...` would train (nothing run).

    Raises:
        click.ClickException: the arguments do not parse.
        ConfigError: see gan_config.
    """
    with gan.make_context("gan", list(args)) as ctx:
        return gan_config(ctx)[0]


@main.command(context_settings=CONTEXT)
@_gan_options
@click.pass_context
def gan(ctx: click.Context, **_: object) -> None:
    """Train a GAN generator into a run folder (or --resume one)."""
    config, resume = gan_config(ctx)
    note = precision_note(config.precision, cpu_info())
    if note:
        print(note, file=sys.stderr)
    evaluator = _evaluator(config.dataset) if config.fcd_samples else None
    from .run_gan import train

    final = train(config, resume=resume, evaluator=evaluator)
    click.echo(f"saved {final}", err=True)


def precision_note(precision: str, cpu: dict[str, object]) -> str | None:
    """A note for bfloat16 on a CPU that has no bfloat16 arithmetic (the run is emulated
    and slower than float32, not refused: its weights are that recipe's), else None."""
    # No flags read (not Linux, or not x86: /proc/cpuinfo names ARM's differently): say
    # nothing rather than guess.
    if precision != "bfloat16" or not cpu.get("flags") or has_bf16_arithmetic(cpu):
        return None
    return (f"note: this CPU ({cpu.get('model', 'unknown')}) has no bfloat16 arithmetic "
            f"(AMX or AVX512-BF16): bfloat16 is emulated here, several times slower than "
            f"float32 (the same recipe in float32 trains other weights, much sooner)")


def _evaluator(dataset: str):
    """The bundled classifier for the dataset (for FCD curves), or None with a note."""
    from ganlite import Evaluator, GanliteError

    try:
        return Evaluator(dataset, device="cpu")
    except GanliteError as e:
        print(f"note: no FCD curve ({e})", file=sys.stderr)
        return None


@main.command(context_settings=CONTEXT)
@click.option("--out", type=_FOLDER, required=True, help="Run folder to write.")
@_opt(ClassifierConfig, "dataset", "Dataset.", type=click.Choice(tuple(DATASETS)))
@click.option("--data", type=_FOLDER, default=None,
              help="Folder of the four IDX .gz files (default: keras.datasets download).")
@_opt(ClassifierConfig, "arch", "Architecture: cnn (the bundled judge) or gap (the "
                                "second judge of bench/judge.py).",
      type=click.Choice(CLASSIFIER_ARCHITECTURES))
@_opt(ClassifierConfig, "epochs", "Training epochs.", type=int)
@_opt(ClassifierConfig, "batch_size", "Images per step.", type=int)
@_opt(ClassifierConfig, "seed", "Seed of everything random.", type=int)
def classifier(**params: object) -> None:
    """Train the evaluation classifier and its test-set reference statistics."""
    config = ClassifierConfig(**params)
    from .classifier import train_classifier

    final = train_classifier(config)
    click.echo(f"saved {final}", err=True)


def parse_classifier(args: Sequence[str]) -> ClassifierConfig:
    """The config that `python -m train classifier ARGS...` would train (nothing run)."""
    with classifier.make_context("classifier", list(args)) as ctx:
        return ClassifierConfig(**ctx.params)
