"""The ONNX format: `build(job)` writes one self-contained ONNX file (dynamic batch) in FP32, FP16
or static INT8 (quantize.py); opset 17+ through torch.export (dynamo), opsets 13-16 (TensorRT 8.2
on a Jetson Nano) through the TorchScript exporter. TensorRT builds its engines from `write_onnx`."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..spec import ExportInfo, ModelSpec
from .errors import ConversionError, conversion_error, require
from .graph import prepare_student
from .job import Built, Job
from .metadata import embed_onnx

__all__ = [
    "DYNAMO_MIN_OPSET",
    "INPUT_NAME",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "build",
    "convert_to_fp16",
    "export_onnx",
    "onnx_info",
    "onnx_io",
    "write_onnx",
]

INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"
MIN_OPSET = 13  # TensorRT 8.2 (JetPack 4.6, Jetson Nano) parses up to opset 13
# Below this the dynamo exporter's down-conversion fails on Shape/Resize and leaves opset 18 in the
# file, so older opsets go through the TorchScript exporter, which writes them natively.
DYNAMO_MIN_OPSET = 17


def build(job: Job) -> Built:
    """The ONNX artifact in the config's precision, with its export section."""
    path = job.path()
    precision = job.config.precision
    details = write_onnx(job, path, precision, job.config.scheme)
    notes = []
    if precision == "fp16":
        notes.append(
            "FP16 weights/compute with float32 I/O; ONNX Runtime's CPU provider runs many FP16 ops via "
            "inserted casts, so FP16 pays off on GPUs, not on CPUs"
        )
    if precision == "int8" and job.config.residual == "float":
        notes.append(
            "INT8 convolutions with the residual stream in float (--int8-residual float): "
            "a little more accurate, slower on ONNX Runtime than full INT8 (docs/export.md)"
        )
    return Built(path, onnx_info(job, path, precision, job.config.scheme, details), embed_onnx, notes)


def write_onnx(job: Job, dst: Path, precision: str, scheme: str) -> dict[str, Any]:
    """Write the ONNX student in `precision` to `dst`; returns the export details to record."""
    from .onnx_rewrite import input_rearrangements, rewrite_for_int8
    from .quantize import quantize_onnx

    config = job.config
    if precision == "fp32":
        export_onnx(job.model, job.spec, dst, opset=config.opset, nhwc=config.nhwc)
        return {"opset": onnx_io(dst)["opset"]}
    if precision == "fp16":
        fp32 = export_onnx(job.model, job.spec, job.work_dir / "fp32.onnx", opset=config.opset, nhwc=config.nhwc)
        convert_to_fp16(fp32, dst)
        return {"opset": onnx_io(dst)["opset"]}
    model, equalization = job.int8_model()
    fp32 = export_onnx(model, job.spec, job.work_dir / "fp32.onnx", opset=config.opset, nhwc=config.nhwc)
    rewrites = rewrite_for_int8(fp32, stem=scheme == "qdq")
    calibration = job.calibration("NHWC" if config.nhwc else "NCHW")
    quantize_onnx(
        fp32,
        dst,
        calibration,
        input_name=onnx_io(fp32)["input_name"],
        method=config.calib_method,
        scheme=scheme,
        float_residual=config.residual == "float",
        float_nodes=input_rearrangements if rewrites.get("space_to_depth_stem") else None,
    )
    return {
        "opset": onnx_io(dst)["opset"],
        "int8_residual": config.residual,
        "graph_rewrites": rewrites,
        **equalization,
        "calibration": {
            "method": config.calib_method,
            "images": int(len(calibration)),
            "source": config.calib_data,
            "split": config.calib_split,
        },
    }


def onnx_info(job: Job, path: Path, precision: str, scheme: str, details: dict[str, Any], **fields: Any) -> ExportInfo:
    """The export section of an ONNX file as written: its I/O read back from the file."""
    io = onnx_io(path)
    return job.export_info(
        "onnx",
        precision,
        input_name=io["input_name"],
        output_name=io["output_name"],
        input_dtype=io["input_dtype"],
        batch=io["batch"],
        int8_scheme=scheme if precision == "int8" else None,
        details=details,
        **fields,
    )


def export_onnx(
    model: nn.Module, spec: ModelSpec, path: str | os.PathLike, *, opset: int = 18, nhwc: bool = False
) -> Path:
    """Write the FP32 student to `path`: BatchNorms folded, batch axis dynamic, weights inline."""
    onnx = require("onnx", "export", "ONNX export")
    require("onnxscript", "export", "ONNX export (torch.onnx dynamo exporter)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = prepare_student(model, nhwc=nhwc)
    w, h = spec.input_size
    example = torch.zeros((2, h, w, 3) if nhwc else (2, 3, h, w))
    if opset < MIN_OPSET:
        raise ConversionError(f"opset {opset} is too old for this exporter: use opset >= {MIN_OPSET}")
    tmp = path.with_name(path.name + ".tmp")
    try:
        if opset >= DYNAMO_MIN_OPSET:
            _dynamo_export(net, example, tmp, opset)
        else:
            _torchscript_export(net, example, tmp, opset)
    except Exception as err:  # the exporters raise many types; name the operator for the user
        raise conversion_error("onnx", err) from err
    model = onnx.load(str(tmp))
    written = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:
        raise ConversionError(
            f"conversion to onnx failed: opset {opset} was asked for but the exporter wrote opset {written}"
        )
    _strip_trace_metadata(model)
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    onnx.checker.check_model(str(path))
    return path


def _dynamo_export(net: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            external_data=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    program.save(str(path), external_data=False)


def _torchscript_export(net: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    """The TorchScript exporter, deprecated by torch in favour of dynamo but the one that writes
    opsets below 17 natively; its deprecation notice is the price of that, not news to the user."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings(
            "ignore", message="You are using the legacy TorchScript-based ONNX export", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore",
            message="The feature will be removed",
            category=DeprecationWarning,
            module=r"torch\.onnx\._internal\.torchscript_exporter",
        )
        torch.onnx.export(
            net,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )


def _strip_trace_metadata(model) -> None:
    """Drop the exporter's per-node stack traces and module paths: they bloat the file
    (docs/export.md) and leak the exporting machine's source paths."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def convert_to_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """FP16 weights and compute with float32 input/output, so the runtime feeds the same tensor."""
    onnx = require("onnx", "export", "ONNX FP16 conversion")
    float16 = require("onnxruntime.transformers.float16", "export", "ONNX FP16 conversion")
    model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _sort_nodes(model.graph)  # the converter appends its boundary Casts at the end of the node list
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)
    onnx.checker.check_model(str(dst))
    return dst


def _sort_nodes(graph) -> None:
    """Reorder graph nodes topologically in place (ONNX requires producers before consumers)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise ConversionError("FP16 conversion produced a graph with a cycle or a dangling input")
        for node in ready:
            available.update(node.output)
        ordered.extend(ready)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)


def onnx_io(path: str | os.PathLike) -> dict[str, object]:
    """Names, dtypes and batch of the graph's single input and output as written in the file."""
    onnx = require("onnx", "export", "reading ONNX models")
    model = onnx.load(str(path), load_external_data=False)
    graph_in, graph_out = model.graph.input[0], model.graph.output[0]
    dim0 = graph_in.type.tensor_type.shape.dim[0]
    return {
        "input_name": graph_in.name,
        "output_name": graph_out.name,
        "input_dtype": onnx.helper.tensor_dtype_to_np_dtype(graph_in.type.tensor_type.elem_type).name,
        "batch": dim0.dim_value if dim0.HasField("dim_value") else None,  # None: dynamic
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
    }
