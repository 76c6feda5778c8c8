"""Opening LiteRT (TensorFlow Lite) interpreters, for every .tflite file the runtime runs: pose
students (backends/litert.py), detectors and teacher models (detectors/session.py).

ai-edge-litert, falling back to tflite-runtime. An interpreter is not thread-safe (`invoke` while
another thread reads a tensor fails), so each calling thread gets its own interpreter of the file,
made on its first call (measured against one interpreter behind a lock in docs/runtime.md).
Full-integer models (int8/uint8 input or output) are fed and read through the tensors' own scale
and zero point, so callers always exchange float32.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import BackendUnavailableError, ModelFileError
from .base import RawModel, require_file

__all__ = ["LITERT_PACKAGES", "LiteRTModel", "dequantize", "interpreter_class", "open_interpreter", "quantize"]

# the packages that provide LiteRT's Interpreter, preferred first
LITERT_PACKAGES = ("ai_edge_litert", "tflite_runtime")

_first_allocation = threading.Lock()
_banner_silenced = False


def interpreter_class() -> type:
    """LiteRT's Interpreter class, or a BackendUnavailableError with the install line."""
    for package in LITERT_PACKAGES:
        try:
            return importlib.import_module(f"{package}.interpreter").Interpreter
        except ImportError:
            continue
    raise BackendUnavailableError(
        ".tflite models need LiteRT: pip install 'okdhp-edge[runtime]' (ai-edge-litert), or tflite-runtime"
    )


def open_interpreter(cls: type, path: Path, num_threads: int | None) -> Any:
    """An allocated interpreter of `path`, made by `cls` (interpreter_class()).

    LiteRT's C++ core prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to stderr
    at a process's first allocation, and offers no setting to stop it (TF_CPP_MIN_LOG_LEVEL does
    not reach it), so that one allocation runs with file descriptor 2 pointed at /dev/null. Errors
    still arrive: LiteRT raises them as exceptions.
    """
    global _banner_silenced
    interpreter = cls(model_path=str(path), num_threads=num_threads)
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
def _stderr_silenced() -> Iterator[None]:
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


class _ThreadState:
    """One thread's interpreter and the current details of its input and outputs (they change
    when the input is resized)."""

    def __init__(self, interpreter: Any) -> None:
        self.interpreter = interpreter
        self.refresh()

    def refresh(self) -> None:
        self.inp = self.interpreter.get_input_details()[0]
        self.outs = self.interpreter.get_output_details()


class LiteRTModel(RawModel):
    """A .tflite file with one input, one interpreter per calling thread. An input whose shape
    differs from the current one is resized to when the file leaves those dimensions free (-1)."""

    def __init__(self, path: Path, num_threads: int | None, fix: str) -> None:
        self.interpreter_class = interpreter_class()
        require_file(path, "TFLite")
        self.path = path
        self._num_threads = num_threads
        self._fix = fix
        self._local = threading.local()
        interpreter = self._open()
        inputs = interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFileError(
                f"{path}: the model has {len(inputs)} inputs; the runtime runs models with exactly one image input"
            )
        self._local.state = _ThreadState(interpreter)
        self.input_details = inputs[0]  # LiteRT's details of the tensors, as the first interpreter has them
        self.output_details = interpreter.get_output_details()
        signature = self.input_details.get("shape_signature", self.input_details["shape"])
        self.input_signature = tuple(int(d) for d in signature)
        self.input_shape = tuple(d if d > 0 else None for d in self.input_signature)
        self.output_count = len(self.output_details)

    def _open(self) -> Any:
        try:
            return open_interpreter(self.interpreter_class, self.path, self._num_threads)
        except (ValueError, RuntimeError) as err:
            raise ModelFileError(
                f"{self.path}: LiteRT cannot load this file ({err}). It is truncated, corrupt or not a TFLite model; "
                f"{self._fix}"
            ) from None

    def _state(self) -> _ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _ThreadState(self._open())
        return state

    def interpreter(self) -> Any:
        """This thread's interpreter (made on its first call), for what the file says beyond its
        tensors (signature names)."""
        return self._state().interpreter

    def run(self, x: np.ndarray, indices: list[int] | None = None) -> list[np.ndarray]:
        """The outputs at positions `indices` of the output list (default: all), float32."""
        state = self._state()
        interpreter = state.interpreter
        if tuple(state.inp["shape"]) != x.shape:
            fixed = [i for i, d in enumerate(self.input_signature) if d > 0 and x.shape[i : i + 1] != (d,)]
            if len(x.shape) != len(self.input_signature) or fixed:
                raise ValueError(f"{self.path}: input {x.shape} but the model is fixed to {tuple(state.inp['shape'])}")
            interpreter.resize_tensor_input(state.inp["index"], list(x.shape), strict=True)
            interpreter.allocate_tensors()
            state.refresh()
        dtype = np.dtype(state.inp["dtype"])
        scale, zero = state.inp["quantization"]
        if dtype.kind in "iu":
            if not scale:
                raise ModelFileError(f"{self.path}: integer input tensor without a quantization scale; {self._fix}")
            x = quantize(x, scale, zero, dtype)
        else:
            x = x.astype(dtype, copy=False)
        interpreter.set_tensor(state.inp["index"], np.ascontiguousarray(x))
        interpreter.invoke()
        outs = state.outs if indices is None else [state.outs[i] for i in indices]
        return [_read(interpreter, out) for out in outs]

    def describe(self) -> str:
        library = self.interpreter_class.__module__.split(".")[0].replace("_", "-")
        return f"{library} Interpreter (XNNPACK CPU)"


def _read(interpreter: Any, details: dict[str, Any]) -> np.ndarray:
    y = interpreter.get_tensor(details["index"])
    scale, zero = details["quantization"]
    if np.dtype(details["dtype"]).kind in "iu" and scale:
        return dequantize(y, scale, zero)
    return np.asarray(y, np.float32)
