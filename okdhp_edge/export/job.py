"""What the export pipeline hands a format's `build(job)`, and what `build` hands back.

A `Job` is one student being exported under one `ExportConfig`, with the calibration crops
loaded on first use; a `Built` is the file the format wrote and its export section. Each format
module (onnx_export, tflite_export, coreml_export, tensorrt_export) has a `build(job) -> Built`;
the pipeline in api.py writes the metadata, verifies and reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from ..spec import ExportInfo, ModelSpec
from .calibration import HeldOut, load_crops
from .equalize import equalize_activations
from .errors import ExportError
from .graph import fold_batchnorm
from .options import SUFFIXES, ExportConfig

__all__ = ["Built", "Job"]


@dataclass
class Built:
    """What a format's build produced: the file to verify and the export section describing it."""

    path: Path
    info: ExportInfo
    embed: Callable[[Path, ModelSpec], Any] | None = None  # copies the spec into the file; False: it could not
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # report fields of this format
    status: str | None = None  # "deferred" when the real artifact is built elsewhere
    spec: ModelSpec | None = None  # set when the build had to embed the spec while writing


@dataclass
class Job:
    """One student exported under one config."""

    config: ExportConfig
    model: nn.Module
    spec: ModelSpec
    name: str
    source_sha256: str
    work_dir: Path  # scratch space, removed after the build
    held_out: HeldOut | None
    _calibration: np.ndarray | None = None

    def calibration(self, layout: str = "NCHW") -> np.ndarray:
        """The calibration crops (loaded once) in `layout`."""
        if self.held_out is None:
            raise ExportError("INT8 export needs calibration data (calib_data)")
        if self._calibration is None:
            self._calibration = load_crops(
                self.held_out.dataset, self.held_out.calib_indices, "NCHW", "calibration crops"
            ).images
        return (
            np.ascontiguousarray(self._calibration.transpose(0, 2, 3, 1))
            if layout.upper() == "NHWC"
            else self._calibration
        )

    def int8_model(self) -> tuple[nn.Module, dict[str, Any]]:
        """The student as INT8 calibration should see it: BatchNorms folded and, unless turned off,
        activation channels equalized on the calibration crops; plus the export details about it."""
        if not self.config.equalize:
            return self.model, {"equalized": False}
        model = fold_batchnorm(self.model)
        result = equalize_activations(model, self.calibration("NCHW"))
        return model, {"equalized": True, "equalization": result.to_dict()}

    def path(self, precision: str | None = None, suffix: str | None = None, tag: str = "") -> Path:
        precision = precision or self.config.precision
        return self.config.out_dir / f"{self.name}-{precision}{tag}{suffix or SUFFIXES[self.config.format]}"

    def export_info(self, fmt: str, precision: str, **fields: Any) -> ExportInfo:
        """The artifact's export section: the layouts this config asks for, the student's hash, `fields`."""
        layout = "NHWC" if self.config.nhwc else "NCHW"
        return ExportInfo(
            format=fmt,
            precision=precision,
            input_layout=layout,
            output_layout=layout,
            source_sha256=self.source_sha256,
            **fields,
        )
