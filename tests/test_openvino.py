"""Devices 'openvino' and 'openvino-bf16' (OpenVINO's runtime, extra ganlite[openvino]):
the same images as onnxruntime, the same checks before and after loading, every error
path one line, and nothing falling back silently (a CPU without bf16 gets an error, not
float32). Tests that run OpenVINO skip where it is not importable; the bf16 ones run only
on a CPU with bf16 arithmetic (AMX or AVX512_BF16)."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from conftest import DATA, TINY_UNCONDITIONAL, has_module

import ganlite
from ganlite import _openvino, modelfile
from ganlite._model import run_checked
from ganlite._providers import providers_for

needs_openvino = pytest.mark.skipif(not has_module("openvino"),
                                    reason="OpenVINO not installed (ganlite[openvino])")


def _cpu_has_bf16() -> bool:
    if not has_module("openvino"):
        return False
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


BF16 = _cpu_has_bf16()
needs_bf16 = pytest.mark.skipif(not BF16, reason="this CPU has no bf16 (AMX/AVX512_BF16)")
without_bf16 = pytest.mark.skipif(not has_module("openvino") or BF16,
                                  reason="needs OpenVINO on a CPU without bf16")


@pytest.fixture
def no_openvino(monkeypatch):
    """OpenVINO not importable, as without the extra (whether it is installed or not)."""
    _openvino._core.cache_clear()
    monkeypatch.setitem(sys.modules, "openvino", None)
    yield
    _openvino._core.cache_clear()


def _one_line_exit(result, status: int) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == status and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def _beside_onnxruntime(model: str | None, device: str) -> tuple[np.ndarray, np.ndarray]:
    """300 images of every class in 3 batches on `device`, and onnxruntime's on the CPU."""
    labels = ganlite.LabelCycle(range(10))
    return tuple(ganlite.load(model, device=d).generate(300, seed=5, labels=labels,
                                                        batch_size=100)
                 for d in (device, "cpu"))


@needs_openvino
@pytest.mark.parametrize("model", list(ganlite.list_models()))
def test_same_images_as_onnxruntime(model):
    """Every built-in generator (int8 variants included), 300 images, every class, 3
    batches: within 1 gray level on >= 99.9 % of pixels."""
    ours, reference = _beside_onnxruntime(model, "openvino")
    diff = np.abs(ours.astype(np.int16) - reference)
    assert np.mean(diff <= 1) >= 0.999, (diff.max(), np.mean(diff > 0))
    assert ours.std() > 20     # real images, not a blank that matches a blank


@needs_openvino
def test_provider_names_openvino_and_the_cpu():
    generator = ganlite.load(device="openvino")
    assert generator.providers == ["openvino (CPU)"]
    assert "openvino (CPU)" in repr(generator)
    assert ganlite.Evaluator(device="openvino").session.get_providers() == ["openvino (CPU)"]


@needs_openvino
def test_cli_generate_and_evaluate_on_openvino(cli, tmp_path):
    result = cli("generate", "--n", 20, "--out", tmp_path / "ov", "--format", "npy",
                 "--device", "openvino")
    assert result.exit_code == 0 and "openvino (CPU)" in result.output, result.output
    ours = np.load(tmp_path / "ov" / "images.npy")
    assert cli("generate", "--n", 20, "--out", tmp_path / "ort", "--format", "npy",
               "--device", "cpu", "-q").exit_code == 0
    diff = np.abs(ours.astype(np.int16) - np.load(tmp_path / "ort" / "images.npy"))
    assert ours.shape == (20, 28, 28) and diff.max() <= 1
    result = cli("evaluate", "--n", 100, "--device", "openvino", "--json")
    assert result.exit_code == 0 and '"fcd"' in result.output, result.output


@needs_openvino
def test_generator_shared_between_threads():
    generator = ganlite.load(device="openvino")
    expected = [generator.generate(64, seed=s) for s in range(4)]
    got: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda s=s: got.__setitem__(s, generator.generate(
        64, seed=s))) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(got[s], expected[s]) for s in range(4))


def test_missing_extra_names_the_install(no_openvino, cli, tmp_path):
    with pytest.raises(ganlite.DeviceError, match=r"device 'openvino' needs OpenVINO's "
                       r"runtime.*pip install 'ganlite\[openvino\]'"):
        ganlite.load(device="openvino")
    line = _one_line_exit(cli("generate", "--n", 3, "--out", tmp_path / "d", "--device",
                              "openvino"), 2)
    assert "pip install 'ganlite[openvino]'" in line and not (tmp_path / "d").exists()


def test_model_checks_come_before_the_runtime(no_openvino, tmp_path):
    """A modified file is refused as such, before OpenVINO is even looked for."""
    data = bytearray(TINY_UNCONDITIONAL.read_bytes())
    data[-5] ^= 1
    path = tmp_path / "tampered.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises(ganlite.IntegrityError, match="modified after export"):
        ganlite.Generator(path, device="openvino")


@needs_openvino
def test_graph_against_card_as_openvino_reads_it(tmp_path):
    """The card resealed with latent_dim 9: consistent, sealed, and contradicted by the
    graph OpenVINO compiled (z is [?, 8])."""
    data = TINY_UNCONDITIONAL.read_bytes()
    card = {**modelfile.stored_card(data), "latent_dim": 9,
            "inputs": {"z": {"type": "tensor(float)", "shape": [None, 9]}}}
    path = tmp_path / "lying-card.onnx"
    path.write_bytes(modelfile.seal(data, card))
    with pytest.raises(ganlite.IntegrityError, match=r"does not match its card.*\[null, 8\]"):
        ganlite.Generator(path, device="openvino")


