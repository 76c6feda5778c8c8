"""Pose students that travel inside the package, opened by name: `Predictor("real-tiny")`.

A device that installs the runtime wheel has no checkout of the repository, so the student the
README runs must be package data (okdhp_edge/runtime/models/, like the person detector in
runtime/detectors/). Each is an exported runtime file with its metadata sidecar; the training-side
files (weights, recipe, export report) stay in the repository's weights/NAME/ folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelFileError

__all__ = ["DEFAULT_POSE_MODEL", "MODELS_DIR", "bundled_models", "resolve_pose_model"]

MODELS_DIR = Path(__file__).parent / "models"
# name -> file in MODELS_DIR; weights/NAME/ in the repository holds how each was made
BUNDLED = {
    "real-tiny": "real-tiny-int8.onnx",  # 0.117-GMAC student, INT8 ONNX, 0.86 MB
    "real-tiny-1x32": "real-tiny-1x32-int8.onnx",  # its 0.051-GMAC sibling (0.44x), 0.42 MB
}
DEFAULT_POSE_MODEL = "real-tiny"


def bundled_models() -> dict[str, Path]:
    """The pose students shipped in the package: name -> runtime file (its `.json` sidecar beside it)."""
    return {name: MODELS_DIR / file for name, file in BUNDLED.items()}


def resolve_pose_model(model: str | os.PathLike) -> Path:
    """The file for Predictor's `model_path`: a bundled name, or a path taken as it is.

    A bare word that is neither a bundled name nor an existing file is an error that lists the
    names, instead of the backend's "unknown model type '(no suffix)'".
    """
    name = os.fspath(model)
    if name in BUNDLED:  # a bare word has no suffix, so no backend could open a file of that name anyway
        path = bundled_models()[name]
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
