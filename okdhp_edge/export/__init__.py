"""Export: student -> ONNX / TFLite / Core ML / TensorRT, with metadata, verification and a report.

    from okdhp_edge.export import export
    result = export("runs/x/students/target.safetensors", format="onnx", precision="int8", out_dir="exports")
    result.artifact  # exports/target-int8.onnx  (+ exports/target-int8.onnx.json)
    result.report    # also in exports/export_report.json and export_report.md

CLI: `python -m okdhp_edge.export STUDENT --target cpu --out DIR` (see docs/export.md).
Needs torch (the `export` extra); each format names its own extra when it is missing.
"""

from . import quiet

quiet.install()  # before the converters are imported: some speak at import time

from .api import ExportResult, export, resolve_config  # noqa: E402
from .errors import ConversionError, ExportError, MissingDependencyError  # noqa: E402
from .metadata import SPEC_KEY, read_artifact_spec, read_embedded_spec, sidecar_path  # noqa: E402
from .options import CALIB_METHODS, FORMATS, INT8_SCHEMES, PRECISIONS, ExportConfig  # noqa: E402
from .targets import TARGETS, Target, get_target  # noqa: E402

__all__ = [
    "CALIB_METHODS",
    "ConversionError",
    "ExportConfig",
    "ExportError",
    "ExportResult",
    "FORMATS",
    "INT8_SCHEMES",
    "MissingDependencyError",
    "PRECISIONS",
    "SPEC_KEY",
    "TARGETS",
    "Target",
    "export",
    "get_target",
    "read_artifact_spec",
    "read_embedded_spec",
    "resolve_config",
    "sidecar_path",
]
