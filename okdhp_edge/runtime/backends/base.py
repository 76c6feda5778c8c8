"""The two kinds of opened model file: `RawModel` (one image input, every output as float32; what
detectors and teacher models run, and what the ONNX Runtime and LiteRT pose backends wrap) and
`Backend` (a pose student: its spec, the checked input/output tensors, and `run`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ...spec import ExportInfo, ModelSpec
from ..errors import ModelFileError
from ..metadata import TensorInfo, check_io

__all__ = ["Backend", "RawModel", "require_file"]


class RawModel(ABC):
    """One model file opened in its runtime, with no okdhp metadata: one input fed float32 (cast or
    quantised to the file's input type), every output returned as float32. `input_shape` has None
    for free dimensions. Safe to `run` from several threads at once."""

    path: Path
    input_shape: tuple[int | None, ...]
    output_count: int

    @abstractmethod
    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """float32 input batch -> every output, float32, in the file's output order."""


class Backend(ABC):
    """One loaded model. `run` takes the normalised float32 batch in the artifact's input layout
    and returns float32 heatmaps in the artifact's output layout; dtype casts and quantization
    are the backend's job, cropping and decoding are the Predictor's.
    """

    name: str = "?"
    # True when one instance may `run` from several threads at once; the Predictor serialises the
    # calls of backends that are not (one TensorRT execution context, one Core ML model).
    thread_safe: bool = False
    # how many parts the Predictor may cut a call of several crops into, run at once on one thread
    # each through `run_part` (CPU backends with several threads); 1: every call runs whole
    parts: int = 1

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

    def run_part(self, x: np.ndarray) -> np.ndarray:
        """`run` for one of several parts of a call that run at the same time on other threads: a
        backend that spreads one call over the cores runs each part on one core instead."""
        return self.run(x)

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
