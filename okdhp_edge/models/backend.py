"""The runtime's torch backend for `.safetensors` model files (students, FAU ensembles): reference runs.

It lives with the torch code and the runtime's backend registry names it by module path, so
`okdhp_edge.runtime` itself never imports torch or `okdhp_edge.models`. Weights are read with
safetensors (no pickle) by `load_student`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..runtime.backends.base import Backend
from ..runtime.errors import BackendUnavailableError, ModelFileError
from ..runtime.metadata import TensorInfo
from .files import StudentFileError, load_student

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    name = "torch"
    thread_safe = True  # an eval-mode forward under inference_mode changes no module state

    def __init__(self, path: Path, device: str = "auto", num_threads: int | None = None) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {device!r} for torch; valid: auto, cpu, cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(f"{path}: device='cuda' but this torch build sees no CUDA GPU")
        if num_threads:
            torch.set_num_threads(int(num_threads))  # process-wide: torch has no per-model thread pool
        try:
            self.model, spec = load_student(path, device=device)
        except StudentFileError as err:
            raise ModelFileError(str(err)) from None
        self._device = torch.device(device)
        w, h = spec.input_size
        hw, hh = spec.heatmap_size
        k = spec.skeleton.num_keypoints
        inp = TensorInfo("input", (None, 3, h, w), "float32")
        out = TensorInfo("heatmaps", (None, k, hh, hw), "float32")
        super().__init__(path, spec, inp, out, device=device)

    def run(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            y = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self._device))
        return y.float().cpu().numpy()
