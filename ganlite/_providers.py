"""Device choice: map auto|cpu|cuda to onnxruntime execution providers, never silently."""
from __future__ import annotations

from ._errors import DeviceError, describe

DEVICES = ("auto", "cpu", "cuda")
_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def providers_for(device: str, available: list[str]) -> list[str]:
    """Providers to ask onnxruntime for, given the device and the providers it offers."""
    if not isinstance(device, str) or device not in DEVICES:
        raise DeviceError(f"unknown device {describe(device)}; choose one of "
                          f"{', '.join(DEVICES)}")
    if device == "cpu":
        return [_CPU]
    if device == "cuda":
        if _CUDA not in available:
            raise DeviceError(f"device 'cuda' requested but onnxruntime offers no "
                              f"CUDAExecutionProvider (available: {', '.join(available)}); "
                              f"install ganlite[cuda] or use --device cpu")
        return [_CUDA, _CPU]
    return [_CUDA, _CPU] if _CUDA in available else [_CPU]


def check_session(device: str, requested: list[str], active: list[str]) -> None:
    """onnxruntime falls back to CPU when CUDA fails to load: refuse that for 'cuda'."""
    if device == "cuda" and (not active or active[0] != _CUDA):
        raise DeviceError(f"device 'cuda' requested but onnxruntime started the session on "
                          f"{', '.join(active) or 'nothing'} (CUDA libraries missing?)")
    if not active:
        raise DeviceError(f"onnxruntime enabled none of {', '.join(requested)}")
