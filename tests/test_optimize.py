"""export/optimize.py: the rewritten generator graphs compute the same images.

Parity on the committed models (uint8 output: at most 1 gray level; float image before
rounding: at most 1e-4), the structure the rewrites promise, and that the parity checks
here do catch a wrong rewrite.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import TINY_UNCONDITIONAL  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export import optimize as opt  # noqa: E402
from export.parity import float_image  # noqa: E402

pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KERAS = ROOT / "artifacts" / "mnist-cdcgan.keras"
MODELS = ("mnist-cdcgan", "tiny-dcgan")
MAX_ABS_FLOAT = 1e-4


@pytest.fixture(scope="module")
def default_converted():
    """The default generator's graph as tf2onnx converts it (the shipped .onnx is already
    optimized): converted afresh from the Keras model that ships beside it."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    import keras

    from export import convert

    model = keras.models.load_model(DEFAULT_KERAS)
    function, signature = convert._generator_function(model, 100, True)
    return convert._convert(function, signature)


@pytest.fixture(scope="module", params=MODELS)
def pair(request):
    original = (onnx.load(str(TINY_UNCONDITIONAL)) if request.param == "tiny-dcgan"
                else request.getfixturevalue("default_converted"))
    return original, opt.optimize(original)


def _feeds(model, batch, seed=0):
    inputs = {i.name: i for i in model.graph.input}
    z_dim = inputs["z"].type.tensor_type.shape.dim[1].dim_value
    feeds = {"z": np.random.default_rng(seed).standard_normal((batch, z_dim), dtype=np.float32)}
    if "label" in inputs:
        feeds["label"] = np.arange(batch, dtype=np.int64) % 10     # every label
    return feeds


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _differences(original, optimized, batch, seed=0):
    feeds = _feeds(original, batch, seed)
    a, b = (_run(m, feeds)[0].astype(np.int16) for m in (original, optimized))
    assert a.shape == b.shape == (batch, 28, 28) and a.dtype == b.dtype
    fa, fb = (float_image(m, feeds) for m in (original, optimized))
    return {"max_gray_levels": int(np.abs(a - b).max()),
            "pixels_differing": float((a != b).mean()),
            "max_abs_float": float(np.abs(fa - fb).max())}


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_parity(pair, batch):
    original, optimized = pair
    d = _differences(original, optimized, batch)
    assert d["max_gray_levels"] <= 1, d
    assert d["pixels_differing"] <= 1e-3, d     # rounding ties only: ~1e-5 measured
    assert d["max_abs_float"] <= MAX_ABS_FLOAT, d


def test_output_signature_unchanged(pair):
    original, optimized = pair
    sig = [[(i.name, i.type.tensor_type.elem_type) for i in io]
           for g in (original.graph, optimized.graph) for io in (g.input, g.output)]
    assert sig[0] == sig[2] and sig[1] == sig[3]


def test_structure(pair):
    """No ConvTranspose, no batch-norm Mul/Add on floats, no Tanh .. Cast chain: each
    ConvTranspose became 4 phase Convs, the image Conv 4 more; one QuantizeLinear."""
    original, optimized = pair
    count = lambda m, op: sum(n.op_type == op for n in m.graph.node)  # noqa: E731
    assert count(original, "ConvTranspose") == 2
    assert count(optimized, "ConvTranspose") == 0
    for op in ("Tanh", "Round", "Min", "Max", "Slice", "BatchNormalization"):
        assert count(optimized, op) == 0, op
    assert count(optimized, "Conv") == 4 + 4 + 4
    assert count(optimized, "QuantizeLinear") == 1
    assert count(optimized, "DepthToSpace") == 1        # on the uint8 image only
    floats = {n.output[0] for n in optimized.graph.node if n.op_type in ("Conv", "Gemm")}
    assert not [n for n in optimized.graph.node if n.op_type in ("Mul", "Add")
                and n.input[0] in floats and n.input[1] in
                {t.name for t in optimized.graph.initializer}]


def test_argument_untouched():
    original = onnx.load(str(TINY_UNCONDITIONAL))
    before = original.SerializeToString()
    opt.optimize(original)
    assert original.SerializeToString() == before


@pytest.mark.parametrize("options", [
    {"steps": opt.STEPS[:i]} for i in range(len(opt.STEPS))] + [
    {"convtranspose": "single"}, {"convtranspose": "keep"},
    {"interleave": "depth_to_space"}], ids=str)
