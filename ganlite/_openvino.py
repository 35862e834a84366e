"""Devices 'openvino' and 'openvino-bf16': OpenVINO's own runtime (the `openvino` package,
extra ganlite[openvino]) running the same .onnx bytes on the CPU, behind the few methods of
an onnxruntime session that ganlite uses (run, get_inputs, get_outputs, get_providers).

Not onnxruntime's OpenVINO execution provider: `onnxruntime-openvino` ships its own
`onnxruntime` package, which would overwrite the base install's (two builds fighting, as
with onnxruntime-gpu), and the plugin `onnxruntime-ep-openvino` offers devices of Intel's
vendor id only (none on an AMD CPU). OpenVINO's runtime installs beside onnxruntime, runs on
any x86-64 CPU, and reports what it compiled (devices, precision), so that nothing falls
back silently.
"""
from __future__ import annotations

import functools
import queue
from typing import Any, NamedTuple

import numpy as np

from ._errors import DeviceError

INSTALL = "pip install 'ganlite[openvino]'"
# The inference precision of each device. Classifiers (the judges of evaluate()) always
# run in float32: their features must stay comparable with the reference statistics.
PRECISION = {"openvino": "f32", "openvino-bf16": "bf16"}
# OpenVINO element types as onnxruntime names them in NodeArg.type (what cards record).
_ONNX_TYPES = {"f32": "float", "f16": "float16", "bf16": "bfloat16", "f64": "double",
               "i64": "int64", "i32": "int32", "i16": "int16", "i8": "int8",
               "u64": "uint64", "u32": "uint32", "u16": "uint16", "u8": "uint8",
               "boolean": "bool", "string": "string"}


class _Arg(NamedTuple):
    """An input or output as onnxruntime's NodeArg shows it (dynamic dimensions None)."""
    name: str
    type: str
    shape: list


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    """OpenVINO's Core, one per process (an ImportError is not cached: installing the
    extra later works)."""
    import openvino

    return openvino.Core()


