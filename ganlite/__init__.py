"""ganlite: generate handwritten digits with a small ONNX GAN, no TensorFlow needed.

    import ganlite
    gen = ganlite.load()                    # the default built-in model
    images = gen.generate(16, seed=1)       # uint8 [16, 28, 28], 0 = black, 255 = white
    ganlite.save_grid(images, "grid.png")
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
from ._model import Batch, Generator, LabelCycle, load, read_card
from ._registry import DEFAULT_MODEL
from ._registry import builtin_models as list_models
from ._writer import WriteResult, write_images

__all__ = [
    "load", "Generator", "Batch", "read_card", "list_models", "DEFAULT_MODEL",
    "LabelCycle", "save_png", "save_grid", "make_grid", "load_png_folder", "write_images",
    "WriteResult",
    "evaluate", "Evaluator", "EvaluationReport", "walk", "label_walk", "save_animation",
    "GanliteError", "UsageError", "UnknownModelError", "DeviceError", "ModelError",
    "IntegrityError", "OutputError", "ImageInputError",
]
__version__ = "0.1.0"