def test_every_step_and_layout_is_exact(options):
    original = onnx.load(str(TINY_UNCONDITIONAL))
    d = _differences(original, opt.optimize(original, **options), 64)
    assert d["max_gray_levels"] <= 1 and d["max_abs_float"] <= MAX_ABS_FLOAT, d


def test_parity_detects_a_perturbed_weight(pair):
    """The largest tap of the last phase filter off by 10 %: the float check fails."""
    original, optimized = pair
    broken = onnx.ModelProto()
    broken.CopyFrom(optimized)
    conv = [n for n in broken.graph.node if n.op_type == "Conv"][-1]
    init = next(t for t in broken.graph.initializer if t.name == conv.input[1])
    w = numpy_helper.to_array(init).copy()
    w.flat[int(np.abs(w).argmax())] *= 1.1
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    assert _differences(original, broken, 64)["max_abs_float"] > MAX_ABS_FLOAT


def test_parity_detects_a_wrong_rewrite(monkeypatch, default_converted):
    """Kernel taps of the two row phases swapped (a plausible bug): parity fails."""
    original = default_converted
    monkeypatch.setattr(opt, "_TAPS", {0: (2, 0), 1: (3, 1)})
    d = _differences(original, opt.optimize(original), 64)
    assert d["max_gray_levels"] > 1 and d["max_abs_float"] > MAX_ABS_FLOAT


def test_check_reports_and_raises(monkeypatch, default_converted):
    from export.convert import ParityError

    original = default_converted
    optimized = opt.optimize(original)
    figures = opt.check(original, optimized, samples=200)
    assert figures["max_gray_levels"] <= 1 and figures["max_abs_float"] <= MAX_ABS_FLOAT
    monkeypatch.setattr(opt, "_TAPS", {0: (2, 0), 1: (3, 1)})
    with pytest.raises(ParityError, match="the original graph and onnxruntime disagree"):
        opt.check(original, opt.optimize(original), samples=200)


