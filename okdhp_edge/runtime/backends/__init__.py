"""Backend registry: the file suffix picks the backend; each backend module is imported only
when a model needs it, so a device with only onnxruntime never touches LiteRT (or torch).

Backends are registered by module path: the torch one lives with the torch code
(`okdhp_edge.models.backend`), so nothing in the runtime imports it, or torch, by itself.
ONNX Runtime sessions and LiteRT interpreters are opened in one place each (onnx_session.py,
litert_interpreter.py), for pose students here and for detectors and teachers
(detectors/session.py).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from ...spec import ModelSpec
from ..errors import BackendUnavailableError, ModelFileError
from .base import Backend

__all__ = [
    "BACKENDS",
    "SUFFIXES",
    "Backend",
    "backend_for",
    "backend_name",
    "open_backend",
    "read_embedded_spec",
    "resolve_backend",
]

# backend name -> (module path, class)
BACKENDS: dict[str, tuple[str, str]] = {
    "onnx": (f"{__name__}.onnx", "OnnxBackend"),
    "litert": (f"{__name__}.litert", "LiteRTBackend"),
    "tensorrt": (f"{__name__}.tensorrt", "TensorRTBackend"),
    "coreml": (f"{__name__}.coreml", "CoreMLBackend"),
    "torch": ("okdhp_edge.models.backend", "TorchBackend"),
}
# what to do when a backend's module cannot be imported (the others import their library lazily)
MISSING = {
    "torch": ".safetensors students run through torch, which the runtime install leaves out; "
    "pip install 'okdhp-edge[train]', or export the student (okdhp_edge.export) and run the .onnx/.tflite",
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
        hint = (
            " (pass the .safetensors file, or the exported artifact, not the .json sidecar)"
            if path.suffix == ".json"
            else ""
        )
        raise ModelFileError(
            f"{path}: unknown model type {path.suffix or '(no suffix)'!r}{hint}; supported: {', '.join(SUFFIXES)}"
        ) from None


def backend_name(backend: str) -> str:
    """The registry name of `backend` or of an alias of it ("ort" -> "onnx"); ValueError listing the names."""
    name = ALIASES.get(backend, backend)
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    return name


def resolve_backend(path: Path, backend: str | None, num_threads: int | None) -> str:
    """The backend that opens `path`: `backend` (or an alias of it) when given, which must be the
    one its suffix calls for; checks `num_threads` on the way, for every opener alike."""
    by_suffix = backend_for(path)
    name = backend_name(backend) if backend else by_suffix
    if name != by_suffix:
        raise ValueError(
            f"backend {name!r} cannot read {path.name}: {path.suffix} files are read by backend {by_suffix!r}"
        )
    if num_threads is not None and int(num_threads) < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    return name


def open_backend(
    path: str | os.PathLike,
    backend: str | None = None,
    device: str = "auto",
    num_threads: int | None = None,
) -> Backend:
    """Load the pose student `path` with `backend` (default: chosen by suffix)."""
    path = Path(path)
    name = resolve_backend(path, backend, num_threads)
    return getattr(_module(name, path), BACKENDS[name][1])(path, device=device, num_threads=num_threads)


def read_embedded_spec(path: str | os.PathLike) -> ModelSpec:
    """The spec stored inside an artifact (ONNX metadata_props, the TFLite metadata entry, Core ML
    user metadata), read by the backend module of its format; ModelFileError when there is none."""
    path = Path(path)
    reader = getattr(_module(backend_for(path), path), "embedded_spec", None)
    if reader is None:
        raise ModelFileError(
            f"{path}: {path.suffix} files carry no embedded okdhp-edge metadata; read its sidecar {path.name}.json"
        )
    return reader(path)


def _module(name: str, path: Path) -> ModuleType:
    try:
        return importlib.import_module(BACKENDS[name][0])
    except ImportError as err:
        if name not in MISSING:
            raise
        raise BackendUnavailableError(f"{path}: {MISSING[name]} ({err})") from None
