"""LiteRT (TensorFlow Lite) backend: ai-edge-litert, falling back to tflite-runtime.

Full-integer models (int8/uint8 input or output) are fed and read through the tensors' own
scale and zero point, so the Predictor always exchanges float32 with the backend.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import SPEC_KEY, TensorInfo, load_spec_text, missing_spec_error, read_sidecar
from .base import Backend, require_file

__all__ = ["LiteRTBackend", "dequantize", "quantize"]


def _interpreter_class() -> type:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise BackendUnavailableError(
                ".tflite models need LiteRT: pip install 'okdhp-edge[runtime]' (ai-edge-litert), or tflite-runtime"
            ) from None
    return Interpreter


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """float -> integer tensor values: round(x / scale) + zero_point, saturated to the dtype."""
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


class LiteRTBackend(Backend):
    name = "litert"

    def __init__(self, path: Path, device: str = "auto", num_threads: int | None = None) -> None:
        if device not in ("auto", "cpu"):
            raise BackendUnavailableError(
                f"{path}: the LiteRT backend runs on the CPU (device='auto' or 'cpu'), not {device!r}; "
                "export to ONNX or TensorRT for GPUs"
            )
        Interpreter = _interpreter_class()
        require_file(path, "TFLite")
        spec = read_sidecar(path) or _embedded_spec(path)
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelFileError(
                f"{path}: LiteRT cannot load this file ({err}). It is truncated, corrupt or not a TFLite model; "
                "re-export it with okdhp_edge.export or copy it again"
            ) from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFileError(f"{path}: the model has {len(inputs)} inputs; a pose student has exactly one")
        outputs = self.interpreter.get_output_details()
        aliases = self._signature_aliases()
        wanted = spec.export.get("output_name")
        out = next((o for o in outputs if wanted in (o["name"], aliases.get(o["index"]))), outputs[0])
        self._in, self._out = inputs[0], out
        super().__init__(path, spec, _tensor(self._in, aliases), _tensor(out, aliases), device="cpu")
        self._resizable = int(self._in["shape_signature"][0]) == -1

    def _signature_aliases(self) -> dict[int, str]:
        """Tensor index -> signature name ('args_0', 'output_0'), the names converters often report."""
        aliases: dict[int, str] = {}
        try:
            signatures = self.interpreter.get_signature_list()
        except (AttributeError, ValueError):
            return aliases
        for key in signatures:
            runner = self.interpreter.get_signature_runner(key)
            for details in (runner.get_input_details(), runner.get_output_details()):
                aliases.update({d["index"]: name for name, d in details.items()})
        return aliases

    def run(self, x: np.ndarray) -> np.ndarray:
        index = self._in["index"]
        if tuple(self._in["shape"]) != x.shape:
            if not self._resizable:
                raise ValueError(f"{self.path}: input batch {x.shape} but the model is fixed to {tuple(self._in['shape'])}")
            self.interpreter.resize_tensor_input(index, list(x.shape), strict=True)
            self.interpreter.allocate_tensors()
            self._in = next(d for d in self.interpreter.get_input_details() if d["index"] == index)
            self._out = next(d for d in self.interpreter.get_output_details() if d["index"] == self._out["index"])
        dtype = np.dtype(self._in["dtype"])
        scale, zero = self._in["quantization"]
        if dtype.kind in "iu":
            if not scale:
                raise ModelFileError(f"{self.path}: integer input tensor without a quantization scale; re-export the model")
            x = quantize(x, scale, zero, dtype)
        else:
            x = x.astype(dtype, copy=False)
        self.interpreter.set_tensor(index, np.ascontiguousarray(x))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out["index"])
        out_scale, out_zero = self._out["quantization"]
        if np.dtype(self._out["dtype"]).kind in "iu" and out_scale:
            return dequantize(y, out_scale, out_zero)
        return np.asarray(y, dtype=np.float32)


def read_tflite_metadata(data: bytes, name: str) -> str | None:
    """The UTF-8 text of the flatbuffer's model metadata entry `name`, or None when absent.
    Raises ImportError without ai-edge-litert and ValueError for a file that is no TFLite model."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == name.encode():
                return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode("utf-8")
    except (IndexError, TypeError, ValueError, AttributeError, UnicodeDecodeError, struct.error) as err:
        raise ValueError(f"not a readable TFLite flatbuffer ({type(err).__name__})") from None
    return None


def _embedded_spec(path: Path):
    """The spec in the flatbuffer's `okdhp_spec` metadata entry (used when the sidecar is missing)."""
    try:
        text = read_tflite_metadata(path.read_bytes(), SPEC_KEY)
    except ImportError:
        raise missing_spec_error(path) from None
    except ValueError:
        raise ModelFileError(
            f"{path}: not a readable TFLite flatbuffer (truncated, corrupt or another format); re-export it with okdhp_edge.export"
        ) from None
    if text is None:
        raise missing_spec_error(path, f" or an {SPEC_KEY!r} metadata entry in the .tflite file")
    return load_spec_text(text, f"{path} (metadata {SPEC_KEY})")


def _tensor(details: dict[str, Any], aliases: dict[int, str]) -> TensorInfo:
    signature = details.get("shape_signature", details["shape"])
    shape = tuple(int(d) if int(d) > 0 else None for d in signature)
    alias = aliases.get(details["index"])
    return TensorInfo(details["name"], shape, np.dtype(details["dtype"]).name, (alias,) if alias else ())
