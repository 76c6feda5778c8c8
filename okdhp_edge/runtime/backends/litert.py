"""LiteRT (TensorFlow Lite) backend for pose students: the per-thread interpreters
(backends/litert_interpreter.py, shared with detectors) plus the student's spec and its output.

With more than one thread (None: a thread per core, where LiteRT's own default is one) a student
gets interpreters of `num_threads` threads for a call that runs whole (one person) and of one
thread for the Predictor's parts of a call that run at once (several people), as the ONNX Runtime
backend does: `invoke` releases the GIL, and whole crops share the cores better than XNNPACK's
split of each short kernel (docs/runtime.md, Benchmark).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...spec import ModelSpec
from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import SPEC_KEY, TensorInfo, load_spec_text, missing_spec_error, read_sidecar
from .base import Backend, require_file
from .litert_interpreter import LiteRTModel, interpreter_class

__all__ = ["LiteRTBackend", "embedded_spec", "read_tflite_metadata"]

FIX = "re-export it with okdhp_edge.export or copy it again"


class LiteRTBackend(Backend):
    name = "litert"
    thread_safe = True  # by one interpreter per thread (LiteRTModel)

    def __init__(self, path: Path, device: str = "auto", num_threads: int | None = None) -> None:
        if device not in ("auto", "cpu"):
            raise BackendUnavailableError(
                f"{path}: the LiteRT backend runs on the CPU with XNNPACK (device='auto' or 'cpu'), not {device!r}: "
                "it exposes no GPU, NNAPI or DSP delegates; export to ONNX or TensorRT for GPUs"
            )
        interpreter_class()  # no LiteRT: say so before reading the file
        require_file(path, "TFLite")
        spec = read_sidecar(path) or embedded_spec(path)
        threads = int(num_threads or os.cpu_count() or 1)
        self.model = LiteRTModel(path, threads, FIX)
        self.part_model = LiteRTModel(path, 1, FIX) if threads > 1 else self.model
        self.parts = threads
        aliases = _signature_aliases(self.model.interpreter())
        wanted = spec.export_info.output_name
        self._output = next(
            (i for i, o in enumerate(self.model.output_details) if wanted in (o["name"], aliases.get(o["index"]))), 0
        )
        out = self.model.output_details[self._output]
        super().__init__(path, spec, _tensor(self.model.input_details, aliases), _tensor(out, aliases), device="cpu")

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.model.run(x, [self._output])[0]

    def run_part(self, x: np.ndarray) -> np.ndarray:
        return self.part_model.run(x, [self._output])[0]

    def describe(self) -> str:
        return self.model.describe()


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
