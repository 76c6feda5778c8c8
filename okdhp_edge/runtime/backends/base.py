"""What every backend provides: the spec, the checked input/output tensors, and `run`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ...spec import ExportInfo, ModelSpec
from ..errors import ModelFileError
from ..metadata import TensorInfo, check_io

__all__ = ["Backend"]


class Backend(ABC):
    """One loaded model. `run` takes the normalised float32 batch in the artifact's input layout
    and returns float32 heatmaps in the artifact's output layout; dtype casts and quantization
    are the backend's job, cropping and decoding are the Predictor's.
    """

    name: str = "?"
    # True when one instance may `run` from several threads at once; the Predictor serialises the
    # calls of backends that are not (one TensorRT execution context, one Core ML model).
    thread_safe: bool = False

    def __init__(self, path: Path, spec: ModelSpec, inp: TensorInfo, out: TensorInfo, device: str) -> None:
        self.path = path
        self.spec = spec
        self.info: ExportInfo = spec.export_info
        self.input = inp
        self.output = out
        self.device = device
        self.batch: int | None = check_io(spec, inp, out, path)
        self.max_batch: int | None = self.info.max_batch  # most crops per `run`; None: no limit

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 input batch -> float32 output batch."""

    def describe(self) -> str:
        return f"{self.name} ({self.device})"


def require_file(path: Path, what: str) -> None:
    """Fail early, naming the file, before handing a path to native code."""
    if not path.exists():
        raise ModelFileError(f"{path}: model file not found")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, expected a {what} file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: file is empty (an interrupted copy or export?); re-export the model")
