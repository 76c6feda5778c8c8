"""Pose students that travel inside the package, opened by name: `Predictor("real-tiny")`.

A device that installs the runtime wheel has no checkout of the repository, so the student the
README runs must be package data (okdhp_edge/runtime/models/, like the person detector in
runtime/detectors/). Each ships as the same student in two INT8 runtime files with their metadata
sidecars: a full-integer `.tflite` for LiteRT, which poses one person 1.35-1.5x and six 1.1-1.2x
faster on the x86 CPU measured (docs/runtime.md, "Bundled students: which file runs"), and an
`.onnx` for ONNX Runtime, which runs where LiteRT has no wheel (Python 3.8 on JetPack 5). A name
opens the `.tflite` where LiteRT is installed, else the `.onnx`, or the one `backend=` asks for. The
training-side files (weights, recipe, export reports) stay in the repository's weights/NAME/.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .backends import backend_for, backend_name
from .backends.litert_interpreter import LITERT_PACKAGES
from .errors import ModelFileError

__all__ = ["DEFAULT_POSE_MODEL", "MODELS_DIR", "bundled_models", "resolve_pose_model"]

MODELS_DIR = Path(__file__).parent / "models"
# name -> its files in MODELS_DIR, one per backend; weights/NAME/ holds how each was made
BUNDLED = {
    "real-tiny": ("real-tiny-int8.tflite", "real-tiny-int8.onnx"),  # 0.117-GMAC student
    "real-tiny-1x32": ("real-tiny-1x32-int8.tflite", "real-tiny-1x32-int8.onnx"),  # its 0.051-GMAC sibling (0.44x)
}
DEFAULT_POSE_MODEL = "real-tiny"


def bundled_models(backend: str | None = None) -> dict[str, Path]:
    """The pose students shipped in the package: name -> the runtime file `Predictor(name,
    backend=backend)` opens here (its `.json` sidecar beside it)."""
    return {name: _pick(name, backend) for name in BUNDLED}


def resolve_pose_model(model: str | os.PathLike, backend: str | None = None) -> Path:
    """The file for Predictor's `model_path`: a bundled name, or a path taken as it is.

    A bare word that is neither a bundled name nor an existing file is an error that lists the
    names, instead of the backend's "unknown model type '(no suffix)'".
    """
    name = os.fspath(model)
    if name in BUNDLED:  # a bare word has no suffix, so no backend could open a file of that name anyway
        path = _pick(name, backend)
        if not path.is_file():
            raise ModelFileError(
                f"the bundled pose model {name!r} is missing from the installed package ({path}); reinstall okdhp-edge"
            )
        return path
    path = Path(model)
    if not path.suffix and len(path.parts) == 1 and not path.exists():
        raise ModelFileError(
            f"unknown pose model name {name!r}: bundled models are {', '.join(map(repr, BUNDLED))}; "
            "a path is also accepted (an exported .onnx, .tflite, .engine or .mlpackage, or a .safetensors student)"
        )
    return path


def _pick(name: str, backend: str | None) -> Path:
    """The bundled file of `name` that `backend` reads; with no backend, LiteRT's where it is
    installed (found, not imported), else ONNX Runtime's (a requirement of the runtime itself)."""
    files = [MODELS_DIR / file for file in BUNDLED[name]]
    if backend is None:
        backend = "litert" if any(importlib.util.find_spec(p) for p in LITERT_PACKAGES) else "onnx"
    wanted = backend_name(backend)
    for path in files:
        if backend_for(path) == wanted:
            return path
    raise ModelFileError(
        f"the bundled pose model {name!r} ships as {' and '.join(p.suffix for p in files)} files, which backend "
        f"{backend!r} cannot read; leave backend unset, or export weights/{name} for it (okdhp_edge.export)"
    )
