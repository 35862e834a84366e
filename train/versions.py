"""The versions a run, an export or a benchmark records: one helper for all of them."""
from __future__ import annotations

import importlib
import platform


def versions(*modules: str) -> dict[str, str]:
    """{"python": ..., module: module.__version__ for each module named} (imports them:
    call it where TensorFlow is meant to be loaded anyway).

    Example: versions("tensorflow", "keras", "numpy").
    """
    found = {"python": platform.python_version()}
    for name in modules:
        found[name] = str(getattr(importlib.import_module(name), "__version__", "unknown"))
    return found
