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

pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "artifacts" / "mnist-cdcgan.onnx"
MODELS = {"tiny-dcgan": TINY_UNCONDITIONAL, "mnist-cdcgan": DEFAULT}
MAX_ABS_FLOAT = 1e-4


@pytest.fixture(scope="module", params=sorted(MODELS))
def pair(request):
    original = onnx.load(str(MODELS[request.param]))
    return original, opt.optimize(original)


def _feeds(model, batch, seed=0):
    inputs = {i.name: i for i in model.graph.input}
    z_dim = inputs["z"].type.tensor_type.shape.dim[1].dim_value
    feeds = {"z": np.random.default_rng(seed).standard_normal((batch, z_dim), dtype=np.float32)}
    if "label" in inputs:
        feeds["label"] = np.arange(batch, dtype=np.int64) % 10     # every label
    return feeds


def _run(model, feeds, extra_output=None):
    """Outputs of `model` (plus one intermediate value, as a truncated graph would)."""
    model_ = model
    if extra_output:
        model_ = onnx.ModelProto()
        model_.CopyFrom(model)
        model_.graph.output.append(helper.make_tensor_value_info(extra_output,
                                                                 TensorProto.FLOAT, None))
    session = ort.InferenceSession(model_.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _float_image(model, feeds):
    """The image in [-1, 1] before the uint8 conversion, [batch, 1, 28, 28]: the Tanh output
    of the exported graph, 2 * Sigmoid - 1 of the optimized one (interleaved here when the
    graph keeps it as 4 phases on a 14x14 grid)."""
    ops = {n.op_type: n for n in model.graph.node}
    if "Tanh" in ops:
        return _run(model, feeds, ops["Tanh"].output[0])[-1]
    s = _run(model, feeds, ops["Sigmoid"].output[0])[-1]
    if s.shape[1] == 4:         # DepthToSpace (DCR, blocksize 2) in numpy
        n, _, h, w = s.shape
        s = s.reshape(n, 2, 2, 1, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, 1, 2 * h, 2 * w)
    return 2.0 * s - 1.0


def _differences(original, optimized, batch, seed=0):
    feeds = _feeds(original, batch, seed)
    a, b = (_run(m, feeds)[0].astype(np.int16) for m in (original, optimized))
    assert a.shape == b.shape == (batch, 28, 28) and a.dtype == b.dtype
    fa, fb = (_float_image(m, feeds) for m in (original, optimized))
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


def test_parity_detects_a_wrong_rewrite(monkeypatch):
    """Kernel taps of the two row phases swapped (a plausible bug): parity fails."""
    original = onnx.load(str(DEFAULT))
    monkeypatch.setattr(opt, "_TAPS", {0: (2, 0), 1: (3, 1)})
    d = _differences(original, opt.optimize(original), 64)
    assert d["max_gray_levels"] > 1 and d["max_abs_float"] > MAX_ABS_FLOAT


def test_check_reports_and_raises():
    from export.convert import ParityError

    original = onnx.load(str(DEFAULT))
    optimized = opt.optimize(original)
    figures = opt.check(original, optimized, samples=200)
    assert figures["max_gray_levels"] <= 1
    with pytest.raises(ParityError):
        opt.check(original, optimized, samples=200, max_levels=-1)


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
    function, signature = convert._generator_function(model, 16, conditional, True)
    original = convert._convert(function, signature)
    optimized = opt.optimize(original)
    ops = [n.op_type for n in optimized.graph.node]
    assert "Tanh" not in ops and "Round" not in ops and ops.count("QuantizeLinear") == 1
    d = _differences(original, optimized, 256)
    assert d["max_gray_levels"] <= 1 and d["max_abs_float"] <= MAX_ABS_FLOAT, d
