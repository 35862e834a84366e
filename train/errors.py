"""The exceptions of the training stage, under ganlite's hierarchy: a UsageError (a bad
option or configuration value) exits 2, every other GanliteError 1 (train/clitools.py is
the one place that maps them). Messages are one line."""
from __future__ import annotations

from ganlite import GanliteError, UsageError
from ganlite.datasets import DatasetError as DataError

__all__ = ["ConfigError", "DataError", "NonFiniteLoss", "TrainError"]


class ConfigError(UsageError):
    """A configuration value is invalid: the message names the field (and its option), the
    bad value and the valid range."""


class TrainError(GanliteError):
    """A run cannot start or continue: a folder that holds another run, a run folder that
    cannot be resumed, a dataset that cannot be loaded, a failed write."""


class NonFiniteLoss(TrainError):
    """Training diverged: a loss became NaN or infinite (the last good checkpoint is
    kept)."""