def _synthetic_generator(seed=0):
    """A graph exercising what the exported models do not: BatchNormalization nodes,
    ConvTranspose with a bias, a 3x3 image Conv without bias, 8 channels into the image."""
    rng = np.random.default_rng(seed)
    f = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    inits = {"w0": f(8, 4 * 7 * 7), "s0": np.array([-1, 4, 7, 7], np.int64),
             "wt1": f(4, 16, 4, 4), "bt1": f(16),
             "g1": f(16) + 1, "b1": f(16), "m1": f(16), "v1": np.abs(f(16)) + 0.5,
             "wt2": f(16, 8, 4, 4),
             "g2": f(8) + 1, "b2": f(8), "m2": f(8), "v2": np.abs(f(8)) + 0.5,
             "wc": f(1, 8, 3, 3),
             "one": np.array(1, np.float32), "half": np.array(127.5, np.float32),
             "hi": np.array(255, np.float32), "lo": np.array(0, np.float32),
             "axes": np.array([1], np.int64)}
    nodes = [
        helper.make_node("Gemm", ["z", "w0"], ["d"]),
        helper.make_node("Relu", ["d"], ["dr"]),
        helper.make_node("Reshape", ["dr", "s0"], ["x0"]),
        helper.make_node("ConvTranspose", ["x0", "wt1", "bt1"], ["t1"], strides=[2, 2],
                         pads=[1, 1, 1, 1], kernel_shape=[4, 4]),
        helper.make_node("BatchNormalization", ["t1", "g1", "b1", "m1", "v1"], ["n1"],
                         epsilon=1e-3),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("ConvTranspose", ["r1", "wt2"], ["t2"], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["t2", "g2", "b2", "m2", "v2"], ["n2"]),
        helper.make_node("Relu", ["n2"], ["r2"]),
        helper.make_node("Conv", ["r2", "wc"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Tanh", ["c"], ["t"]),
        helper.make_node("Squeeze", ["t", "axes"], ["sq"]),
        helper.make_node("Add", ["sq", "one"], ["p1"]),
        helper.make_node("Mul", ["p1", "half"], ["p2"]),
        helper.make_node("Round", ["p2"], ["p3"]),
        helper.make_node("Min", ["p3", "hi"], ["p4"]),
        helper.make_node("Max", ["p4", "lo"], ["p5"]),
        helper.make_node("Cast", ["p5"], ["image"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(
        nodes, "synthetic", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["n", 28, 28])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_synthetic_generator():
    original = _synthetic_generator()
    optimized = opt.optimize(original)
    ops = [n.op_type for n in optimized.graph.node]
    assert "BatchNormalization" not in ops and "ConvTranspose" not in ops and "Tanh" not in ops
    d = _differences(original, optimized, 256)
    assert d["max_gray_levels"] <= 1 and d["max_abs_float"] <= MAX_ABS_FLOAT, d


@pytest.mark.parametrize("conditional", [False, True])
def test_mlp_generator(conditional):
    """The MLP generator's graph (BatchNorm after LeakyReLU: a Mul before the next MatMul)
    is rewritten exactly too, from a freshly built, untrained Keras model."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from export import convert
    from train import models

    model = models.mlp_generator(16, 10 if conditional else 0)
    function, signature = convert._generator_function(model, 16, conditional)
    original = convert._convert(function, signature)
    optimized = opt.optimize(original)
    ops = [n.op_type for n in optimized.graph.node]
    assert "Tanh" not in ops and "Round" not in ops and ops.count("QuantizeLinear") == 1
    d = _differences(original, optimized, 256)
    assert d["max_gray_levels"] <= 1 and d["max_abs_float"] <= MAX_ABS_FLOAT, d


# --- python -m export optimize: the shipped models, rewritten in place -----------------

@pytest.fixture
def unoptimized_default(tmp_path, default_converted):
    """A sealed, unoptimized copy of the default generator (as exported before optimize),
    with its Keras model, NAME.json and NAME.png beside it."""
    import json
    import shutil

    from export.card import card_json, finish
    from ganlite import modelfile

    card = json.loads((ROOT / "artifacts" / "mnist-cdcgan.json").read_text())
    card.pop(modelfile.HASH_KEY)
    card["parity"] = {k: v for k, v in card["parity"].items()
                      if k not in ("graph", "converted_graph")}
    card.pop("optimize_command", None)
    path = tmp_path / "mnist-cdcgan.onnx"
    path.write_bytes(finish(default_converted, card, path))
    path.with_suffix(".json").write_bytes(card_json(card))
    path.with_suffix(".png").write_bytes(b"old grid")
    shutil.copy(DEFAULT_KERAS, path.with_suffix(".keras"))
    return path


def test_optimize_file_rewrites_in_place(unoptimized_default):
    import json

    import ganlite
    from export.reoptimize import optimize_file

    path = unoptimized_default
    before = ganlite.load(path, device="cpu").generate(500, seed=5)
    card = optimize_file(path)
    graph = onnx.load(str(path)).graph
    assert not {"ConvTranspose", "Tanh"} & {n.op_type for n in graph.node}
    assert card["parity"]["graph"].startswith("optimized")
    assert card["parity"]["max_gray_levels"] <= 1
    assert card["parity"]["max_abs_float"] <= MAX_ABS_FLOAT
    assert json.loads(path.with_suffix(".json").read_text()) == card
    assert path.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    after = ganlite.load(path, device="cpu")          # sealed: the runtime accepts it
    assert after.card == card
    assert np.abs(before.astype(int) - after.generate(500, seed=5)).max() <= 1


def test_optimize_file_refuses_an_optimized_model(unoptimized_default):
    from export.errors import ExportError
    from export.reoptimize import optimize_file

    optimize_file(unoptimized_default)
    data = unoptimized_default.read_bytes()
    with pytest.raises(ExportError, match="already optimized"):
        optimize_file(unoptimized_default)
    assert unoptimized_default.read_bytes() == data


def test_optimize_file_refuses_another_models_keras(unoptimized_default):
    """The Fashion generator's weights beside the MNIST graph: the shipped graph does not
    match them, so nothing is rewritten (a mutant skipping that check would optimize)."""
    from export.reoptimize import optimize_file
    from ganlite import ModelError

    data = unoptimized_default.read_bytes()
    with pytest.raises(ModelError, match="does not match"):
        optimize_file(unoptimized_default, ROOT / "artifacts" / "fashion-cdcgan.keras")
    assert unoptimized_default.read_bytes() == data


def test_optimize_file_needs_the_keras_model(unoptimized_default):
    from export.errors import ExportError
    from export.reoptimize import optimize_file

    unoptimized_default.with_suffix(".keras").unlink()
    with pytest.raises(ExportError, match="needs the Keras model"):
        optimize_file(unoptimized_default)


def test_shipped_generators_are_optimized():
    import ganlite
    from export.reoptimize import is_optimized

    for name in ("mnist-cdcgan", "fashion-cdcgan"):
        card = ganlite.read_card(ROOT / "artifacts" / f"{name}.onnx")
        assert is_optimized(card), name
        ops = {n.op_type for n in onnx.load(str(ROOT / "artifacts" / f"{name}.onnx")).graph.node}
        assert "ConvTranspose" not in ops, name
