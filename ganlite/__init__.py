"""ganlite: generate handwritten digits with a small ONNX GAN, no TensorFlow needed.

    import ganlite
    gen = ganlite.load()                    # the default built-in model
    images = gen.generate(16, seed=1)       # uint8 [16, 28, 28], 0 = black, 255 = white
    ganlite.save_grid(images, "grid.png")

The whole public API is listed in __all__; everything else lives in private modules.
"""
from ._errors import (
    DeviceError,
    GanliteError,
    ImageInputError,
    IntegrityError,
    ModelError,
    OutputError,
    UnknownModelError,
    UsageError,
)
from ._evaluate import EvaluationReport, Evaluator, evaluate
from ._images import load_png_folder, make_grid, save_grid, save_png
from ._interpolate import label_walk, save_animation, walk
from ._model import Batch, Generator, LabelCycle, list_models, load, read_card
from ._registry import DEFAULT_MODEL
from ._runs import iter_run, read_run
from ._writer import WriteResult, write_images

__all__ = [
    # models
    "load", "Generator", "Batch", "LabelCycle", "read_card", "list_models", "DEFAULT_MODEL",
    # images out
    "write_images", "WriteResult", "save_png", "save_grid", "make_grid",
    "walk", "label_walk", "save_animation",
    # runs read back (single or sharded)
    "read_run", "iter_run",
    # quality
    "evaluate", "Evaluator", "EvaluationReport", "load_png_folder",
    # errors
    "GanliteError", "UsageError", "UnknownModelError", "DeviceError", "ImageInputError",
    "ModelError", "IntegrityError", "OutputError",
]
__version__ = "0.1.0"
