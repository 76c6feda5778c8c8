"""Backend registry: the file suffix picks the backend; each backend module is imported only
when a model needs it, so a device with only onnxruntime never touches LiteRT (or torch).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import ModelFileError
from .base import Backend

__all__ = ["BACKENDS", "SUFFIXES", "Backend", "backend_for", "open_backend"]

# backend name -> (module, class)
BACKENDS: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "OnnxBackend"),
    "litert": ("litert", "LiteRTBackend"),
    "tensorrt": ("tensorrt", "TensorRTBackend"),
    "coreml": ("coreml", "CoreMLBackend"),
    "torch": ("torch", "TorchBackend"),
}
ALIASES = {"onnxruntime": "onnx", "ort": "onnx", "tflite": "litert", "trt": "tensorrt", "pytorch": "torch"}
SUFFIXES: dict[str, str] = {
    ".onnx": "onnx",
    ".tflite": "litert",
    ".engine": "tensorrt",
    ".plan": "tensorrt",
    ".mlpackage": "coreml",
    ".mlmodel": "coreml",
    ".safetensors": "torch",
}


def backend_for(path: Path) -> str:
    """The backend that reads `path`, from its suffix."""
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        hint = " (pass the .safetensors file, or the exported artifact, not the .json sidecar)" if path.suffix == ".json" else ""
        raise ModelFileError(
            f"{path}: unknown model type {path.suffix or '(no suffix)'!r}{hint}; supported: {', '.join(SUFFIXES)}"
        ) from None


def open_backend(
    path: str | os.PathLike,
    backend: str | None = None,
    device: str = "auto",
    num_threads: int | None = None,
) -> Backend:
    """Load `path` with `backend` (default: chosen by suffix)."""
    path = Path(path)
    by_suffix = backend_for(path)
    name = ALIASES.get(backend, backend) if backend else by_suffix
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if name != by_suffix:
        raise ValueError(f"backend {name!r} cannot read {path.name}: {path.suffix} files are read by backend {by_suffix!r}")
    if num_threads is not None and int(num_threads) < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    module_name, class_name = BACKENDS[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)(path, device=device, num_threads=num_threads)
