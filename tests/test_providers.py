"""Device selection against stubbed provider lists: explicit, validated, never silent."""
import pytest

from ganlite import DeviceError
from ganlite._providers import check_session, providers_for

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


@pytest.mark.parametrize("device,available,expected", [
    ("auto", [CUDA, CPU], [CUDA, CPU]),
    ("auto", [CPU], [CPU]),
    ("cpu", [CUDA, CPU], [CPU]),
    ("cuda", [CUDA, CPU], [CUDA, CPU]),
])
def test_providers_for(device, available, expected):
    assert providers_for(device, available) == expected


def test_cuda_absent_names_the_available_providers():
    with pytest.raises(DeviceError, match="available: AzureExecutionProvider, CPU"):
        providers_for("cuda", ["AzureExecutionProvider", CPU])


def test_unknown_device_names_the_choices():
    with pytest.raises(DeviceError, match="choose one of auto, cpu, cuda"):
        providers_for("gpu", [CPU])


def test_silent_cpu_fallback_is_refused_for_cuda():
    with pytest.raises(DeviceError, match="started the session on CPUExecutionProvider"):
        check_session("cuda", [CUDA, CPU], [CPU])
    check_session("cuda", [CUDA, CPU], [CUDA, CPU])
    check_session("auto", [CUDA, CPU], [CPU])  # auto may fall back: that is its meaning


def test_two_onnxruntime_builds_are_refused_with_the_fix(monkeypatch):
    from ganlite import _providers

    monkeypatch.setattr(_providers, "installed_onnxruntimes",
                        lambda: ["onnxruntime", "onnxruntime-gpu"])
    for device in ("auto", "cuda"):
        with pytest.raises(DeviceError, match="onnxruntime and onnxruntime-gpu are both "
                                              "installed.*pip uninstall -y onnxruntime"):
            providers_for(device, [CUDA, CPU])
    assert providers_for("cpu", [CUDA, CPU]) == [CPU]   # any build runs on the CPU


def test_installed_builds_are_read_from_site_packages():
    from ganlite._providers import installed_onnxruntimes

    assert "onnxruntime" in installed_onnxruntimes() or \
        "onnxruntime-gpu" in installed_onnxruntimes()
