"""Configuration of the training stage: one frozen dataclass per job, filled from the CLI."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GanConfig:
    out: Path
    arch: str = "dcgan"
    dataset: str = "mnist"
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
    sample_every: int = 500            # sample grid, checkpoint and metrics every N steps
    fcd_samples: int = 2_000           # samples for the FCD curve (0 = off)
    seed: int = 0
    jit_compile: bool = False

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict) -> "GanConfig":
        d = dict(d)
        d["out"] = Path(d["out"])
        d["data"] = Path(d["data"]) if d.get("data") else None
        return cls(**d)


@dataclass(frozen=True)
class ClassifierConfig:
    out: Path
    dataset: str = "mnist"
    data: Path | None = None
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
