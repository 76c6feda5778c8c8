"""ONNX Runtime backend: CPU, CUDA, TensorRT and Core ML execution providers.

`device="auto"` takes CUDA, then Core ML, then CPU, whichever this onnxruntime build has.
The TensorRT execution provider is used only when asked for (`device="tensorrt"`) because it
builds an engine on the first run, which takes minutes; its engines are cached on disk.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import SPEC_KEY, TensorInfo, load_spec_text, missing_spec_error, read_sidecar
from .base import Backend, require_file

__all__ = ["OnnxBackend", "select_providers"]

DEVICE_PROVIDERS: dict[str, tuple[str, ...]] = {
    "auto": ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    "coreml": ("CoreMLExecutionProvider", "CPUExecutionProvider"),
}
ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}
TRT_CACHE = Path(os.environ.get("OKDHP_EDGE_TRT_CACHE", Path.home() / ".cache" / "okdhp_edge" / "ort_trt"))


def select_providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for `device`, in priority order, restricted to what is installed."""
    if device not in DEVICE_PROVIDERS:
        raise ValueError(f"unknown device {device!r} for ONNX Runtime; valid: {', '.join(DEVICE_PROVIDERS)}")
    wanted = DEVICE_PROVIDERS[device]
    if device not in ("auto", "cpu") and wanted[0] not in available:
        raise BackendUnavailableError(
            f"device={device!r} needs onnxruntime's {wanted[0]}, but this onnxruntime only has {available}; "
            "install the matching build (onnxruntime-gpu for CUDA/TensorRT) or use device='cpu'"
        )
    return [p for p in wanted if p in available]


class OnnxBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: Path, device: str = "auto", num_threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError(
                f"{path}: .onnx models need onnxruntime; pip install 'okdhp-edge[runtime]' (or onnxruntime)"
            ) from None
        require_file(path, "ONNX")
        providers = select_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings about provider fallbacks are reported below
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        provider_args: list = [
            (p, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(TRT_CACHE)}) if p == "TensorrtExecutionProvider" else p
            for p in providers
        ]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=provider_args)
        except Exception as err:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelFileError(
                f"{path}: onnxruntime cannot load this file ({first}). It is truncated, corrupt or not an ONNX model; "
                "re-export it with okdhp_edge.export or copy it again"
            ) from None
        used = self.session.get_providers()
        if device not in ("auto", "cpu") and used[0] != providers[0]:
            raise BackendUnavailableError(f"{path}: onnxruntime could not start {providers[0]} (running on {used}); check the GPU drivers")

        spec = read_sidecar(path)
        if spec is None:
            embedded = self.session.get_modelmeta().custom_metadata_map.get(SPEC_KEY)
            if embedded is None:
                raise missing_spec_error(path, " or an 'okdhp_spec' metadata property in the ONNX file")
            spec = load_spec_text(embedded, f"{path} (metadata_props {SPEC_KEY})")
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(f"{path}: the model has {len(inputs)} inputs {[i.name for i in inputs]}; a pose student has exactly one")
        outputs = {o.name: o for o in self.session.get_outputs()}
        wanted = spec.export.get("output_name")
        out = outputs.get(wanted) if wanted in outputs else next(iter(outputs.values()))
        self._output_name = out.name
        super().__init__(path, spec, _tensor(inputs[0]), _tensor(out), device=", ".join(used))
        if self.input.dtype in ("int8", "uint8"):
            raise ModelFileError(
                f"{path}: integer-input ONNX models carry no input scale; export INT8 ONNX with a float input "
                "(quantize/dequantize nodes inside), as okdhp_edge.export does"
            )
        self._dtype = np.dtype(self.input.dtype)

    def run(self, x: np.ndarray) -> np.ndarray:
        feed = {self.input.name: x.astype(self._dtype, copy=False)}
        return np.asarray(self.session.run([self._output_name], feed)[0], dtype=np.float32)


def _tensor(node) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    return TensorInfo(node.name, shape, ORT_DTYPES.get(node.type, node.type))
