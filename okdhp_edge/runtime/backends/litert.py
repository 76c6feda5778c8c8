"""LiteRT (TensorFlow Lite) backend: ai-edge-litert, falling back to tflite-runtime.

Full-integer models (int8/uint8 input or output) are fed and read through the tensors' own
scale and zero point, so the Predictor always exchanges float32 with the backend.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ...spec import ModelSpec
from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import SPEC_KEY, TensorInfo, load_spec_text, missing_spec_error, read_sidecar
from .base import Backend, require_file

__all__ = ["LiteRTBackend", "dequantize", "embedded_spec", "open_interpreter", "quantize", "read_tflite_metadata"]

_first_allocation = threading.Lock()
_banner_silenced = False


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


def open_interpreter(interpreter_class: type, path: Path, num_threads: int | None) -> Any:
    """An allocated interpreter of `path`.

    LiteRT's C++ core prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to stderr
    at a process's first allocation, and offers no setting to stop it (TF_CPP_MIN_LOG_LEVEL does
    not reach it), so that one allocation runs with file descriptor 2 pointed at /dev/null. Errors
    still arrive: LiteRT raises them as exceptions.
    """
    global _banner_silenced
    interpreter = interpreter_class(model_path=str(path), num_threads=num_threads)
    if not _banner_silenced:
        with _first_allocation:
            if not _banner_silenced:
                with _stderr_silenced():
                    interpreter.allocate_tensors()
                _banner_silenced = True
                return interpreter
    interpreter.allocate_tensors()
    return interpreter


@contextlib.contextmanager
def _stderr_silenced():
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """float -> integer tensor values: round(x / scale) + zero_point, saturated to the dtype."""
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


class _Interpreter:
    """One thread's interpreter and the current details of the tensors the backend uses."""

    def __init__(self, interpreter: Any, input_index: int, output_index: int) -> None:
        self.interpreter = interpreter
        self.refresh(input_index, output_index)

    def refresh(self, input_index: int, output_index: int) -> None:
        self.inp = next(d for d in self.interpreter.get_input_details() if d["index"] == input_index)
        self.out = next(d for d in self.interpreter.get_output_details() if d["index"] == output_index)


class LiteRTBackend(Backend):
    """LiteRT interpreters are not thread-safe (`invoke` while another thread reads a tensor fails);
    each calling thread gets its own interpreter of the same file, created on its first call
    (measured against one interpreter behind a lock in docs/runtime.md)."""

    name = "litert"
    thread_safe = True  # by one interpreter per thread

    def __init__(self, path: Path, device: str = "auto", num_threads: int | None = None) -> None:
        if device not in ("auto", "cpu"):
            raise BackendUnavailableError(
                f"{path}: the LiteRT backend runs on the CPU with XNNPACK (device='auto' or 'cpu'), not {device!r}: "
                "it exposes no GPU, NNAPI or DSP delegates; export to ONNX or TensorRT for GPUs"
            )
        self._interpreter_class = _interpreter_class()
        self._num_threads = num_threads
        require_file(path, "TFLite")
        spec = read_sidecar(path) or embedded_spec(path)
        interpreter = self._load(path)
        inputs = interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFileError(f"{path}: the model has {len(inputs)} inputs; a pose student has exactly one")
        outputs = interpreter.get_output_details()
        aliases = _signature_aliases(interpreter)
        wanted = spec.export_info.output_name
        out = next((o for o in outputs if wanted in (o["name"], aliases.get(o["index"]))), outputs[0])
        self._input_index, self._output_index = int(inputs[0]["index"]), int(out["index"])
        self._local = threading.local()
        self._local.state = _Interpreter(interpreter, self._input_index, self._output_index)
        super().__init__(path, spec, _tensor(inputs[0], aliases), _tensor(out, aliases), device="cpu")
        self._resizable = int(inputs[0]["shape_signature"][0]) == -1

    def _load(self, path: Path) -> Any:
        try:
            interpreter = open_interpreter(self._interpreter_class, path, self._num_threads)
        except (ValueError, RuntimeError) as err:
            raise ModelFileError(
                f"{path}: LiteRT cannot load this file ({err}). It is truncated, corrupt or not a TFLite model; "
                "re-export it with okdhp_edge.export or copy it again"
            ) from None
        return interpreter

    def _state(self) -> _Interpreter:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _Interpreter(self._load(self.path), self._input_index, self._output_index)
        return state

    def run(self, x: np.ndarray) -> np.ndarray:
        state = self._state()
        interpreter = state.interpreter
        if tuple(state.inp["shape"]) != x.shape:
            if not self._resizable:
                raise ValueError(
                    f"{self.path}: input batch {x.shape} but the model is fixed to {tuple(state.inp['shape'])}"
                )
            interpreter.resize_tensor_input(self._input_index, list(x.shape), strict=True)
            interpreter.allocate_tensors()
            state.refresh(self._input_index, self._output_index)
        dtype = np.dtype(state.inp["dtype"])
        scale, zero = state.inp["quantization"]
        if dtype.kind in "iu":
            if not scale:
                raise ModelFileError(
                    f"{self.path}: integer input tensor without a quantization scale; re-export the model"
                )
            x = quantize(x, scale, zero, dtype)
        else:
            x = x.astype(dtype, copy=False)
        interpreter.set_tensor(self._input_index, np.ascontiguousarray(x))
        interpreter.invoke()
        y = interpreter.get_tensor(self._output_index)
        out_scale, out_zero = state.out["quantization"]
        if np.dtype(state.out["dtype"]).kind in "iu" and out_scale:
            return dequantize(y, out_scale, out_zero)
        return np.asarray(y, dtype=np.float32)

    def describe(self) -> str:
        library = self._interpreter_class.__module__.split(".")[0].replace("_", "-")
        return f"{library} Interpreter (XNNPACK CPU)"


def _signature_aliases(interpreter: Any) -> dict[int, str]:
    """Tensor index -> signature name ('args_0', 'output_0'), the names converters often report."""
    aliases: dict[int, str] = {}
    try:
        signatures = interpreter.get_signature_list()
    except (AttributeError, ValueError):
        return aliases
    for key in signatures:
        runner = interpreter.get_signature_runner(key)
        for details in (runner.get_input_details(), runner.get_output_details()):
            aliases.update({d["index"]: name for name, d in details.items()})
    return aliases


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


def embedded_spec(path: Path) -> ModelSpec:
    """The spec in the flatbuffer's `okdhp_spec` metadata entry (used when the sidecar is missing)."""
    require_file(path, "TFLite")
    try:
        text = read_tflite_metadata(path.read_bytes(), SPEC_KEY)
    except ImportError:
        raise missing_spec_error(path) from None
    except ValueError:
        raise ModelFileError(
            f"{path}: not a readable TFLite flatbuffer (truncated, corrupt or another format); re-export it with "
            "okdhp_edge.export"
        ) from None
    if text is None:
        raise missing_spec_error(path, f" or an {SPEC_KEY!r} metadata entry in the .tflite file")
    return load_spec_text(text, f"{path} (metadata {SPEC_KEY})")


def _tensor(details: dict[str, Any], aliases: dict[int, str]) -> TensorInfo:
    signature = details.get("shape_signature", details["shape"])
    shape = tuple(int(d) if int(d) > 0 else None for d in signature)
    alias = aliases.get(details["index"])
    return TensorInfo(details["name"], shape, np.dtype(details["dtype"]).name, (alias,) if alias else ())