def config_for(device: str, kind: str, threads: int | None) -> tuple[Any, dict]:
    """(OpenVINO Core, compile config) of an OpenVINO device for a model of `kind`.

    Raises:
        DeviceError: OpenVINO is not installed, offers no CPU device, or 'openvino-bf16'
            was asked for on a CPU without bf16 arithmetic (AMX or AVX512_BF16).
    """
    try:
        core = _core()
    except ImportError as e:
        raise DeviceError(f"device {device!r} needs OpenVINO's runtime, which is not "
                          f"importable ({e}): {INSTALL}") from None
    if "CPU" not in core.available_devices:
        raise DeviceError(f"device {device!r}: OpenVINO offers no CPU device (available: "
                          f"{', '.join(core.available_devices) or 'none'})")
    if PRECISION[device] == "bf16":
        capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        if "BF16" not in capabilities:
            raise DeviceError(f"device {device!r}: this CPU "
                              f"({core.get_property('CPU', 'FULL_DEVICE_NAME')}) has no bf16 "
                              f"arithmetic (AMX or AVX512_BF16); OpenVINO lists "
                              f"{', '.join(capabilities)}: use device 'openvino' (float32)")
    # The precision is always explicit: on a CPU with AMX OpenVINO's default is bf16.
    config: dict[str, Any] = {
        "PERFORMANCE_HINT": "LATENCY",   # one request on all cores, as a session.run call
        "INFERENCE_PRECISION_HINT": PRECISION[device] if kind == "generator" else "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return core, config


def check_compiled(device: str, config: dict, devices: list[str], precision: str) -> None:
    """What OpenVINO compiled against what was asked: it runs a bf16 hint in float32 on a
    CPU without bf16, without a word; refuse that and any device besides the CPU."""
    asked = config["INFERENCE_PRECISION_HINT"]
    if list(devices) != ["CPU"] or precision != asked:
        raise DeviceError(f"device {device!r}: OpenVINO compiled the model for "
                          f"{', '.join(devices) or 'nothing'} in {precision}, not for the CPU "
                          f"in {asked}")


def error_line(e: Exception) -> str:
    """The line of an OpenVINO exception that says what went wrong. Its first lines are
    source locations ("Exception from src/...:", "Check '...' failed at ...:"); a failed
    conversion ends with a summary naming the operations."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if "Summary:" in lines[:-1]:
        return lines[lines.index("Summary:") + 1].lstrip("- ")[:200]
    for line in lines:
        if not line.startswith(("Exception from ", "Check '")) and not line.endswith(":"):
            return line[:200]
    return (lines[0] if lines else type(e).__name__)[:200]


# OpenVINO's CPU plugin (seen with 2025.4.1, 2026.3.1, 2026.4.1 on an AMX Xeon) compiles but
# cannot run in bf16 the optimized generators' image convolutions, 4 output channels
# (export/optimize.py): "Convolution node ... object is not initialized". Widened to 8 (or
# 16) they run (tried with 2026.4.1).
MIN_BF16_CONV_CHANNELS = 8


def widen_narrow_convolutions(model: Any) -> int:
    """Give every Convolution of `model` (an openvino.Model, changed in place) with fewer
    than MIN_BF16_CONV_CHANNELS output channels that many, the added filters all zero, and
    slice its output back to its own channels: the same numbers, in a form OpenVINO's bf16
    kernels run. Returns how many were widened."""
    import openvino.opset13 as ops

    widened = 0
    for node in model.get_ordered_ops():
        weights = node.input_value(1).get_node() if node.get_type_name() == "Convolution" \
            else None
        if weights is None or weights.get_type_name() != "Constant":
            continue
        kernel = weights.get_data()
        channels = kernel.shape[0]
        if channels >= MIN_BF16_CONV_CHANNELS:
            continue
        zeros = np.zeros((MIN_BF16_CONV_CHANNELS - channels, *kernel.shape[1:]), kernel.dtype)
        a = node.get_attributes()
        wide = ops.convolution(node.input_value(0), ops.constant(np.concatenate([kernel, zeros])),
                               a["strides"], a["pads_begin"], a["pads_end"], a["dilations"],
                               a["auto_pad"].upper())
        own = ops.slice(wide, np.array([0]), np.array([channels]), np.array([1]),
                        np.array([1]))
        for target in list(node.output(0).get_target_inputs()):
            target.replace_source_output(own.output(0))
        widened += 1
    if widened:
        model.validate_nodes_and_infer_types()
    return widened


class Session:
    """A model compiled by OpenVINO for the CPU, used like an onnxruntime session. Safe
    to run from several threads: each run takes an infer request of its own from a pool."""

    runtime = "OpenVINO"

    def __init__(self, core: Any, model_bytes: bytes, config: dict):
        """Compile the model (from its bytes: nothing beside the file is opened). OpenVINO's
        own exceptions pass through: the caller says which file failed."""
        # An empty weights blob: the model is self-contained (external data is refused
        # before this).
        model = core.read_model(model_bytes, b"")
        if config["INFERENCE_PRECISION_HINT"] == "bf16":
            widen_narrow_convolutions(model)
        self._compiled = core.compile_model(model, "CPU", config)
        self.devices = [str(d) for d in self._compiled.get_property("EXECUTION_DEVICES")]
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT") \
            .get_type_name()
        self._inputs = [self._arg(p) for p in self._compiled.inputs]
        self._outputs = [self._arg(p) for p in self._compiled.outputs]
        self._requests: queue.SimpleQueue = queue.SimpleQueue()

    @staticmethod
    def _arg(port: Any) -> _Arg:
        element = port.get_element_type().get_type_name()
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        names = sorted(port.get_names())
        return _Arg(names[0] if names else "", f"tensor({_ONNX_TYPES.get(element, element)})",
                    shape)

    def get_inputs(self) -> list[_Arg]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Arg]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        """What runs the model, as Generator.providers shows it: "openvino (CPU)", or
        "openvino (CPU, bf16)"."""
        suffix = "" if self.precision == "f32" else f", {self.precision}"
        return [f"openvino ({', '.join(self.devices)}{suffix})"]

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The named outputs of one inference, as arrays of their own (copied out of the
        infer request, which is reused)."""
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            result = request.infer(feeds)
            return [result[name] for name in outputs]
        finally:
            self._requests.put(request)
