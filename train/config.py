"""Configuration of the training stage: one frozen dataclass per job, validated when it
is made (from the CLI, from Python, or from a run folder's run.json), and turned back into
the command line that makes it (`command()`, recorded in the model card).

Every field is checked in __post_init__: a bad value raises ConfigError (a usage error)
naming the field, its option, the value and the valid range.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganlite.datasets import DATASETS
from ganlite.modelfile import MAX_LATENT_DIM

from .errors import ConfigError

ARCHITECTURES = ("mlp", "dcgan")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
LOSSES = ("ns", "hinge")                        # non-saturating | hinge
LR_SCHEDULES = ("constant", "linear", "cosine")  # decay to 0 at the last step
# float32, or Keras' mixed bfloat16: layers compute in bfloat16, weights, losses and the
# generator's output stay float32 (fast where the CPU has AMX or AVX512-BF16).
PRECISIONS = ("float32", "bfloat16")
AUGMENT_POLICIES = ("color", "translation", "cutout")
MAX_WIDTH = 8.0
D_DROPOUT = 0.3   # the dcgan discriminator's dropout rate before --d-dropout existed
TOP_K_DECAY = 0.99   # per epoch, as in Sinha et al. 2020
MAX_AUX_CLASS_WEIGHT = 100.0
CLASSIFIER_ARCHITECTURES = ("cnn", "gap")
# tf.distribute strategies (train/distribute.py): one device, the devices of one machine,
# several machines (TF_CONFIG).
STRATEGIES = ("default", "mirrored", "multi-worker")
MAX_DEVICES = 4096
MAX_SEED = 2**32 - 1            # keras.utils.set_random_seed seeds numpy: 32 bits
MAX_FCD_SAMPLES = 1_000_000     # what ganlite's evaluator judges at once


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _fail(name: str, expected: str, value: object) -> None:
    shown = " ".join(repr(value).split())
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise ConfigError(f"{name} ({_option(name)}) must be {expected}, got {shown}")


class _Checks:
    """Validation of one frozen dataclass, field by field (values normalised in place)."""

    def __init__(self, config: Any):
        self.config = config

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self.config, name, value)

    def int(self, name: str, low: int, high: int | None = None,
            allowed: tuple[int, ...] = ()) -> None:
        value = getattr(self.config, name)
        ok = (not isinstance(value, bool) and isinstance(value, int)
              and (value in allowed or (value >= low and (high is None or value <= high))))
        if not ok:
            span = f"between {low:,} and {high:,}" if high is not None else f">= {low:,}"
            extra = "".join(f"{a} or " for a in allowed)
            _fail(name, f"an integer {extra}{span}", value)
        self._set(name, int(value))

    def float(self, name: str, low: float, high: float, low_open: bool,
              high_open: bool) -> None:
        value = getattr(self.config, name)
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) \
            and math.isfinite(value)
        if ok:
            ok = (value > low if low_open else value >= low) and \
                (value < high if high_open else value <= high)
        if not ok:
            span = (f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                    if math.isfinite(high) else f"{'>' if low_open else '>='} {low:g}")
            _fail(name, f"a number in {span}" if math.isfinite(high) else
                  f"a finite number {span}", value)
        self._set(name, float(value))

    def bool(self, name: str) -> None:
        value = getattr(self.config, name)
        if not isinstance(value, bool):
            _fail(name, "true or false", value)

    def choice(self, name: str, choices: tuple[str, ...]) -> None:
        value = getattr(self.config, name)
        if not isinstance(value, str) or value not in choices:
            _fail(name, "one of " + ", ".join(choices), value)

    def path(self, name: str, optional: bool = False) -> None:
        value = getattr(self.config, name)
        if value is None and optional:
            return
        text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
        if not isinstance(text, str) or not text or "\0" in text:
            _fail(name, "a folder path" + (" or None" if optional else ""), value)
        self._set(name, Path(text))


def _to_json(config: Any) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v)
            for k, v in dataclasses.asdict(config).items()}


def _from_json(cls: type, d: object, source: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: the configuration is not a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown configuration field(s) {', '.join(unknown)}")
    if "out" not in d:
        raise ConfigError(f"{source}: the configuration has no 'out' field")
    return cls(**d)


def _argv(config: Any) -> list[str]:
    """Options that reproduce `config` with its `python -m train` command: every field given
    explicitly (defaults may change), flags only when set, None paths left out."""
    args = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, bool):
            if value:
                args.append(_option(field.name))
        elif value is not None:
            args += [_option(field.name), str(value) if not isinstance(value, float)
                     else repr(value)]
    return args


@dataclass(frozen=True)
class GanConfig:
    """One GAN training run (`python -m train gan`)."""
    out: Path
    arch: str = "dcgan"                # mlp | dcgan
    dataset: str = "mnist"             # a name of ganlite.datasets.DATASETS
    data: Path | None = None           # folder of IDX .gz files; None = keras.datasets
    limit: int = 0                     # use only the first N training images (0 = all)
    latent_dim: int = 100
    conditional: bool = False
    steps: int = 10_000
    batch_size: int = 64
    optimizer: str = "adam"            # adam | sgd | rmsprop
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta_1: float = 0.5
    ema_decay: float = 0.999
    loss: str = "ns"                   # ns (non-saturating) | hinge
    spectral_norm: bool = False        # spectral normalization of D's layers
    r1_gamma: float = 0.0              # R1 penalty weight on real images (0 = off)
    diffaugment: str = ""              # e.g. "translation,cutout" (empty = off)
    g_width: float = 1.0               # channel multiplier of G (dcgan)
    d_width: float = 1.0               # channel multiplier of D
    d_dropout: float = D_DROPOUT       # dropout after each conv of the dcgan D (0 = off)
    lr_schedule: str = "constant"      # constant | linear | cosine (to 0 at the end)
    top_k: float = 1.0                 # floor of the fraction of fakes in G's loss (1 = all)
    top_k_decay: float = TOP_K_DECAY   # that fraction's decay per epoch, from 1 to top_k
    aux_class_weight: float = 0.0      # AC-GAN auxiliary classification loss (0 = off)
    twin_classifier: bool = False      # TAC-GAN's twin classifier on fakes (needs the above)
    precision: str = "float32"         # float32 | bfloat16 (mixed: see PRECISIONS)
    sample_every: int = 500            # sample grid, checkpoint and metrics every N steps
    fcd_samples: int = 2_000           # samples for the FCD curve (0 = off)
    seed: int = 0
    jit_compile: bool = False
    strategy: str = "default"          # default | mirrored | multi-worker
    devices: int = 0                   # mirrored: replicas (0 = every GPU); see distribute.py

    def __post_init__(self) -> None:
        c = _Checks(self)
        c.path("out")
        c.choice("arch", ARCHITECTURES)
        c.choice("dataset", tuple(DATASETS))
        c.path("data", optional=True)
        c.int("limit", 0)
        c.int("latent_dim", 1, MAX_LATENT_DIM)
        c.bool("conditional")
        c.int("steps", 1)
        c.int("batch_size", 1)
        c.choice("optimizer", OPTIMIZERS)
        for name in ("g_lr", "d_lr"):
            c.float(name, 0.0, math.inf, low_open=True, high_open=True)
        c.float("beta_1", 0.0, 1.0, low_open=False, high_open=True)
        c.float("ema_decay", 0.0, 1.0, low_open=False, high_open=True)
        c.choice("loss", LOSSES)
        c.bool("spectral_norm")
        c.float("r1_gamma", 0.0, 1e6, low_open=False, high_open=False)
        if not isinstance(self.diffaugment, str) or self._augment_policy() is None:
            _fail("diffaugment", "a comma-separated list of " + ", ".join(AUGMENT_POLICIES)
                  + " (each at most once) or empty", self.diffaugment)
        for name in ("g_width", "d_width"):
            c.float(name, 0.0, MAX_WIDTH, low_open=True, high_open=False)
        c.float("d_dropout", 0.0, 1.0, low_open=False, high_open=True)
        c.choice("lr_schedule", LR_SCHEDULES)
        c.float("top_k", 0.0, 1.0, low_open=True, high_open=False)
        c.float("top_k_decay", 0.0, 1.0, low_open=True, high_open=False)
        c.float("aux_class_weight", 0.0, MAX_AUX_CLASS_WEIGHT, low_open=False,
                high_open=False)
        c.bool("twin_classifier")
        c.choice("precision", PRECISIONS)
        if self.arch == "mlp" and self.g_width != 1.0:
            raise ConfigError(f"g_width (--g-width) {self.g_width:g}: the mlp generator is "
                              f"the tutorial's and has no width option; use --arch dcgan")
        if self.arch == "mlp" and self.d_dropout != D_DROPOUT:
            raise ConfigError(f"d_dropout (--d-dropout) {self.d_dropout:g}: the mlp "
                              f"discriminator is the tutorial's and has no dropout; use "
                              f"--arch dcgan")
        c.int("sample_every", 1)
        c.int("fcd_samples", 2, MAX_FCD_SAMPLES, allowed=(0,))
        c.int("seed", 0, MAX_SEED)
        c.bool("jit_compile")
        c.choice("strategy", STRATEGIES)
        c.int("devices", 0, MAX_DEVICES)
        if self.devices and self.strategy != "mirrored":
            raise ConfigError(f"devices (--devices) {self.devices} needs strategy "
                              f"(--strategy) mirrored, got {self.strategy}")
        if self.devices and self.batch_size % self.devices:
            raise ConfigError(f"batch_size (--batch-size) {self.batch_size} must be a "
                              f"multiple of devices (--devices) {self.devices}: each "
                              f"replica takes an equal share of the batch")
        if self.top_k == 1.0 and self.top_k_decay != TOP_K_DECAY:
            # Otherwise a forgotten --top-k would train the plain recipe without a word.
            raise ConfigError(f"top_k_decay (--top-k-decay) {self.top_k_decay:g} has no effect "
                              f"with top_k (--top-k) 1 (off): set top_k below 1 too")
        if self.aux_class_weight and not self.conditional:
            raise ConfigError(f"aux_class_weight (--aux-class-weight) "
                              f"{self.aux_class_weight:g} needs conditional (--conditional): "
                              f"an unconditional model has no labels to classify")
        if self.twin_classifier and not self.aux_class_weight:
            raise ConfigError("twin_classifier (--twin-classifier) needs aux_class_weight "
                              "(--aux-class-weight) above 0: the twin corrects the "
                              "auxiliary classifier's loss")
        if self.top_k < 1.0 and self.strategy != "default":
            # Each replica would keep the best of its own share, not of the whole batch.
            raise ConfigError(f"top_k (--top-k) {self.top_k:g} needs strategy (--strategy) "
                              f"default, got {self.strategy}")
        if self.steps % self.sample_every:
            raise ConfigError(f"steps (--steps) {self.steps} must be a multiple of "
                              f"sample_every (--sample-every) {self.sample_every}")
        if self.limit and self.limit < self.batch_size:
            raise ConfigError(f"limit (--limit) {self.limit} is fewer images than one batch "
                              f"(--batch-size {self.batch_size})")

    def _augment_policy(self) -> tuple[str, ...] | None:
        parts = tuple(p.strip() for p in self.diffaugment.split(",") if p.strip())
        if any(p not in AUGMENT_POLICIES for p in parts) or len(set(parts)) != len(parts):
            return None
        return parts

    @property
    def augment_policy(self) -> tuple[str, ...]:
        """The DiffAugment parts, in order (empty: off)."""
        return self._augment_policy() or ()

    @property
    def num_classes(self) -> int:
        """Classes the models are conditioned on: the dataset's, or 0 (unconditional)."""
        return DATASETS[self.dataset].num_classes if self.conditional else 0

    @property
    def class_heads(self) -> int:
        """The discriminator's class heads: 0, 1 (aux_class_weight) or 2 (and its twin)."""
        return (2 if self.twin_classifier else 1) if self.aux_class_weight else 0

    def to_json(self) -> dict:
        return _to_json(self)

    @classmethod
    def from_json(cls, d: object, source: str = "run.json") -> GanConfig:
        """The config of a run.json "config" object, validated (ConfigError naming
        `source` for unknown or missing fields)."""
        return _from_json(cls, d, source)

    def argv(self) -> list[str]:
        """The options of `python -m train gan` that make this config."""
        return _argv(self)

    def command(self) -> str:
        """The shell command that makes this config (shlex-quoted: paths with spaces or
        quotes survive shlex.split)."""
        return shlex.join(["python", "-m", "train", "gan", *self.argv()])


