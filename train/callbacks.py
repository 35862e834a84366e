"""Keras callbacks of a GAN run: progress, metrics log, sample grids, FCD, checkpoints.

A Keras "epoch" here is one snapshot interval (GanConfig.sample_every steps), so
on_epoch_end is where grids, checkpoints and the FCD curve are written.
"""
from __future__ import annotations

import csv
import math
import os
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from ganlite import save_grid
from ganlite.files import atomic_write

from .errors import TrainError


def save_checkpoint(path: Path, gan, step: int) -> None:
    """Every variable and the step, atomically and durably (fsync before the rename)."""
    arrays = {f"v{i:04d}": np.asarray(v) for i, v in enumerate(gan.checkpoint_variables())}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:      # a file, not a path: savez would append .npz
            np.savez(f, step=step, **arrays)
            f.flush()
            os.fsync(f.fileno())
    atomic_write(path, write)


def load_checkpoint(path: Path, gan) -> int:
    """Restore every variable; return the step the checkpoint was taken at.

    Raises:
        TrainError: the checkpoint cannot be read or does not fit this model.
    """
    try:
        with np.load(path) as ckpt:
            variables = gan.checkpoint_variables()
            names = sorted(k for k in ckpt.files if k.startswith("v"))
            if len(names) != len(variables) or "step" not in ckpt.files:
                raise TrainError(f"{path}: holds {len(names)} variables, this model has "
                                 f"{len(variables)}: was it made with other settings?")
            for name, var in zip(names, variables, strict=True):
                if tuple(ckpt[name].shape) != tuple(var.shape):
                    raise TrainError(f"{path}: variable {name} is {list(ckpt[name].shape)}, "
                                     f"this model's is {list(var.shape)}")
                var.assign(ckpt[name])
            return int(ckpt["step"])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise TrainError(f"{path}: not a readable checkpoint "
                         f"({getattr(e, 'strerror', None) or type(e).__name__})") from None


class RunLogger(keras.callbacks.Callback):
    """Per-step losses to metrics.csv, a progress line, NaN guard, snapshots, checkpoints."""

    # Per-step losses, then the trackers' running means (logged by train_step as NAME_mean);
    # class_loss (D's auxiliary class loss on real images) only when D has that head,
    # twin_loss (its twin's on fakes) only with the twin.
    STEP_FIELDS = ("step", "d_loss", "g_loss")
    MEAN_FIELDS = ("d_real", "d_fake")

    def __init__(self, config, run_dir: Path, start_step: int, sampler, fcd=None):
        super().__init__()
        self.config = config
        self.run_dir = run_dir
        self.step = start_step
        self.start_step = start_step
        self.sampler = sampler
        self.fcd = fcd
        self.means = self.MEAN_FIELDS + ("class_loss", "twin_loss")[:config.class_heads]
        self.rows: list[tuple] = []
        self.diverged_at: int | None = None
        self._t0 = time.monotonic()
        self._last_print = 0.0
        self._tty = sys.stderr.isatty()

    def on_train_batch_end(self, batch, logs=None):
        d_loss, g_loss = float(logs["d_loss"]), float(logs["g_loss"])
        if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
            self.diverged_at = self.step + 1
            self.model.stop_training = True
            return
        self.step += 1
        self.rows.append((self.step, d_loss, g_loss,
                          *(float(logs[name + "_mean"]) for name in self.means)))
        now = time.monotonic()
        if now - self._last_print >= (1.0 if self._tty else 30.0):
            self._last_print = now
            self._progress(d_loss, g_loss)

    def _progress(self, d_loss, g_loss):
        done = self.step - self.start_step
        rate = done / max(time.monotonic() - self._t0, 1e-9)
        eta = (self.config.steps - self.step) / rate if rate else float("inf")
        line = (f"step {self.step}/{self.config.steps} | {rate:.1f} steps/s | "
                f"d_loss {d_loss:.3f} g_loss {g_loss:.3f} | ETA {_clock(eta)}")
        print(("\r" + line) if self._tty else line, end="" if self._tty else "\n",
              file=sys.stderr, flush=True)

    def on_train_begin(self, logs=None):
        # The film starts from the untrained generator's noise, as the tutorial's figures do.
        if self.step == 0:
            self._save_samples()

    def _save_samples(self):
        save_grid(self.sampler(), self.run_dir / "samples" / f"step_{self.step:07d}.png",
                  columns=self.sampler.columns)

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged_at is not None:
            return
        self.snapshot()

    def snapshot(self):
        self._save_samples()
        self._append_metrics()
        if self.fcd is not None:
            self.fcd(self.step)
        save_checkpoint(self.run_dir / "checkpoint.npz", self.model, self.step)
        if self._tty:
            print(file=sys.stderr)
        rate = (self.step - self.start_step) / max(time.monotonic() - self._t0, 1e-9)
        print(f"snapshot at step {self.step}: {rate:.1f} steps/s, samples/step_"
              f"{self.step:07d}.png, checkpoint.npz", file=sys.stderr, flush=True)

    def _append_metrics(self):
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(self.STEP_FIELDS + self.means)
            writer.writerows((s, *(f"{v:.6g}" for v in rest)) for s, *rest in self.rows)
        self.rows.clear()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def truncate_csv(path: Path, last_step: int) -> None:
    """Drop rows logged after the checkpoint a run resumes from."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= last_step]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
    atomic_write(path, write)
