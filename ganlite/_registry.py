"""Built-in models: the .onnx files shipped in the wheel (ganlite/_models), or, when
running from a source checkout, the repository's artifacts/ folder."""
from __future__ import annotations

import os
from pathlib import Path

from ._errors import UnknownModelError, describe

DEFAULT_MODEL = "mnist-cdcgan"
_HERE = Path(__file__).resolve().parent
_SEARCH = (_HERE / "_models", _HERE.parent / "artifacts")


def _folder() -> Path | None:
    for folder in _SEARCH:
        if folder.is_dir() and any(folder.glob("*.onnx")):
            return folder
    return None


def builtin_models() -> dict[str, Path]:
    """{name: path} of every built-in model (generators and classifiers)."""
    folder = _folder()
    return {p.stem: p for p in sorted(folder.glob("*.onnx"))} if folder else {}


def resolve(model: str | os.PathLike | None) -> Path:
    """A built-in name, a path, or None (the default model) -> the .onnx path."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise UnknownModelError(f"a model is a built-in name or a path, got "
                                f"{describe(model)}")
    models = builtin_models()
    if model is None or model == "default":
        model = DEFAULT_MODEL
    if isinstance(model, str) and model in models:
        return models[model]
    path = Path(model)
    if path.exists() or path.suffix == ".onnx" or os.sep in str(model):
        return path
    names = ", ".join(models) or "none installed"
    raise UnknownModelError(f"unknown model {str(model)!r}; built-in models: {names}; "
                            f"or give the path of an .onnx file")