@dataclass(frozen=True)
class ClassifierConfig:
    """Training the evaluation classifier (`python -m train classifier`)."""
    out: Path
    dataset: str = "mnist"
    data: Path | None = None
    arch: str = "cnn"                  # cnn (the bundled judge) | gap (bench's second)
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        c = _Checks(self)
        c.path("out")
        c.choice("dataset", tuple(DATASETS))
        c.path("data", optional=True)
        c.choice("arch", CLASSIFIER_ARCHITECTURES)
        c.int("epochs", 1)
        c.int("batch_size", 1)
        c.int("seed", 0, MAX_SEED)

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset].num_classes

    def to_json(self) -> dict:
        return _to_json(self)

    @classmethod
    def from_json(cls, d: object, source: str = "run.json") -> ClassifierConfig:
        """As GanConfig.from_json; also reads the all-text configs that classifier runs
        wrote before the config was typed ({"epochs": "10", "data": "None", ...})."""
        if isinstance(d, dict) and d and all(isinstance(v, str) for v in d.values()):
            d = dict(d)
            for key in ("epochs", "batch_size", "seed"):
                if key in d and d[key].isdigit():
                    d[key] = int(d[key])
            if d.get("data") == "None":
                d["data"] = None
        return _from_json(cls, d, source)

    def argv(self) -> list[str]:
        return _argv(self)

    def command(self) -> str:
        return shlex.join(["python", "-m", "train", "classifier", *self.argv()])