@needs_openvino
def test_graph_openvino_cannot_read_is_a_model_error(tmp_path):
    data = TINY_UNCONDITIONAL.read_bytes().replace(b"Relu", b"Rxlu")
    path = tmp_path / "unknown-op.onnx"
    path.write_bytes(modelfile.seal(data, modelfile.stored_card(data)))
    # (OpenVINO's wording changes between releases; the line ganlite picks names the op.)
    with pytest.raises(ganlite.ModelError, match=r"OpenVINO cannot load it \(.*Rxlu") \
            as caught:
        ganlite.Generator(path, device="openvino")
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


@needs_openvino
def test_every_batch_is_checked_on_openvino():
    """A sealed graph that returns one image whatever the batch: refused at the first
    batch, as on onnxruntime."""
    generator = ganlite.Generator(DATA / "lying" / "one-image.onnx", device="openvino")
    with pytest.raises(ganlite.ModelError, match=r"returned uint8 \[1, 28, 28\] for a batch "
                                                 r"of 20; expected uint8 \[20, 28, 28\]"):
        generator.generate(20)


@needs_openvino
def test_openvino_failing_while_running_is_a_model_error():
    generator = ganlite.Generator(TINY_UNCONDITIONAL, device="openvino")
    with pytest.raises(ganlite.ModelError, match=r"OpenVINO failed running the model \(\w+"
                                                 r".*incompatible with provided dimensions"):
        run_checked(generator.path, generator.session, ["image"],
                    {"z": np.zeros((2, 5), np.float32)})


@without_bf16
def test_bf16_on_a_cpu_without_it_is_refused(cli, tmp_path):
    with pytest.raises(ganlite.DeviceError, match=r"no bf16 arithmetic \(AMX or AVX512_BF16\)"
                                                  r"; OpenVINO lists FP32"):
        ganlite.load(device="openvino-bf16")
    line = _one_line_exit(cli("generate", "--n", 3, "--out", tmp_path / "d", "--device",
                              "openvino-bf16"), 2)
    assert "use device 'openvino'" in line and not (tmp_path / "d").exists()


@without_bf16
def test_openvino_ignoring_the_bf16_hint_is_caught():
    """What OpenVINO does, unasked, on a CPU without bf16: it compiles the bf16 hint in
    float32 without a word. The check after compiling refuses that."""
    core, config = _openvino.config_for("openvino", "generator", None)
    config = {**config, "INFERENCE_PRECISION_HINT": "bf16"}
    session = _openvino.Session(core, TINY_UNCONDITIONAL.read_bytes(), config)
    assert session.precision == "f32"
    with pytest.raises(ganlite.DeviceError, match="compiled the model for CPU in f32, not "
                                                  "for the CPU in bf16"):
        _openvino.check_compiled("openvino-bf16", config, session.devices, session.precision)


def test_compiled_elsewhere_is_refused():
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    _openvino.check_compiled("openvino", config, ["CPU"], "f32")
    for devices in (["GPU.0"], ["CPU", "GPU.0"], []):
        with pytest.raises(ganlite.DeviceError, match="not for the CPU in f32"):
            _openvino.check_compiled("openvino", config, devices, "f32")


@needs_openvino
def test_float32_is_asked_for_explicitly():
    """OpenVINO's own default on a CPU with AMX is bf16: 'openvino' must say f32."""
    assert _openvino.config_for("openvino", "generator", None)[1][
        "INFERENCE_PRECISION_HINT"] == "f32"
    session = ganlite.load(device="openvino", threads=1).session
    assert session.precision == "f32"
    assert session._compiled.get_property("INFERENCE_NUM_THREADS") == 1   # threads= too


def test_openvino_devices_are_no_onnxruntime_providers():
    with pytest.raises(ganlite.DeviceError, match="runs on OpenVINO's runtime"):
        providers_for("openvino", ["CPUExecutionProvider"])


@needs_openvino
@pytest.mark.parametrize("model", ["mnist-cdcgan", "fashion-cdcgan"])
def test_narrow_convolutions_widened_for_bf16_compute_the_same(model):
    """OpenVINO's bf16 kernels cannot run the optimized generators' 4-channel image
    convolutions (found on an AMX Xeon, 2025.4.1-2026.4.1); widened to 8 channels with zero
    filters and sliced back, the graph computes the same numbers (here in float32, where
    every CPU can check it)."""
    from ganlite._registry import resolve

    core = _openvino._core()
    data = resolve(model).read_bytes()
    widened = core.read_model(data, b"")
    assert _openvino.widen_narrow_convolutions(widened) == 4     # the image phases
    assert _openvino.widen_narrow_convolutions(widened) == 0     # all wide enough now
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    rng = np.random.default_rng(3)
    feeds = {"z": rng.standard_normal((20, 100), dtype=np.float32),
             "label": np.arange(20, dtype=np.int64) % 10}
    images = [np.asarray(next(iter(core.compile_model(m, "CPU", config)(feeds).values())))
              for m in (widened, core.read_model(data, b""))]
    assert np.array_equal(images[0], images[1]) and images[0].std() > 20


@needs_bf16
@pytest.mark.parametrize("model", ["mnist-cdcgan", "fashion-cdcgan"])
def test_bf16_where_the_cpu_has_it(model):
    # The judge stays float32 whatever the generator runs in.
    assert ganlite.Evaluator(device="openvino-bf16").session.precision == "f32"
    assert ganlite.load(model, device="openvino-bf16").providers == ["openvino (CPU, bf16)"]
    ours, reference = _beside_onnxruntime(model, "openvino-bf16")
    assert np.abs(ours.astype(np.int16) - reference).mean() < 1.0
