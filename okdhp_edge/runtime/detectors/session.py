"""Plain ONNX Runtime / LiteRT sessions for detector models.

The pose backends (`runtime.backends`) check a model against okdhp metadata that detector files
do not carry, so detectors open their files here, reusing the backends' provider choice, file
checks, interpreter lookup and (de)quantization.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import ALIASES, backend_for
from ..backends.base import require_file
from ..backends.litert import _interpreter_class, dequantize, open_interpreter, quantize
from ..backends.onnx import select_providers
from ..errors import BackendUnavailableError, ModelFileError

__all__ = ["RawModel", "open_raw_model"]

FIX = "export it again (Ultralytics: model.export(format='onnx') or format='tflite') or copy it again"


class RawModel:
    """One float32 input, a list of float32 outputs; `input_shape` has None for free dimensions."""

    path: Path
    input_shape: tuple[int | None, ...]
    output_count: int

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError


class OnnxRawModel(RawModel):
    def __init__(self, path: Path, device: str, num_threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError(
                f"{path}: .onnx detectors need onnxruntime; pip install 'okdhp-edge[runtime]'"
            ) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # A detector alternates with a pose model: threads that spin after a run take the cores the
        # other model needs next (docs/runtime.md measures both settings).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        providers = select_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own pybind classes
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelFileError(
                f"{path}: onnxruntime cannot load this detector ({first}); it is truncated, corrupt or not ONNX: {FIX}"
            ) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(
                f"{path}: the detector has {len(inputs)} inputs {[i.name for i in inputs]}; expected one image input"
            )
        self.path = path
        self._input = inputs[0].name
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape)
        self.output_count = len(self.session.get_outputs())
        self._dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        outputs = self.session.run(None, {self._input: x.astype(self._dtype, copy=False)})
        return [np.asarray(o, np.float32) for o in outputs]


class LiteRTRawModel(RawModel):
    """A LiteRT interpreter is not thread-safe, so, as in the pose backend (backends/litert.py),
    each calling thread gets its own interpreter of the file, made on its first call."""

    def __init__(self, path: Path, device: str, num_threads: int | None) -> None:
        if device not in ("auto", "cpu"):
            raise BackendUnavailableError(
                f"{path}: LiteRT detectors run on the CPU (device='auto' or 'cpu'), not {device!r}"
            )
        self._interpreter_class = _interpreter_class()
        self._num_threads = num_threads
        self.path = path
        self._local = threading.local()
        interpreter = self._interpreter()
        inputs = interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFileError(f"{path}: the detector has {len(inputs)} inputs; expected one image input")
        self._in = inputs[0]
        self._outs = interpreter.get_output_details()
        self.output_count = len(self._outs)
        self.input_shape = tuple(int(d) if int(d) > 0 else None for d in self._in["shape_signature"])

    def _interpreter(self) -> Any:
        """This thread's interpreter."""
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            try:
                interpreter = open_interpreter(self._interpreter_class, self.path, self._num_threads)
            except (ValueError, RuntimeError) as err:
                raise ModelFileError(
                    f"{self.path}: LiteRT cannot load this detector ({err}); it is truncated, corrupt or not TFLite: "
                    f"{FIX}"
                ) from None
            self._local.interpreter = interpreter
        return interpreter

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        interpreter = self._interpreter()
        dtype = np.dtype(self._in["dtype"])
        scale, zero = self._in["quantization"]
        x = quantize(x, scale, zero, dtype) if dtype.kind in "iu" and scale else x.astype(dtype, copy=False)
        interpreter.set_tensor(self._in["index"], np.ascontiguousarray(x))
        interpreter.invoke()
        outputs = []
        for out in self._outs:
            y = interpreter.get_tensor(out["index"])
            out_scale, out_zero = out["quantization"]
            quantized = np.dtype(out["dtype"]).kind in "iu" and out_scale
            outputs.append(dequantize(y, out_scale, out_zero) if quantized else np.asarray(y, np.float32))
        return outputs


def open_raw_model(path: str | os.PathLike, backend: str | None, device: str, num_threads: int | None) -> RawModel:
    """Open a detector file with the runtime picked from its suffix (.onnx or .tflite)."""
    path = Path(path)
    by_suffix = backend_for(path)
    name = ALIASES.get(backend, backend) if backend else by_suffix
    if name != by_suffix:
        raise ValueError(
            f"backend {name!r} cannot read {path.name}: {path.suffix} files are read by backend {by_suffix!r}"
        )
    if name not in ("onnx", "litert"):
        raise ModelFileError(f"{path}: detectors run from .onnx or .tflite files, not {path.suffix}; {FIX}")
    if num_threads is not None and int(num_threads) < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    require_file(path, "detector")
    return OnnxRawModel(path, device, num_threads) if name == "onnx" else LiteRTRawModel(path, device, num_threads)
