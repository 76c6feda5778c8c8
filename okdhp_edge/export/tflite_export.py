"""The TFLite format: `build(job)` converts the student to LiteRT (.tflite) through litert-torch:
FP32, FP16 weights, full-integer INT8.

- fp32: litert_torch.convert of the BatchNorm-folded student.
- fp16: the FP32 file with its convolution weights cast to float16 by ai-edge-quantizer
  (float-casting recipe); GPU delegates run it in FP16, the CPU dequantizes weights once.
- int8: PT2E static quantization (symmetric per-channel weights, int8 activations) on a
  representative data set, converted by litert-torch into an INT8 model whose input and output
  are int8 tensors carrying their own scale and zero point: full-integer, or with the residual
  stream in float (`float_residual`). Activation ranges are a moving average of each calibration
  crop's min/max: the typical range, not the extreme one, which the heavy-tailed activations of
  these students need (PT2E's default HistogramObserver keeps nearly the whole range; the
  measurements are in docs/export.md).
LiteRT models have a fixed batch of 1 (what mobile delegates want).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..spec import ModelSpec
from .errors import ExportError, conversion_error, require
from .graph import prepare_student
from .job import Built, Job
from .metadata import embed_tflite
from .options import CALIB_AVERAGING

__all__ = ["build", "export_tflite", "tflite_io"]


def build(job: Job) -> Built:
    """The .tflite artifact in the config's precision (INT8: calibrated on the job's crops)."""
    config = job.config
    path = job.path()
    model, calibration, details = job.model, None, {}
    if config.precision == "int8":
        model, details = job.int8_model()
        calibration = job.calibration("NHWC" if config.nhwc else "NCHW")
        details["int8_residual"] = config.residual
    export_tflite(
        model,
        job.spec,
        path,
        config.precision,
        nhwc=config.nhwc,
        calibration=calibration,
        float_residual=config.residual == "float",
    )
    io = tflite_io(path)
    details.update({k: io[k] for k in ("output_dtype", "input_quantization", "output_quantization") if k in io})
    if calibration is not None:
        details["calibration"] = {
            "method": "pt2e-moving-average-minmax",
            "images": int(len(calibration)),
            "source": config.calib_data,
            "split": config.calib_split,
        }
    info = job.export_info(
        "tflite",
        config.precision,
        input_name=io["input_name"],
        output_name=io["output_name"],
        input_dtype=io["input_dtype"],
        batch=io["batch"],
        details=details,
    )
    notes = ["LiteRT models have a fixed batch of 1: run crops one at a time"]
    if config.precision == "int8" and config.residual == "int8":
        notes.append("full-integer INT8: int8 input/output tensors carry their own scale and zero point")
    elif config.precision == "int8":
        notes.append("mixed INT8: convolutions in int8, residual stream in float (not for integer-only delegates)")
    return Built(path, info, embed_tflite, notes)


def export_tflite(
    model: nn.Module,
    spec: ModelSpec,
    path: str | os.PathLike,
    precision: str = "fp32",
    *,
    nhwc: bool = False,
    calibration: np.ndarray | None = None,
    float_residual: bool = False,
) -> Path:
    """Convert to `path`; `calibration` (N, input shape) is required for int8.

    `float_residual` (int8 only) leaves the sums, max-pools and depthwise (BatchNorm) convolutions
    unquantized: a mixed model for CPU/GPU delegates instead of a full-integer one."""
    litert_torch = require("litert_torch", "tflite", "TFLite export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = prepare_student(model, nhwc=nhwc)
    w, h = spec.input_size
    example = (torch.zeros((1, h, w, 3) if nhwc else (1, 3, h, w)),)
    tmp = path.with_name(path.name + ".tmp")
    if precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ExportError("TFLite INT8 needs a representative data set: pass calibration crops (calib_images >= 1)")
        edge_model = _convert_int8(litert_torch, net, example, calibration, float_residual)
    elif precision in ("fp32", "fp16"):
        edge_model = _quiet(lambda: litert_torch.convert(net, example), "tflite")
    else:
        raise ExportError(f"unknown precision {precision!r}; valid: fp32, fp16, int8")
    _quiet(lambda: edge_model.export(str(tmp)), "tflite")
    if precision == "fp16":
        _cast_weights_fp16(tmp)
    os.replace(tmp, path)
    return path


def _quiet(fn, fmt: str):
    """Run a converter step, keeping its console chatter out of our progress bars."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            return fn()
    except (ExportError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:
        raise conversion_error(fmt, err) from err


def _convert_int8(
    litert_torch, net: nn.Module, example: tuple[torch.Tensor], calibration: np.ndarray, float_residual: bool = False
):
    pt2e = require("litert_torch.quantize.pt2e_quantizer", "tflite", "TFLite INT8 quantization")
    quant_config = require("litert_torch.quantize.quant_config", "tflite", "TFLite INT8 quantization")
    pt2e_api = require("torchao.quantization.pt2e.quantize_pt2e", "tflite", "TFLite INT8 quantization")
    quantizer = _float_residual_quantizer(pt2e) if float_residual else pt2e.PT2EQuantizer()
    quantizer.set_global(_typical_range_config(pt2e))
    # strict (dynamo) export records which source op each node came from; the quantizer needs that to
    # find the residual adds and max-pools, which non-strict export would leave in float
    graph = _quiet(
        lambda: pt2e_api.prepare_pt2e(torch.export.export(net, example, strict=True).module(), quantizer),
        "tflite int8 (pt2e prepare)",
    )
    with torch.no_grad():
        for crop in tqdm(calibration, desc="calibrating tflite int8", unit="crop", leave=False):
            graph(
                torch.from_numpy(np.ascontiguousarray(crop[None], dtype=np.float32))
            )  # per-crop ranges feed the average
    graph = _quiet(lambda: pt2e_api.convert_pt2e(graph, fold_quantize=False), "tflite int8 (pt2e convert)")
    # the graph was captured from the network in eval mode; say so, or litert_torch warns that it
    # converts a model "in training mode"
    require("torchao.quantization.pt2e", "tflite", "TFLite INT8 quantization").move_exported_model_to_eval(graph)
    config = quant_config.QuantConfig(pt2e_quantizer=quantizer)
    return _quiet(lambda: litert_torch.convert(graph, example, quant_config=config), "tflite int8")


def _typical_range_config(pt2e):
    """The symmetric per-channel config with activation ranges averaged over calibration crops."""
    observer = require("torchao.quantization.pt2e.observer", "tflite", "TFLite INT8 quantization")
    config = pt2e.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    average = observer.MovingAverageMinMaxObserver.with_args(averaging_constant=CALIB_AVERAGING, eps=2**-12)
    activation = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=average)
    return dataclasses.replace(config, input_activation=activation, output_activation=activation)


