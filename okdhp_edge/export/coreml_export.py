"""The Core ML format: `build(job)` converts the student to an mlprogram (.mlpackage): FP32, FP16,
or FP16 compute with INT8 weights.

The batch axis is flexible (1..max_batch); with `image_input=True` the model takes an RGB image
(batch 1) and normalises inside the graph. Prediction needs macOS: elsewhere the converted model
is checked structurally (inputs, outputs, operators, weight types), and the report says so.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..spec import SPEC_METADATA_KEY, ExportInfo, ModelSpec
from .errors import ExportError, conversion_error, require
from .graph import ImageInput, fold_batchnorm
from .job import Built, Job
from .metadata import artifact_spec

__all__ = ["IMAGE_INPUT_NAME", "INPUT_NAME", "OUTPUT_NAME", "build", "coreml_structure", "export_coreml", "save_coreml"]

INPUT_NAME = "input"
IMAGE_INPUT_NAME = "image"
OUTPUT_NAME = "heatmaps"
QUANTIZED_WEIGHT_OPS = ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale")


def build(job: Job) -> Built:
    """The .mlpackage, its spec embedded as user metadata, checked structurally (prediction needs macOS)."""
    config = job.config
    path = job.path()
    mlmodel = export_coreml(
        job.model, job.spec, config.precision, image_input=config.image_input, max_batch=config.max_batch
    )
    info = job.export_info(
        "coreml",
        config.precision,
        input_name=IMAGE_INPUT_NAME if config.image_input else INPUT_NAME,
        output_name=OUTPUT_NAME,
        input_dtype="uint8" if config.image_input else "float32",
        batch=1 if config.image_input else None,
        max_batch=1 if config.image_input else config.max_batch,
        details={
            "input_kind": "image" if config.image_input else "tensor",
            "compute_precision": "fp32" if config.precision == "fp32" else "fp16",
            "weights": "int8" if config.precision == "int8" else ("fp32" if config.precision == "fp32" else "fp16"),
        },
    )
    spec = artifact_spec(job.spec, info)  # user metadata goes in before the package is written
    save_coreml(mlmodel, spec, path)
    structure = coreml_structure(path)
    failures = _structure_failures(structure, info, config.precision, _count_convs(job.model))
    notes = ["Core ML prediction needs macOS: checked structurally here (I/O, operators, weights, metadata)"]
    if config.image_input:
        notes.append("image input: pass an RGB image (0-255); normalisation runs inside the model")
    return Built(path, info, None, notes, {"structure": structure, "structure_failures": failures}, spec=spec)


def _count_convs(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in fold_batchnorm(model).modules())


def _structure_failures(structure: dict[str, Any], info: ExportInfo, precision: str, convs: int) -> list[str]:
    """The structural checks that stand in for prediction off macOS; returns what failed."""
    failures = []
    if structure["input_name"] != info.input_name or structure["output_name"] != info.output_name:
        failures.append(f"I/O names {structure['input_name']}/{structure['output_name']} differ from the metadata")
    ranges = structure["input"]["ranges"]
    if info.details["input_kind"] == "tensor" and (not ranges or ranges[0] != (1, info.max_batch)):
        failures.append(f"batch range {ranges[:1]} is not (1, {info.max_batch})")
    if structure["conv_ops"] != convs:
        failures.append(f"{structure['conv_ops']} conv ops, the student has {convs} convolutions")
    if precision == "int8" and structure["quantized_weight_ops"] == 0:
        failures.append("no INT8 weight (constexpr dequantize) ops found")
    if SPEC_METADATA_KEY not in structure["user_metadata_keys"]:
        failures.append(f"user metadata {SPEC_METADATA_KEY} missing")
    return failures


def export_coreml(
    model: nn.Module,
    spec: ModelSpec,
    precision: str = "fp16",
    *,
    image_input: bool = False,
    max_batch: int = 32,
) -> Any:
    """Convert and return the (unsaved) MLModel; `save_coreml` writes it once metadata is attached."""
    ct = require("coremltools", "coreml", "Core ML export")
    if precision not in ("fp32", "fp16", "int8"):
        raise ExportError(f"unknown precision {precision!r}; valid: fp32, fp16, int8")
    net = fold_batchnorm(model)
    w, h = spec.input_size
    if image_input:
        net = ImageInput(net, spec.input.mean, spec.input.std).eval()
        ct_input = ct.ImageType(name=IMAGE_INPUT_NAME, shape=(1, 3, h, w), color_layout=ct.colorlayout.RGB)
        example, dynamic = torch.zeros(1, 3, h, w), None
    else:
        ct_input = ct.TensorType(
            name=INPUT_NAME,
            shape=ct.Shape((ct.RangeDim(1, max_batch, default=1), 3, h, w)),
            dtype=np.float32,
        )
        # batch 2 in the example keeps torch.export from specialising the batch axis to 1
        example = torch.zeros(2, 3, h, w)
        dynamic = ({0: torch.export.Dim("batch", min=1, max=max_batch)},)
    try:
        with _quiet():
            program = torch.export.export(net, (example,), dynamic_shapes=dynamic).run_decompositions({})
            mlmodel = ct.convert(
                program,
                convert_to="mlprogram",
                inputs=[ct_input],
                outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
                minimum_deployment_target=ct.target.iOS16,
            )
            if precision == "int8":
                opt = ct.optimize.coreml
                config = opt.OptimizationConfig(
                    global_config=opt.OpLinearQuantizerConfig(
                        mode="linear_symmetric",
                        dtype="int8",
                        granularity="per_channel",
                        weight_threshold=256,
                    )
                )
                mlmodel = opt.linear_quantize_weights(mlmodel, config=config)
    except ExportError:
        raise
    except Exception as err:
        raise conversion_error(f"coreml {precision}", err) from err
    mlmodel.short_description = f"okdhp-edge pose student {spec.name}: heatmaps (N,{spec.skeleton.num_keypoints},h,w)"
    mlmodel.author = "okdhp-edge"
    mlmodel.input_description[IMAGE_INPUT_NAME if image_input else INPUT_NAME] = (
        "RGB image, 0-255" if image_input else "normalised RGB crop from okdhp_edge.preprocess.normalize (NCHW)"
    )
    mlmodel.output_description[OUTPUT_NAME] = "keypoint heatmaps (N, K, H/stride, W/stride)"
    return mlmodel


def save_coreml(mlmodel: Any, spec: ModelSpec, path: str | os.PathLike) -> Path:
    """Attach the spec as user metadata and write the .mlpackage directory (replacing an old one)."""
    path = Path(path)
    mlmodel.user_defined_metadata[SPEC_METADATA_KEY] = spec.to_json()
    tmp = path.with_name(path.stem + ".tmp.mlpackage")  # coremltools insists on the suffix
    shutil.rmtree(tmp, ignore_errors=True)
    with _quiet():
        mlmodel.save(str(tmp))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def coreml_structure(path: str | os.PathLike) -> dict[str, Any]:
    """What can be checked without macOS: I/O names, types and shapes, operators, quantized weights."""
    ct = require("coremltools", "coreml", "Core ML inspection")
    with _quiet():
        model_spec = ct.utils.load_spec(str(path))
    desc = model_spec.description
    main = model_spec.mlProgram.functions["main"]
    ops = Counter(op.type for op in main.block_specializations[main.opset].operations)
    inp = desc.input[0]
    kind = inp.type.WhichOneof("Type")
    if kind == "multiArrayType":
        arr = inp.type.multiArrayType
        ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
        dtype = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(arr.dataType).lower()
        input_info = {"kind": "tensor", "shape": list(arr.shape), "ranges": ranges, "dtype": dtype}
    else:
        img = inp.type.imageType
        input_info = {"kind": "image", "shape": [1, 3, img.height, img.width], "ranges": [], "dtype": "uint8"}
    return {
        "input_name": inp.name,
        "output_name": desc.output[0].name,
        "input": input_info,
        "operators": dict(sorted(ops.items())),
        "quantized_weight_ops": sum(ops[o] for o in QUANTIZED_WEIGHT_OPS),
        "conv_ops": ops.get("conv", 0),
        "user_metadata_keys": sorted(desc.metadata.userDefined.keys()),
        "spec_version": model_spec.specificationVersion,
    }


@contextlib.contextmanager
def _quiet():
    """coremltools prints progress bars and torch-version warnings on every call; keep them out."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
