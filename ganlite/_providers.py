"""Device choice: map auto|cpu|cuda to onnxruntime execution providers, never silently
(openvino and openvino-bf16 run on OpenVINO's runtime instead: ganlite/_openvino.py)."""
from __future__ import annotations

from pathlib import Path

from ._errors import DeviceError, describe

ONNXRUNTIME_DEVICES = ("auto", "cpu", "cuda")
OPENVINO_DEVICES = ("openvino", "openvino-bf16")
DEVICES = ONNXRUNTIME_DEVICES + OPENVINO_DEVICES
_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
# How to end with the CUDA build of onnxruntime alone (README: "On a GPU").
GPU_INSTALL = "pip uninstall -y onnxruntime onnxruntime-gpu, then pip install onnxruntime-gpu"


def installed_onnxruntimes() -> list[str]:
    """Distributions of onnxruntime installed beside the imported module (onnxruntime,
    onnxruntime-gpu, onnxruntime-openvino, ...). Each ships the same `onnxruntime` package:
    two of them overwrite each other's files, and which provider works is then luck.
    (A glob of dist-info folders: ~0.1 ms, against ~90 ms for importlib.metadata.)"""
    import onnxruntime

    site = Path(onnxruntime.__file__).resolve().parent.parent
    names = {p.name.split("-")[0].lower().replace("_", "-") for p in
             site.glob("onnxruntime*.dist-info")}
    return sorted(names)


def check_device(device: object) -> str:
    """The device, if it is one of DEVICES.

    Raises:
        DeviceError: an unknown device (the message lists the choices).
    """
    if not isinstance(device, str) or device not in DEVICES:
        raise DeviceError(f"unknown device {describe(device)}; choose one of "
                          f"{', '.join(DEVICES)}")
    return device


def providers_for(device: str, available: list[str]) -> list[str]:
    """Providers to ask onnxruntime for, given the device and the providers it offers.

    Raises:
        DeviceError: an unknown device or an OpenVINO one (not an onnxruntime provider);
            'cuda' without the CUDA provider; 'cuda' or 'auto' with two onnxruntime builds
            installed over each other.
    """
    if check_device(device) in OPENVINO_DEVICES:
        raise DeviceError(f"device {device!r} runs on OpenVINO's runtime, not on an "
                          f"onnxruntime provider")
    if device == "cpu":
        return [_CPU]
    builds = installed_onnxruntimes()
    if len(builds) > 1:
        raise DeviceError(f"device {device!r}: {' and '.join(builds)} are both installed and "
                          f"overwrite each other's files; keep one: {GPU_INSTALL} (or "
                          f"use device 'cpu')")
    if device == "cuda":
        if _CUDA not in available:
            raise DeviceError(f"device 'cuda' requested but onnxruntime offers no "
                              f"CUDAExecutionProvider (available: {', '.join(available)}); "
                              f"install the CUDA build: {GPU_INSTALL}")
        return [_CUDA, _CPU]
    return [_CUDA, _CPU] if _CUDA in available else [_CPU]


def check_session(device: str, requested: list[str], active: list[str]) -> None:
    """onnxruntime falls back to CPU when CUDA fails to load: refuse that for 'cuda'."""
    if device == "cuda" and (not active or active[0] != _CUDA):
        raise DeviceError(f"device 'cuda' requested but onnxruntime started the session on "
                          f"{', '.join(active) or 'nothing'}: the CUDA 12 / cuDNN 9 "
                          f"libraries onnxruntime-gpu needs are missing or no GPU is visible")
    if not active:
        raise DeviceError(f"onnxruntime enabled none of {', '.join(requested)}")
