"""Build the lying-graph fixtures in tests/data/lying: models whose card is consistent and
correctly sealed, but whose graph lies about what it returns.

    PYTHONPATH=. .venv-train/bin/python tests/data/make_lying_models.py

Each generator keeps tiny-dcgan.onnx's header (ir_version, opsets, producer, other
metadata) and its card, with a new name and the inputs/outputs its graph declares; the
graph itself is weight-free (a few KB): z [b, 8] tiled into [b, 28, 28] stripes. The
classifiers do the same with mnist-classifier.onnx's card. Each model is run once here to
prove it loads in onnxruntime and really returns what its name says.

    honest.onnx             uint8 [b, 28, 28]: the control, loads and generates
    one-image.onnx          uint8 [1, 28, 28] for any batch, declared [None, 28, 28]
    float-images.onnx       float32 [b, 28, 28], declared (and carded) as float
    wide-images.onnx        uint8 [b, 56, 14], declared [None, 28, 28]
    wide-declared.onnx      uint8 [b, 56, 14], declared (and carded) as [None, 56, 14]
    classifier-honest.onnx  probs [b, 10], features [b, 128]: the control
    classifier-one-row.onnx probs [1, 10], features [1, 128] for any batch
    classifier-nan.onnx     probs NaN [b, 10]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ganlite import _card
from ganlite._model import _signature

DATA = ROOT / "tests" / "data"
OUT = DATA / "lying"


def _const(name: str, values, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype), name)


def _generator_graph(lie: str) -> onnx.GraphProto:
    """z [b, 8] -> stripes [b, 28, 28] in [-1, 1] -> uint8, then the lie."""
    nodes = [
        helper.make_node("Tile", ["z", "reps"], ["tiled"]),                 # [b, 784]
        helper.make_node("Tanh", ["tiled"], ["unit"]),
        helper.make_node("Reshape", ["unit", "square"], ["float_image"]),   # [b, 28, 28]
        helper.make_node("Add", ["float_image", "one"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "half_range"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["uint8_image"], to=TensorProto.UINT8),
    ]
    inits = [_const("reps", [1, 98], np.int64), _const("square", [-1, 28, 28], np.int64),
             _const("one", 1.0, np.float32), _const("half_range", 127.5, np.float32)]
    dtype, shape, last = TensorProto.UINT8, [None, 28, 28], "uint8_image"
    if lie == "one-image":
        nodes.append(helper.make_node("Slice", ["uint8_image", "zero", "one_i", "zero"],
                                      ["image"]))
        inits += [_const("zero", [0], np.int64), _const("one_i", [1], np.int64)]
    elif lie == "float-images":
        nodes.append(helper.make_node("Identity", ["float_image"], ["image"]))
        dtype = TensorProto.FLOAT
    elif lie in ("wide-images", "wide-declared"):
        # The target shape depends on z's values (+ 0), so that shape inference cannot
        # know it and contradict the declared [None, 28, 28].
        nodes += [helper.make_node("ReduceMax", ["z"], ["z_max"], keepdims=0),
                  helper.make_node("Mul", ["z_max", "zero_f"], ["z_zero"]),
                  helper.make_node("Cast", ["z_zero"], ["zero_i"], to=TensorProto.INT64),
                  helper.make_node("Add", ["wide_base", "zero_i"], ["wide"]),
                  helper.make_node("Reshape", ["uint8_image", "wide"], ["image"])]
        inits += [_const("wide_base", [-1, 56, 14], np.int64),
                  _const("zero_f", 0.0, np.float32)]
        if lie == "wide-declared":
            shape = [None, 56, 14]
    else:
        nodes.append(helper.make_node("Identity", [last], ["image"]))
    return helper.make_graph(
        nodes, lie, [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("image", dtype, shape)], inits)


def _classifier_graph(lie: str) -> onnx.GraphProto:
    """image uint8 [b, 28, 28] -> mean brightness, tiled into probs and features."""
    nodes = [
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["pixels"], ["mean3"], axes=[1, 2], keepdims=1),
        helper.make_node("Reshape", ["mean3", "column"], ["mean"]),         # [b, 1]
        helper.make_node("Div", ["mean", "scale"], ["unit"]),
        helper.make_node("Tile", ["unit", "ten"], ["raw_probs"]),           # [b, 10]
        helper.make_node("Tile", ["mean", "width"], ["raw_features"]),      # [b, 128]
    ]
    inits = [_const("column", [-1, 1], np.int64), _const("scale", 2550.0, np.float32),
             _const("ten", [1, 10], np.int64), _const("width", [1, 128], np.int64)]
    if lie == "classifier-one-row":
        nodes += [helper.make_node("Slice", ["raw_probs", "zero", "one_i", "zero"],
                                   ["probs"]),
                  helper.make_node("Slice", ["raw_features", "zero", "one_i", "zero"],
                                   ["features"])]
        inits += [_const("zero", [0], np.int64), _const("one_i", [1], np.int64)]
    elif lie == "classifier-nan":
        nodes += [helper.make_node("Sub", ["raw_probs", "raw_probs"], ["nothing"]),
                  helper.make_node("Div", ["nothing", "nothing"], ["probs"]),   # 0 / 0
                  helper.make_node("Identity", ["raw_features"], ["features"])]
    else:
        nodes += [helper.make_node("Identity", ["raw_probs"], ["probs"]),
                  helper.make_node("Identity", ["raw_features"], ["features"])]
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [None, 28, 28])
    return helper.make_graph(
        nodes, lie, [image],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 128]),
         helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 10])], inits)


def _build(template: Path, graph: onnx.GraphProto, name: str, feeds: dict) -> list:
    """The template model with this graph and a consistent, sealed card; its outputs on
    feeds."""
    model = onnx.load(str(template))
    model.graph.CopyFrom(graph)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    card, _, _ = _card.unverified_card(template, data)
    card.update(name=name, inputs=_signature(session.get_inputs()),
                outputs=_signature(session.get_outputs()),
                summary=f"test fixture: {name} (a lying graph, see make_lying_models.py)")
    for key in ("train_command", "export_command", "parity", "versions", "train_seconds"):
        card.pop(key, None)
    sealed = _card.seal(data, card)
    (OUT / f"{name}.onnx").write_bytes(sealed)
    return session.run(None, feeds)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    z = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    expected = {"honest": (np.uint8, (5, 28, 28)), "one-image": (np.uint8, (1, 28, 28)),
                "float-images": (np.float32, (5, 28, 28)),
                "wide-images": (np.uint8, (5, 56, 14)),
                "wide-declared": (np.uint8, (5, 56, 14))}
    for lie, (dtype, shape) in expected.items():
        (image,) = _build(DATA / "tiny-dcgan.onnx", _generator_graph(lie), lie, {"z": z})
        assert image.dtype == dtype and image.shape == shape, (lie, image.dtype, image.shape)
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    for lie, rows in (("classifier-honest", 5), ("classifier-one-row", 1),
                      ("classifier-nan", 5)):
        features, probs = _build(ROOT / "artifacts" / "mnist-classifier.onnx",
                                 _classifier_graph(lie), lie, {"image": images})
        assert probs.shape == (rows, 10) and features.shape == (rows, 128), lie
        assert np.isnan(probs).all() == (lie == "classifier-nan"), lie
    for path in sorted(OUT.glob("*.onnx")):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
