"""`export(student, format, precision, ...)`: the pipeline: resolve the config, build (the format's
module), write the metadata, verify, report.

One call turns a student (NAME.safetensors + NAME.json; an okdhp run's FAU ensemble alike) into
`<NAME>-<precision><suffix>` with its sidecar `<artifact>.json`, runs it on held-out crops against
the PyTorch model where this machine can, and records the outcome in `export_report.json` /
`export_report.md` in `out_dir`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..models import StudentFileError, load_student, student_paths
from ..spec import ModelSpec
from . import coreml_export, onnx_export, tensorrt_export, tflite_export
from .calibration import Crops, load_crops, open_held_out
from .errors import ExportError
from .job import Built, Job
from .metadata import artifact_spec, sha256_file, sidecar_path, write_sidecar
from .options import ExportConfig
from .report import update_report
from .targets import get_target
from .verify import verify_artifact

__all__ = ["BUILDERS", "ExportResult", "export", "resolve_config"]

# format -> its build (each format's module owns how its artifact is made and described)
BUILDERS: dict[str, Callable[[Job], Built]] = {
    "onnx": onnx_export.build,
    "tflite": tflite_export.build,
    "coreml": coreml_export.build,
    "tensorrt": tensorrt_export.build,
}


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
        held_out = open_held_out(
            config.calib_data,
            spec,
            config.calib_images,
            config.verify_images,
            config.seed,
            config.cache_dir,
            config.synthetic_images,
            config.calib_split,
        )
    work_dir = Path(tempfile.mkdtemp(prefix=".okdhp-export-", dir=config.out_dir))
    job = Job(config, model, spec, weights.stem, sha256_file(weights), work_dir, held_out)
    try:
        start = time.perf_counter()
        built = BUILDERS[config.format](job)
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
        f"RUN/students/<name>.safetensors, usually the one to deploy: {run / 'students' / 'target.safetensors'}; "
        f"or its FAU ensemble {run / 'ensemble.safetensors'} (an okdhp run writes it; "
        f"`python -m okdhp_edge.train.ensemble {run}` writes it from the checkpoint)"
    )


def _finish(job: Job, built: Built, seconds: float) -> ExportResult:
    config = job.config
    spec = built.spec or artifact_spec(job.spec, built.info)
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
        "device_specific": built.info.device_specific,
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


def _verify(job: Job, path: Path, spec: ModelSpec) -> dict[str, Any]:
    if job.config.verify_images == 0 or job.held_out is None:
        return {"ran": False, "reason": "verification disabled (verify_images=0)"}
    crops: Crops = load_crops(job.held_out.dataset, job.held_out.verify_indices, "NCHW", "verification crops")
    return verify_artifact(
        path, spec, job.model, job.held_out.dataset, crops, metric=job.config.metric, num_threads=job.config.num_threads
    )


def _status(config: ExportConfig, built: Built, verification: dict[str, Any]) -> tuple[str, str | None]:
    if built.extra.get("structure_failures"):
        return "failed", "structural check failed: " + "; ".join(built.extra["structure_failures"])
    if verification.get("error"):
        return "failed", verification["error"]
    drop = verification.get("drop")
    if config.max_drop is not None and verification.get("ran") and drop is None:
        available = sorted(verification.get("torch", {}))
        return "failed", (
            f"max_drop cannot be checked: metric {config.metric!r} is not computed on this data; "
            f"choose one of {available}"
        )
    if config.max_drop is not None and drop is not None and drop > config.max_drop:
        metric = verification["metric"]
        return "failed", (
            f"{metric} dropped by {drop:.2f} points ({verification['torch'][metric]:.2f} -> "
            f"{verification['exported'][metric]:.2f}), more than max_drop={config.max_drop}"
        )
    if built.status:
        return built.status, None
    if not verification.get("ran"):
        return ("structure-checked" if "structure" in built.extra else "not-verified"), None
    return "passed", None


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
