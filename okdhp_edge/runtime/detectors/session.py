"""Opening the model files that carry no okdhp metadata: person detectors and BlazePose teachers.

They run on the same runtime layer as the pose students (an ONNX Runtime session from
backends/onnx_session.py, per-thread LiteRT interpreters from backends/litert_interpreter.py) and
come back as a `RawModel`: one image input, every output as float32.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..backends import resolve_backend
from ..backends.base import RawModel
from ..backends.litert_interpreter import LiteRTModel
from ..backends.onnx_session import OnnxModel, import_onnxruntime, open_session, select_providers
from ..errors import BackendUnavailableError, ModelFileError

__all__ = ["open_raw_model"]

FIX = "export it again (Ultralytics: model.export(format='onnx') or format='tflite') or copy it again"


def open_raw_model(path: str | os.PathLike, backend: str | None, device: str, num_threads: int | None) -> RawModel:
    """Open a detector or teacher file with the runtime its suffix calls for (.onnx or .tflite)."""
    path = Path(path)
    name = resolve_backend(path, backend, num_threads)
    if name == "onnx":
        providers = select_providers(device, import_onnxruntime(path).get_available_providers())
        return OnnxModel(path, open_session(path, providers, num_threads, FIX))
    if name == "litert":
        if device not in ("auto", "cpu"):
            raise BackendUnavailableError(
                f"{path}: LiteRT models run on the CPU (device='auto' or 'cpu'), not {device!r}"
            )
        return LiteRTModel(path, num_threads, FIX)
    raise ModelFileError(f"{path}: detectors and teachers run from .onnx or .tflite files, not {path.suffix}; {FIX}")
