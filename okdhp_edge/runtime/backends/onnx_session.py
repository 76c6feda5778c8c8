"""Opening ONNX Runtime sessions, for every .onnx file the runtime runs: pose students
(backends/onnx.py), detectors and teacher models (detectors/session.py).

One place decides the execution providers, the CPU threads and whether idle threads spin, and turns
onnxruntime's load failures into a ModelFileError that names the file and the fix.

Spinning: ONNX Runtime's intra-op threads busy-wait for work, by default also between runs. A pose
network and a detector alternate on the same cores (PoseTracker), so threads that spin on after one
session's run take the cores the other needs. Sessions here spin while a run lasts and stop at its
end ("run"): one call spread over the cores gets the speed of spinning, the next session finds the
cores free. Several calls at once go to one-thread sessions instead (backends/onnx.py), which never
spin. OKDHP_EDGE_ORT_SPINNING, read when a session opens, overrides it: "0" off, "run", "1" on.
Measured in docs/runtime.md (Threads).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Sequence, Tuple, Union

import numpy as np

from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import TensorInfo
from .base import RawModel, require_file

__all__ = [
    "DEVICE_PROVIDERS",
    "SPINNING_ENV",
    "OnnxModel",
    "import_onnxruntime",
    "open_session",
    "select_providers",
    "spinning",
    "tensor_info",
]

DEVICE_PROVIDERS: dict[str, tuple[str, ...]] = {
    "auto": ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    "coreml": ("CoreMLExecutionProvider", "CPUExecutionProvider"),
}
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
}
SPINNING_ENV = "OKDHP_EDGE_ORT_SPINNING"
SPINNING_VALUES = {"0": "off", "off": "off", "run": "run", "1": "on", "on": "on"}
# a provider name, or (name, options) as InferenceSession takes it
Provider = Union[str, Tuple[str, Dict[str, object]]]


def import_onnxruntime(path: Path) -> ModuleType:
    """onnxruntime, or a BackendUnavailableError naming the file that needed it and the install line."""
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailableError(
            f"{path}: .onnx models need onnxruntime; pip install 'okdhp-edge[runtime]' (or onnxruntime)"
        ) from None
    return onnxruntime


def select_providers(device: str, available: list[str], quantized: bool = False) -> list[str]:
    """Execution providers for `device`, in priority order, restricted to what is installed.
    `quantized` (an INT8 QDQ file) keeps `auto` off Core ML: ONNX Runtime's CPU provider runs QDQ
    groups as fused integer kernels, while Core ML would get the graph cut around the Q/DQ pairs."""
    if device not in DEVICE_PROVIDERS:
        raise ValueError(f"unknown device {device!r} for ONNX Runtime; valid: {', '.join(DEVICE_PROVIDERS)}")
    wanted = DEVICE_PROVIDERS[device]
    if device not in ("auto", "cpu") and wanted[0] not in available:
        raise BackendUnavailableError(
            f"device={device!r} needs onnxruntime's {wanted[0]}, but this onnxruntime only has {available}; "
            "install the matching build (onnxruntime-gpu for CUDA/TensorRT) or use device='cpu'"
        )
    if device == "auto" and quantized:
        wanted = tuple(p for p in wanted if p != "CoreMLExecutionProvider")
    return [p for p in wanted if p in available]


def spinning() -> str:
    """How a new session's idle intra-op threads wait, from OKDHP_EDGE_ORT_SPINNING: "run" (unset:
    spin while a run lasts, stop at its end), "off" ("0") or "on" ("1"); ValueError otherwise."""
    value = (os.environ.get(SPINNING_ENV) or "run").strip().lower()
    mode = SPINNING_VALUES.get(value)
    if mode is None:
        raise ValueError(f"{SPINNING_ENV}={value!r}: valid values are run (the default), 0 (off), 1 (on)")
    return mode


def open_session(path: Path, providers: Sequence[Provider], num_threads: int | None, fix: str) -> Any:
    """An InferenceSession of `path`; `fix` ends the message when the file cannot be loaded."""
    ort = import_onnxruntime(path)
    require_file(path, "ONNX")
    options = ort.SessionOptions()
    # CPU-only sessions log errors only; with an accelerator, ONNX Runtime's warnings (nodes left to
    # the CPU, a provider that failed to load) are what the user needs to see.
    options.log_severity_level = 3 if list(providers) == ["CPUExecutionProvider"] else 2
    mode = spinning()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if mode == "off" else "1")
    if mode == "run":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    if num_threads:
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as err:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(
            f"{path}: onnxruntime cannot load this file ({first}). It is truncated, corrupt or not an ONNX model; {fix}"
        ) from None


def tensor_info(node: Any) -> TensorInfo:
    """An onnxruntime NodeArg as the runtime's TensorInfo (None for free dimensions)."""
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    return TensorInfo(node.name, shape, ORT_DTYPES.get(node.type, node.type))


class OnnxModel(RawModel):
    """An opened session with one floating-point input. `InferenceSession.run` is thread-safe, so one
    session serves every thread."""

    def __init__(self, path: Path, session: Any) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(
                f"{path}: the model has {len(inputs)} inputs {[i.name for i in inputs]}; the runtime runs models "
                "with exactly one image input"
            )
        self.path = path
        self.session = session
        self.input = tensor_info(inputs[0])
        self.outputs = [tensor_info(o) for o in session.get_outputs()]
        self.input_shape = self.input.shape
        self.output_count = len(self.outputs)
        if self.input.dtype not in ("float32", "float16"):
            raise ModelFileError(
                f"{path}: the input is {self.input.dtype}, and integer inputs carry no scale; export with a "
                "float input (INT8 models keep their quantize/dequantize nodes inside, as okdhp_edge.export does)"
            )
        self._dtype = np.dtype(self.input.dtype)

    def run(self, x: np.ndarray, names: list[str] | None = None) -> list[np.ndarray]:
        """The outputs called `names` (default: all), float32."""
        outputs = self.session.run(names, {self.input.name: x.astype(self._dtype, copy=False)})
        return [np.asarray(o, np.float32) for o in outputs]
