"""The one parity check of a generator graph: its images against a reference float image.

Every generator the export stage writes passes it before anything is written: the plain
tf2onnx conversion and the optimized graph (export/optimize.py), against the Keras
model's own output, and check() in optimize.py compares two graphs the same way. Bounds
(the issue's): at most 1e-4 on the [-1, 1] image before rounding, at most 1 gray level on
the uint8 image.

The float image is read inside the graph, where it is last in [-1, 1]: the Tanh output of
a converted graph, 2 * Sigmoid - 1 of an optimized one (optimize.py turns Tanh .. Cast into
Sigmoid + QuantizeLinear), interleaved here when the graph keeps it as 4 phases on a
14x14 grid.
"""
from __future__ import annotations

import numpy as np

from ganlite.pixels import to_uint8

from .card import cpu_session
from .errors import ExportError, ParityError

__all__ = ["MAX_ABS_FLOAT", "MAX_GRAY_LEVELS", "float_image", "generator_parity",
           "uint8_image"]

MAX_ABS_FLOAT = 1e-4
MAX_GRAY_LEVELS = 1


def _with_output(proto, name: str):
    """A copy of `proto` that also returns the float tensor `name` (as a truncated graph
    would), for reading an intermediate value."""
    import onnx
    from onnx import TensorProto, helper

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return copy


def float_image(proto, feeds: dict) -> np.ndarray:
    """The image in [-1, 1] before the uint8 conversion, float32 [batch, 784].

    Raises:
        ExportError: the graph has no single Tanh (converted) or Sigmoid (optimized) node.
    """
    for op in ("Tanh", "Sigmoid"):
        nodes = [n for n in proto.graph.node if n.op_type == op]
        if len(nodes) == 1:
            break
    else:
        raise ExportError("the generator graph has no single Tanh or Sigmoid node holding "
                          "the image before rounding: cannot check parity")
    session = cpu_session(_with_output(proto, nodes[0].output[0]))
    x = np.asarray(session.run(None, feeds)[-1], dtype=np.float32)
    if x.ndim == 4 and x.shape[1] == 4:     # 4 phases [n, 4, h, w]: DepthToSpace (DCR, 2)
        n, _, h, w = x.shape
        x = x.reshape(n, 2, 2, 1, h, w).transpose(0, 3, 4, 1, 5, 2)
    x = x.reshape(len(x), -1)
    return x if op == "Tanh" else 2.0 * x - 1.0


def uint8_image(proto, feeds: dict) -> np.ndarray:
    """The graph's output image, uint8 [batch, 28, 28]."""
    session = cpu_session(proto)
    return session.run(["image"], feeds)[0]


def generator_parity(proto, feeds: dict, reference_float: np.ndarray,
                     against: str = "Keras") -> dict:
    """Compare `proto`'s images on `feeds` with `reference_float` ([batch, ...] in [-1, 1],
    the reference's image before rounding). Returns the figures the card records.

    Raises:
        ParityError: beyond MAX_ABS_FLOAT or MAX_GRAY_LEVELS (or NaN anywhere).
    """
    reference_float = np.asarray(reference_float, np.float32).reshape(len(reference_float),
                                                                      -1)
    graph_float = float_image(proto, feeds)
    graph_uint8 = uint8_image(proto, feeds).reshape(len(reference_float), -1)
    reference_uint8 = to_uint8(reference_float)
    max_abs = float(np.abs(reference_float - graph_float).max())
    levels = int(np.abs(reference_uint8.astype(int) - graph_uint8.astype(int)).max())
    parity = {"samples": len(reference_float), "max_abs_float": max_abs,
              "max_gray_levels": levels,
              "pixels_differing": float((reference_uint8 != graph_uint8).mean()),
              "tolerance": f"max_abs_float <= {MAX_ABS_FLOAT}, "
                           f"max_gray_levels <= {MAX_GRAY_LEVELS}"}
    if not (max_abs <= MAX_ABS_FLOAT and levels <= MAX_GRAY_LEVELS):   # NaN fails too
        raise ParityError(f"parity check failed, nothing written: {against} and onnxruntime "
                          f"disagree: max abs {max_abs:.3g} (limit {MAX_ABS_FLOAT}), "
                          f"{levels} gray levels (limit {MAX_GRAY_LEVELS})")
    return parity
