"""The exceptions of the export stage, under ganlite's hierarchy: a UsageError exits 2,
every other GanliteError 1 (train/clitools.py maps them). Messages are one line."""
from __future__ import annotations

from ganlite import GanliteError, UsageError

__all__ = ["ExportConfigError", "ExportError", "ParityError"]


class ExportConfigError(UsageError):
    """An export option is invalid (--out not .onnx, a bad --name)."""


class ExportError(GanliteError):
    """A run folder cannot be exported: not a run, unfinished, unreadable model, failed
    conversion."""


class ParityError(ExportError):
    """Keras and onnxruntime disagree beyond the tolerance: nothing was written."""
