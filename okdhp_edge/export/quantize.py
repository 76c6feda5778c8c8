"""Static INT8 quantization of the ONNX student with ONNX Runtime (QDQ, per-channel weights).

Two schemes:
- "qdq": uint8 activations (asymmetric), int8 per-channel weights: the fastest on ONNX
  Runtime's CPU kernels (U8S8 with VNNI).
- "symmetric": int8 activations with zero point 0 and int8 symmetric weights, the explicit
  quantization TensorRT builds INT8 engines from.
With `float_residual`, the residual stream stays float: the skip sums, max-pools, upsamplings and
the pre-activation BatchNorms (1x1 depthwise convolutions after export/graph.py) are left out of
quantization, so every other convolution runs in INT8 on inputs taken after BatchNorm + ReLU, whose
channels BatchNorm has already brought to one scale: a little more accurate, somewhat slower
(measured in docs/export.md).
Calibration "average" (the default) takes a moving average of each crop's min/max (batches of
one crop): the typical range, where minmax takes the extreme one and ONNX Runtime's entropy
method comes close to it; heavy-tailed activations need the typical one (docs/export.md compares
the methods). Dynamic quantization is deliberately absent: it is slower than FP32 on this CNN
(docs/export.md).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from .errors import ExportError, conversion_error, require
from .options import CALIB_AVERAGING

__all__ = ["quantize_onnx", "residual_stream_nodes"]

_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile", "average": "MinMax"}


def quantize_onnx(
    fp32_path: str | os.PathLike,
    dst: str | os.PathLike,
    calibration: np.ndarray,
    *,
    input_name: str,
    method: str = "average",
    scheme: str = "qdq",
    batch_size: int = 8,
    float_residual: bool = False,
    float_nodes: Callable[[Path], list[str]] | None = None,
) -> Path:
    """Calibrate on `calibration` (N, ...) network inputs and write a QDQ INT8 model to `dst`.
    `float_nodes(model_path)` names nodes to keep in float, read from the pre-processed model
    (ONNX Runtime's pre-processing fuses and renames nodes)."""
    quant = require("onnxruntime.quantization", "export", "ONNX INT8 quantization")
    if method not in _METHODS:
        raise ExportError(f"unknown calibration method {method!r}; valid: {', '.join(_METHODS)}")
    if scheme not in ("qdq", "symmetric"):
        raise ExportError(f"unknown int8 scheme {scheme!r}; valid: qdq, symmetric")
    if len(calibration) == 0:
        raise ExportError("INT8 quantization needs calibration images: pass calib_images >= 1")
    dst = Path(dst)
    symmetric = scheme == "symmetric"
    # CalibStridedMinMax=1: ranges/histograms are merged after every batch, so memory stays at one
    # batch of activations instead of all of them (tens of GB for a 2-GMAC student and 128 crops)
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True, "CalibStridedMinMax": 1}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    if method == "average":  # moving average of each crop's min/max: the typical range
        extra.update(CalibMovingAverage=True, CalibMovingAverageConstant=CALIB_AVERAGING)
        batch_size = 1
    with tempfile.TemporaryDirectory(prefix="okdhp-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant.quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        reader = _BatchReader(calibration, input_name, batch_size)
        keep_float = (residual_stream_nodes(prepared) if float_residual else []) + (
            float_nodes(prepared) if float_nodes else []
        )
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the entropy calibrator prints its progress
                quant.quantize_static(
                    str(prepared),
                    str(dst.with_name(dst.name + ".tmp")),
                    reader,
                    quant_format=quant.QuantFormat.QDQ,
                    per_channel=True,
                    reduce_range=False,
                    activation_type=quant.QuantType.QInt8 if symmetric else quant.QuantType.QUInt8,
                    weight_type=quant.QuantType.QInt8,
                    calibrate_method=getattr(quant.CalibrationMethod, _METHODS[method]),
                    extra_options=extra,
                    nodes_to_exclude=keep_float,
                )
        except Exception as err:
            raise conversion_error("onnx int8 (onnxruntime quantize_static)", err) from err
        finally:
            reader.close()
    os.replace(dst.with_name(dst.name + ".tmp"), dst)
    return dst


def residual_stream_nodes(model_path: str | os.PathLike) -> list[str]:
    """Names of the nodes that carry the residual stream: sums, pooling, upsampling, and the
    pre-activation BatchNorms (per-channel 1x1 depthwise convolutions)."""
    onnx = require("onnx", "export", "ONNX INT8 quantization")
    names = []
    for node in onnx.load(str(model_path)).graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type in ("Add", "MaxPool", "Resize") or (node.op_type == "Conv" and group > 1):
            names.append(node.name)
    return names


class _BatchReader:
    """Feeds calibration batches to ONNX Runtime's calibrator with a progress bar."""

    def __init__(self, data: np.ndarray, input_name: str, batch_size: int) -> None:
        self._batches = [data[i : i + batch_size] for i in range(0, len(data), batch_size)]
        self._name = input_name
        self._next = 0
        self._end = len(self._batches)
        self._bar = tqdm(total=len(data), desc="calibrating onnx int8", unit="crop", leave=False)

    def __len__(self) -> int:
        return len(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        """ONNX Runtime's strided calibration feeds the batches in [start, end) at a time."""
        self._next, self._end = start_index, min(end_index, len(self._batches))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        batch = self._batches[self._next]
        self._next += 1
        self._bar.update(len(batch))
        return {self._name: np.ascontiguousarray(batch, dtype=np.float32)}

    def close(self) -> None:
        self._bar.close()
