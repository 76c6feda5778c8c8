"""`export(student, format, precision, ...)`: convert, attach metadata, verify, report.

One call turns a student (NAME.safetensors + NAME.json) into `<NAME>-<precision><suffix>` with
its sidecar `<artifact>.json`, runs it on held-out crops against the PyTorch student where this
machine can, and records the outcome in `export_report.json` / `export_report.md` in `out_dir`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from ..models import StudentFileError, load_student, student_paths
from ..spec import ModelSpec
from .calibration import Crops, HeldOut, load_crops, open_held_out
from .equalize import equalize_activations
from .errors import ExportError
from .graph import fold_batchnorm
from .metadata import artifact_spec, embed_onnx, embed_tflite, sha256_file, sidecar_path, write_sidecar
from .options import SUFFIXES, ExportConfig
from .report import update_report
from .targets import get_target
from .verify import verify_artifact

__all__ = ["ExportResult", "export", "resolve_config"]


@dataclass
class ExportResult:
    """The artifact written (for a deferred TensorRT build: the ONNX to build it from) and its report."""

    artifact: Path
    report: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.report["status"] != "failed"

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.artifact)


@dataclass
class _Built:
    """What a format handler produced: the file to verify and the metadata describing it."""

    path: Path
    fields: dict[str, Any]
    embed: Callable[[Path, ModelSpec], Any] | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    status: str | None = None  # "deferred" when the real artifact is built elsewhere
    spec: ModelSpec | None = None  # set when the handler had to embed the spec while writing


@dataclass
class _Job:
    config: ExportConfig
    model: nn.Module
    spec: ModelSpec
    name: str
    source_sha256: str
    work_dir: Path
    held_out: HeldOut | None
    _calibration: np.ndarray | None = None

    def calibration(self, layout: str = "NCHW") -> np.ndarray:
        """The calibration crops (loaded once) in `layout`."""
        if self.held_out is None:
            raise ExportError("INT8 export needs calibration data (calib_data)")
        if self._calibration is None:
            self._calibration = load_crops(self.held_out.dataset, self.held_out.calib_indices, "NCHW", "calibration crops").images
        return np.ascontiguousarray(self._calibration.transpose(0, 2, 3, 1)) if layout.upper() == "NHWC" else self._calibration

    def int8_model(self) -> tuple[nn.Module, dict[str, Any]]:
        """The student as INT8 calibration should see it: BatchNorms folded and, unless turned off,
        activation channels equalized on the calibration crops; plus what to report about it."""
        if not self.config.equalize:
            return self.model, {"equalized": False}
        model = fold_batchnorm(self.model)
        result = equalize_activations(model, self.calibration("NCHW"))
        return model, {"equalized": True, "equalization": result.to_dict()}

    def path(self, precision: str | None = None, suffix: str | None = None, tag: str = "") -> Path:
        precision = precision or self.config.precision
        return self.config.out_dir / f"{self.name}-{precision}{tag}{suffix or SUFFIXES[self.config.format]}"

    def base_fields(self, fmt: str, precision: str, **io: Any) -> dict[str, Any]:
        layout = "NHWC" if self.config.nhwc else "NCHW"
        return {
            "format": fmt, "precision": precision, "input_layout": layout, "output_layout": layout,
            "input_dtype": "float32", "batch": "dynamic", "source_sha256": self.source_sha256,
            "device_specific": False, **io,
        }


def resolve_config(
    format: str | None = None,
    precision: str | None = None,
    out_dir: str | os.PathLike = "exports",
    target: str | None = None,
    **options: Any,
) -> ExportConfig:
    """An ExportConfig from explicit choices, falling back to the target's defaults, then onnx/fp32."""
    valid = set(ExportConfig.option_names()) - {"format", "precision", "out_dir"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ExportError(f"unknown export option(s) {unknown}; valid: {', '.join(sorted(valid))}")
    if target is not None:
        t = get_target(target)
        format = format or t.format
        precision = precision or t.precision
        if format == t.format:
            options.setdefault("nhwc", t.nhwc)
            options.setdefault("int8_scheme", t.int8_scheme)
            options.setdefault("opset", t.opset)
            options.setdefault("trt_version", t.trt_version)
    return ExportConfig(format=format or "onnx", precision=precision or "fp32", out_dir=Path(out_dir), **options)


def export(
    student_path: str | os.PathLike,
    format: str | None = None,
    precision: str | None = None,
    out_dir: str | os.PathLike = "exports",
    *,
    target: str | None = None,
    **options: Any,
) -> ExportResult:
    """Export a student; options are ExportConfig fields (calib_data, verify_images, max_drop, ...).

    The artifact is named after the student file: `students/x.safetensors` -> `x-int8.onnx`.
    A failed accuracy check (max_drop) keeps the artifact and marks the report "failed".
    """
    config = resolve_config(format, precision, out_dir, target, **options)
    weights, _ = student_paths(_student_file(Path(student_path)))
    try:
        model, spec = load_student(weights)
    except StudentFileError as err:
        raise ExportError(str(err)) from None
    config.out_dir.mkdir(parents=True, exist_ok=True)
    needs_data = config.precision == "int8" or config.verify_images > 0
    held_out = None
    if needs_data:
        held_out = open_held_out(config.calib_data, spec, config.calib_images, config.verify_images,
                                 config.seed, config.cache_dir, config.synthetic_images)
    work_dir = Path(tempfile.mkdtemp(prefix=".okdhp-export-", dir=config.out_dir))
    job = _Job(config, model, spec, weights.stem, sha256_file(weights), work_dir, held_out)
    try:
        start = time.perf_counter()
        built = _HANDLERS[config.format](job)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if target is not None and config.format == get_target(target).format:
        built.notes.extend(get_target(target).notes)
    return _finish(job, built, seconds)


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def _student_file(path: Path) -> Path:
    """`path` unless it is a training checkpoint or run directory: those hold the whole multi-branch
    net and optimizer state, while an export takes one student, which training writes separately."""
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        run, what = path.parent, "a training checkpoint"
    elif path.is_dir():
        run, what = (path.parent if path.name == "students" else path), "a directory"
    else:
        return path
    raise ExportError(
        f"{path} is {what}, not a student: export one of the students the training run wrote, "
        f"RUN/students/<name>.safetensors, usually the one to deploy: {run / 'students' / 'target.safetensors'}"
    )


def _finish(job: _Job, built: _Built, seconds: float) -> ExportResult:
    config = job.config
    spec = built.spec or artifact_spec(job.spec, **built.fields)
    write_sidecar(built.path, spec)
    embedded = True
    if built.embed is not None:
        embedded = built.embed(built.path, spec) is not False
    report: dict[str, Any] = {
        "artifact": built.extra.pop("artifact_name", built.path.name),
        "path": str(built.path),
        "format": config.format,
        "precision": config.precision,
        "size_bytes": _size(built.path),
        "conversion_seconds": round(seconds, 2),
        "sidecar": sidecar_path(built.path).name,
        "spec_embedded": embedded,
        "device_specific": bool(built.fields.get("device_specific")),
        "notes": list(built.notes),
        **built.extra,
    }
    if job.held_out is not None:
        report["data"] = job.held_out.describe()
    report["verification"] = _verify(job, built.path, spec)
    report["status"], failure = _status(config, built, report["verification"])
    if failure:
        report["failure"] = failure
    if config.max_drop is not None:
        report["max_drop"] = config.max_drop
    update_report(config.out_dir, report)
    return ExportResult(built.path, report)


def _verify(job: _Job, path: Path, spec: ModelSpec) -> dict[str, Any]:
    if job.config.verify_images == 0 or job.held_out is None:
        return {"ran": False, "reason": "verification disabled (verify_images=0)"}
    crops: Crops = load_crops(job.held_out.dataset, job.held_out.verify_indices, "NCHW", "verification crops")
    return verify_artifact(path, spec, job.model, job.held_out.dataset, crops,
                           metric=job.config.metric, num_threads=job.config.num_threads)


def _status(config: ExportConfig, built: _Built, verification: dict[str, Any]) -> tuple[str, str | None]:
    if built.extra.get("structure_failures"):
        return "failed", "structural check failed: " + "; ".join(built.extra["structure_failures"])
    if verification.get("error"):
        return "failed", verification["error"]
    drop = verification.get("drop")
    if config.max_drop is not None and verification.get("ran") and drop is None:
        available = sorted(verification.get("torch", {}))
        return "failed", (f"max_drop cannot be checked: metric {config.metric!r} is not computed on this data; "
                          f"choose one of {available}")
    if config.max_drop is not None and drop is not None and drop > config.max_drop:
        metric = verification["metric"]
        return "failed", (f"{metric} dropped by {drop:.2f} points ({verification['torch'][metric]:.2f} -> "
                          f"{verification['exported'][metric]:.2f}), more than max_drop={config.max_drop}")
    if built.status:
        return built.status, None
    if not verification.get("ran"):
        return ("structure-checked" if "structure" in built.extra else "not-verified"), None
    return "passed", None


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


# --- format handlers -------------------------------------------------------------------------

def _onnx_model(job: _Job, dst: Path, precision: str, scheme: str) -> dict[str, Any]:
    """Write the ONNX student in `precision` to `dst`; returns extra export metadata."""
    from .onnx_export import convert_to_fp16, export_onnx, onnx_io
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
    calibration = job.calibration("NHWC" if config.nhwc else "NCHW")
    float_residual = config.residual == "float"
    quantize_onnx(fp32, dst, calibration, input_name=onnx_io(fp32)["input_name"],
                  method=config.calib_method, scheme=scheme, float_residual=float_residual)
    return {"opset": onnx_io(dst)["opset"], "int8_scheme": scheme, "int8_residual": config.residual, **equalization,
            "calibration": {"method": config.calib_method, "images": int(len(calibration)), "source": config.calib_data}}


def _export_onnx(job: _Job) -> _Built:
    from .onnx_export import onnx_io

    path = job.path()
    extra = _onnx_model(job, path, job.config.precision, job.config.scheme)
    io = onnx_io(path)
    fields_ = job.base_fields("onnx", job.config.precision, input_name=io["input_name"], output_name=io["output_name"],
                              input_dtype=io["input_dtype"], batch=io["batch"], **extra)
    notes = []
    if job.config.precision == "fp16":
        notes.append("FP16 weights/compute with float32 I/O; ONNX Runtime's CPU provider runs many FP16 ops via "
                     "inserted casts, so FP16 pays off on GPUs, not here")
    if job.config.precision == "int8" and job.config.residual == "float":
        notes.append("INT8 convolutions with the residual stream in float (--int8-residual float): "
                     "a little more accurate, 15-35 % slower on ONNX Runtime than full INT8")
    return _Built(path, fields_, embed_onnx, notes)


def _export_tflite(job: _Job) -> _Built:
    from .tflite_export import export_tflite, tflite_io

    config = job.config
    path = job.path()
    model, calibration, extra = job.model, None, {}
    if config.precision == "int8":
        model, extra = job.int8_model()
        calibration = job.calibration("NHWC" if config.nhwc else "NCHW")
        extra["int8_residual"] = config.residual
    export_tflite(model, job.spec, path, config.precision, nhwc=config.nhwc, calibration=calibration,
                  float_residual=config.residual == "float")
    io = tflite_io(path)
    extra.update({k: io[k] for k in ("output_dtype", "input_quantization", "output_quantization") if k in io})
    if calibration is not None:
        extra["calibration"] = {"method": "pt2e-moving-average-minmax", "images": int(len(calibration)), "source": config.calib_data}
    fields_ = job.base_fields("tflite", config.precision, input_name=io["input_name"], output_name=io["output_name"],
                              input_dtype=io["input_dtype"], batch=io["batch"], **extra)
    notes = ["LiteRT models have a fixed batch of 1: run crops one at a time"]
    if config.precision == "int8" and config.residual == "int8":
        notes.append("full-integer INT8: int8 input/output tensors carry their own scale and zero point")
    elif config.precision == "int8":
        notes.append("mixed INT8: convolutions in int8, residual stream in float (not for integer-only delegates)")
    return _Built(path, fields_, embed_tflite, notes)


def _export_coreml(job: _Job) -> _Built:
    from .coreml_export import IMAGE_INPUT_NAME, INPUT_NAME, OUTPUT_NAME, coreml_structure, export_coreml, save_coreml

    config = job.config
    path = job.path()
    mlmodel = export_coreml(job.model, job.spec, config.precision, image_input=config.image_input, max_batch=config.max_batch)
    fields_ = job.base_fields(
        "coreml", config.precision,
        input_name=IMAGE_INPUT_NAME if config.image_input else INPUT_NAME, output_name=OUTPUT_NAME,
        input_dtype="uint8" if config.image_input else "float32",
        batch=1 if config.image_input else "dynamic",
        input_kind="image" if config.image_input else "tensor",
        max_batch=1 if config.image_input else config.max_batch,
        compute_precision="fp32" if config.precision == "fp32" else "fp16",
        weights="int8" if config.precision == "int8" else ("fp32" if config.precision == "fp32" else "fp16"),
    )
    spec = artifact_spec(job.spec, **fields_)  # user metadata goes in before the package is written
    save_coreml(mlmodel, spec, path)
    structure = coreml_structure(path)
    failures = _coreml_checks(structure, fields_, config, _count_convs(job.model))
    notes = ["Core ML prediction needs macOS: checked structurally here (I/O, operators, weights, metadata)"]
    if config.image_input:
        notes.append("image input: pass an RGB image (0-255); normalisation runs inside the model")
    return _Built(path, fields_, None, notes, {"structure": structure, "structure_failures": failures}, spec=spec)


def _count_convs(model: nn.Module) -> int:
    from .graph import fold_batchnorm

    return sum(isinstance(m, nn.Conv2d) for m in fold_batchnorm(model).modules())


def _coreml_checks(structure: dict[str, Any], fields_: dict[str, Any], config: ExportConfig, convs: int) -> list[str]:
    """The structural checks that stand in for prediction off macOS; returns what failed."""
    failures = []
    if structure["input_name"] != fields_["input_name"] or structure["output_name"] != fields_["output_name"]:
        failures.append(f"I/O names {structure['input_name']}/{structure['output_name']} differ from the metadata")
    if not config.image_input and (not structure["input"]["ranges"] or structure["input"]["ranges"][0] != (1, config.max_batch)):
        failures.append(f"batch range {structure['input']['ranges'][:1]} is not (1, {config.max_batch})")
    if structure["conv_ops"] != convs:
        failures.append(f"{structure['conv_ops']} conv ops, the student has {convs} convolutions")
    if config.precision == "int8" and structure["quantized_weight_ops"] == 0:
        failures.append("no INT8 weight (constexpr dequantize) ops found")
    if "okdhp_spec" not in structure["user_metadata_keys"]:
        failures.append("user metadata okdhp_spec missing")
    return failures


def _export_tensorrt(job: _Job) -> _Built:
    from .onnx_export import onnx_io
    from .tensorrt_export import (
        build_engine, calibration_cache_path, compile_with_torch_tensorrt, engine_io_names, tensorrt_available,
        trtexec_command,
    )

    config = job.config
    engine = job.path()
    engine_fields = job.base_fields("tensorrt", config.precision, batch="dynamic", max_batch=config.max_batch,
                                    device_specific=True)
    notes = ["TensorRT engines are device-specific: build on (and for) the GPU and TensorRT version that runs them"]
    if config.trt_route == "torch_tensorrt":
        compile_with_torch_tensorrt(job.model, job.spec, engine, config.precision,
                                    max_batch=config.max_batch, workspace_gb=config.trt_workspace_gb)
        inp, out = engine_io_names(engine)
        return _Built(engine, {**engine_fields, "input_name": inp, "output_name": out, "route": "torch_tensorrt"}, None, notes)
    scheme = config.scheme
    source_precision = "int8" if config.precision == "int8" and scheme == "symmetric" else "fp32"
    if scheme == "calibrator" and config.precision == "int8" and not tensorrt_available():
        raise ExportError("int8_scheme='calibrator' runs TensorRT's calibrator and needs the tensorrt package here; "
                          "without it use int8_scheme='symmetric' (QDQ ONNX + trtexec command)")
    onnx_path = job.path(config.precision, ".onnx", tag="-trt")
    onnx_extra = _onnx_model(job, onnx_path, source_precision, "symmetric")
    io = onnx_io(onnx_path)
    onnx_fields = job.base_fields("onnx", source_precision, input_name=io["input_name"], output_name=io["output_name"],
                                  batch=io["batch"], max_batch=config.max_batch,
                                  purpose=f"TensorRT {config.precision} engine source", **onnx_extra)
    engine_fields.update(input_name=io["input_name"], output_name=io["output_name"], route="onnx",
                         onnx_source=onnx_path.name, **{k: v for k, v in onnx_extra.items() if k != "opset"})
    command = trtexec_command(onnx_path, engine, job.spec, config.precision, input_name=io["input_name"],
                              max_batch=config.max_batch, workspace_gb=config.trt_workspace_gb, trt_version=config.trt_version)
    engine_fields["build_command"] = command
    if not tensorrt_available():
        # the engine's sidecar is written now, so the engine trtexec builds is ready for the runtime
        write_sidecar(engine, artifact_spec(job.spec, **engine_fields))
        notes.append("tensorrt is not importable here: build the engine on the device with the trtexec command; "
                     "verification ran the ONNX TensorRT builds from on ONNX Runtime CPU")
        extra = {"artifact_name": engine.name, "engine": str(engine), "engine_sidecar": sidecar_path(engine).name,
                 "onnx_source": onnx_path.name, "trtexec": command, "device_specific": True}
        return _Built(onnx_path, onnx_fields, embed_onnx, notes, extra, status="deferred")
    write_sidecar(onnx_path, artifact_spec(job.spec, **onnx_fields))
    embed_onnx(onnx_path, artifact_spec(job.spec, **onnx_fields))
    calibration = job.calibration() if config.precision == "int8" and scheme == "calibrator" else None
    cache = None if calibration is None else calibration_cache_path(engine, job.source_sha256, calibration)
    build_engine(onnx_path, engine, job.spec, config.precision, input_name=io["input_name"], max_batch=config.max_batch,
                 workspace_gb=config.trt_workspace_gb, calibration=calibration, calibration_cache=cache)
    return _Built(engine, engine_fields, None, notes, {"onnx_source": onnx_path.name, "trtexec": command})


_HANDLERS: dict[str, Callable[[_Job], _Built]] = {
    "onnx": _export_onnx,
    "tflite": _export_tflite,
    "coreml": _export_coreml,
    "tensorrt": _export_tensorrt,
}

