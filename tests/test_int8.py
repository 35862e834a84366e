"""python -m export int8: the int8 variant is made from the optimized graph, judged against
the float model, and written only when it passes the quality gate; the shipped one did."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from conftest import TINY_UNCONDITIONAL  # noqa: E402

import ganlite  # noqa: E402

pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture
def default_copy(tmp_path):
    for suffix in (".onnx", ".json"):
        shutil.copy(ARTIFACTS / f"mnist-cdcgan{suffix}", tmp_path / f"mnist-cdcgan{suffix}")
    return tmp_path / "mnist-cdcgan.onnx"


def test_makes_a_sealed_int8_model_that_passes(default_copy):
    from export.int8 import make_int8

    gate = make_int8(default_copy, seeds=(0,), n=1000)
    out = default_copy.with_name("mnist-cdcgan-int8.onnx")
    generator = ganlite.load(out, device="cpu")           # sealed: the runtime accepts it
    card = generator.card
    assert gate["passed"] and card["quality_gate"] == gate
    assert card["variant"] == "int8" and card["variant_of"] == "mnist-cdcgan"
    assert json.loads(out.with_suffix(".json").read_text()) == card
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops and "ConvTranspose" not in ops
    # The image layer stays float: its Convs read float weights, not DequantizeLinear's.
    from export.int8 import image_layer

    graph = onnx.load(str(out)).graph
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    kept = set(image_layer(onnx.load(str(out))))
    convs = [n for n in graph.node if n.name in kept and n.op_type == "Conv"]
    assert len(convs) == 4 and all(n.input[1] in floats for n in convs)
    others = [n for n in graph.node if n.op_type == "Conv" and n not in convs]
    assert others and not any(n.input[1] in floats for n in others)
    float_images = ganlite.load(default_copy, device="cpu").generate(200, seed=3)
    diff = np.abs(generator.generate(200, seed=3).astype(int) - float_images)
    assert 0 < diff.mean() < 3        # int8: close to float, but not the float graph


def test_a_model_that_loses_quality_is_not_written(default_copy, monkeypatch):
    """Weights of the quantized graph's first Conv zeroed: a broken int8 model fails the
    gate (a gate that only checked the graph ran would pass it) and nothing is written."""
    from export import int8

    real = int8.quantize

    def broken(proto, card):
        q = real(proto, card)
        for init in q.graph.initializer:
            if init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 4:
                arr = onnx.numpy_helper.to_array(init).copy()
                arr[:] = 0
                init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
                break
        return q

    monkeypatch.setattr(int8, "quantize", broken)
    with pytest.raises(int8.QualityGateError, match="fails the quality gate"):
        int8.make_int8(default_copy, seeds=(0,), n=1000)
    assert not default_copy.with_name("mnist-cdcgan-int8.onnx").exists()


def test_refuses_an_unoptimized_model(tmp_path):
    from export.errors import ExportError
    from export.int8 import make_int8

    shutil.copy(TINY_UNCONDITIONAL, tmp_path / "tiny.onnx")
    with pytest.raises(ExportError, match="not optimized"):
        make_int8(tmp_path / "tiny.onnx", seeds=(0,), n=100)


def test_refuses_an_int8_model():
    from export.errors import ExportError
    from export.int8 import make_int8

    with pytest.raises(ExportError, match="not a float generator"):
        make_int8(ARTIFACTS / "mnist-cdcgan-int8.onnx", seeds=(0,), n=100)


@pytest.mark.parametrize("name", ["mnist-cdcgan-int8", "fashion-cdcgan-int8"])
def test_shipped_int8_models_passed_the_gate(name):
    path = ARTIFACTS / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{name} is not shipped (it did not pass the gate)")
    card = ganlite.read_card(path)
    gate = card["quality_gate"]
    assert gate["passed"] and all(gate["checks"].values())
    assert gate["samples"] == 10_000 and len(gate["seeds"]) == 3
    assert gate["int8"]["fcd"] <= 1.05 * gate["float"]["fcd"]
    assert card["variant_of"] == name.removesuffix("-int8")
