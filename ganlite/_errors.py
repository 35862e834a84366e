"""The exceptions of ganlite: one base class, usage errors apart from runtime errors.

The CLI maps UsageError to exit status 2 and every other GanliteError to 1; the message
is the one line it prints.
"""


class GanliteError(Exception):
    """Base class of every error ganlite raises on purpose. Its message is one line: line
    breaks in it (a file name may hold one) are shown as \\n."""

    def __init__(self, message: str):
        super().__init__(str(message).replace("\n", "\\n").replace("\r", "\\r"))


class UsageError(GanliteError, ValueError):
    """An argument is invalid: the message names the bad value and the valid choices."""


class UnknownModelError(UsageError):
    """No built-in model has that name and no file has that path."""


class DeviceError(UsageError):
    """The requested device is unknown or its onnxruntime provider is not available."""


class ModelError(GanliteError):
    """A model file cannot be used: missing, corrupt, or not a ganlite generator."""


class IntegrityError(ModelError):
    """The model's graph or I/O signature does not match its card."""


class OutputError(GanliteError):
    """An output path cannot be written (exists, is a file, not writable, other run)."""


class ImageInputError(UsageError):
    """An input image folder holds something that is not a 28x28 grayscale image."""


def describe(value: object, limit: int = 60) -> str:
    """A short one-line description of a bad value for an error message."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"an array of {dtype} {list(shape)}"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