def _float_residual_quantizer(pt2e):
    """A PT2E quantizer that annotates no sums or max-pools and no depthwise (BatchNorm) conv."""

    def is_depthwise(node) -> bool:
        return node.target == torch.ops.aten.conv2d.default and len(node.args) > 6 and node.args[6] > 1

    class FloatResidualQuantizer(pt2e.PT2EQuantizer):
        STATIC_OPS = [op for op in pt2e.PT2EQuantizer.STATIC_OPS if op not in ("add", "add_relu", "max_pool2d")]

        def _annotate_all_static_patterns(self, model, quantization_config, filter_fn=None):
            def keep(node) -> bool:
                return not is_depthwise(node) and (filter_fn is None or filter_fn(node))

            return super()._annotate_all_static_patterns(model, quantization_config, keep)

    return FloatResidualQuantizer()


def _cast_weights_fp16(path: Path) -> None:
    """Store convolution weights as float16 (half the file), computing in float as before."""
    aeq = require("ai_edge_quantizer", "tflite", "TFLite FP16 conversion")
    quantizer = aeq.Quantizer(str(path))
    quantizer.add_weight_only_config(
        regex=".*",
        operation_name=aeq.qtyping.TFLOperationName.ALL_SUPPORTED,
        num_bits=16,
        algorithm_key=aeq.algorithm_manager.AlgorithmName.FLOAT_CASTING,
    )
    result = _quiet(lambda: quantizer.quantize(enable_progress_report=False), "tflite fp16")
    path.write_bytes(bytes(result.quantized_model))


def tflite_io(path: str | os.PathLike) -> dict[str, object]:
    """Name, dtype, shape and quantization of the model's input and output, as LiteRT reports them."""
    interpreter_mod = require("ai_edge_litert.interpreter", "tflite", "reading TFLite models")
    interpreter = interpreter_mod.Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    info: dict[str, object] = {
        "input_name": inp["name"],
        "output_name": out["name"],
        "input_dtype": np.dtype(inp["dtype"]).name,
        "output_dtype": np.dtype(out["dtype"]).name,
        "batch": int(inp["shape"][0]),
    }
    for role, detail in (("input", inp), ("output", out)):
        scale, zero_point = detail["quantization"]
        if scale:
            info[f"{role}_quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    return info
