"""CLI: python -m okdhp_edge.export STUDENT (--format F --precision P | --target T) --out DIR [...]

Exit status: 0 exported (and verified where possible), 1 verification failed (--max-drop
exceeded or a structural check failed; the artifact is kept and marked in the report),
2 the export could not be done (bad option, missing package, conversion error).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from .api import export
from .errors import ConversionError, ExportError, MissingDependencyError
from .options import CALIB_METHODS, FORMATS, INT8_RESIDUALS, INT8_SCHEMES, PRECISIONS, TRT_ROUTES, ExportConfig
from .report import REPORT_JSON, REPORT_MD, markdown_table
from .targets import TARGETS

DEFAULT = {f.name: f.default for f in fields(ExportConfig)}  # the CLI restates none: unset options keep these
# what export() takes: the weights, their spec, the bare stem, or a training checkpoint (which it explains)
STUDENT_SUFFIXES = ("", ".safetensors", ".json", ".pt", ".pth", ".ckpt")


def _parser() -> argparse.ArgumentParser:
    targets = "\n".join(f"  {t.name:<12} {t.format}/{t.precision}: {t.description}" for t in TARGETS.values())
    p = argparse.ArgumentParser(
        prog="python -m okdhp_edge.export",
        description="Convert a trained student into a deployable artifact, verify it against PyTorch, write a report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"targets (--target picks format/precision defaults):\n{targets}",
        argument_default=argparse.SUPPRESS,  # only what the user sets reaches export(); ExportConfig has the defaults
    )
    p.add_argument(
        "student",
        help="student weights NAME.safetensors (its NAME.json spec sits beside it), "
        "or an okdhp run's FAU ensemble RUN/ensemble.safetensors",
    )
    p.add_argument(
        "--format", type=str.lower, default=None, help=f"one of {', '.join(FORMATS)} (default: the target's, else onnx)"
    )
    p.add_argument(
        "--precision",
        type=str.lower,
        default=None,
        help=f"one of {', '.join(PRECISIONS)} (default: the target's, else fp32)",
    )
    p.add_argument("--target", default=None, help=f"one of {', '.join(TARGETS)}")
    p.add_argument("--out", default=str(DEFAULT["out_dir"]), help=f"output folder (default: {DEFAULT['out_dir']})")
    p.add_argument(
        "--calib-data",
        help=f"synthetic | synthetic:DIR | coco:PATH | mpii:PATH, or several joined by '+' (crops drawn from "
        f"each in proportion to its size; verified by PCK) (default {DEFAULT['calib_data']})",
    )
    p.add_argument(
        "--calib-split",
        choices=("val", "train"),
        help=f"the split of --calib-data to calibrate and verify on (default {DEFAULT['calib_split']}; "
        "train keeps a dev/val split for scoring the artifact afterwards)",
    )
    p.add_argument("--calib-images", type=int, help=f"crops for INT8 calibration (default {DEFAULT['calib_images']})")
    p.add_argument(
        "--calib-method",
        choices=CALIB_METHODS,
        help=f"ONNX INT8 activation ranges (default {DEFAULT['calib_method']}: a moving average of each crop's "
        "min/max; docs/export.md compares them)",
    )
    p.add_argument(
        "--int8-scheme",
        choices=INT8_SCHEMES,
        help="auto (qdq for onnx, symmetric for tensorrt) | qdq | symmetric (TensorRT-friendly) | calibrator",
    )
    p.add_argument(
        "--int8-residual",
        choices=INT8_RESIDUALS,
        help="auto = int8 (full-integer: fastest, and what integer-only accelerators need) | float "
        "(sums, pooling, upsampling and pre-activation BatchNorms stay float: a little more "
        "accurate, slower)",
    )
    p.add_argument(
        "--no-equalize",
        dest="equalize",
        action="store_false",
        help="INT8: skip the per-channel activation equalization done before calibration",
    )
    p.add_argument(
        "--verify-images", type=int, help=f"held-out crops to verify on (0: skip; default {DEFAULT['verify_images']})"
    )
    p.add_argument("--max-drop", type=float, help="fail (exit 1) when --metric drops by more than this many points")
    p.add_argument(
        "--metric", help=f"accuracy metric for --max-drop (pck@0.2, ap, pckh@0.5, ...; default {DEFAULT['metric']})"
    )
    p.add_argument("--nhwc", action="store_true", help="NHWC input/output (onnx, tflite)")
    p.add_argument("--image-input", action="store_true", help="Core ML: RGB image input, normalised inside the model")
    p.add_argument(
        "--opset",
        type=int,
        help=f"ONNX opset (default: the target's, else {DEFAULT['opset']}; 13-16 for fp32/fp16 TensorRT 8.2 only)",
    )
    p.add_argument(
        "--max-batch", type=int, help=f"largest batch for Core ML / TensorRT (default {DEFAULT['max_batch']})"
    )
    p.add_argument(
        "--threads",
        dest="num_threads",
        type=int,
        help=f"CPU threads for verification (default {DEFAULT['num_threads']})",
    )
    p.add_argument("--seed", type=int, help=f"seed for the calibration/verification split (default {DEFAULT['seed']})")
    p.add_argument("--cache-dir", help="where generated synthetic data is cached (default: the data module's)")
    p.add_argument(
        "--synthetic-images", type=int, help="size of a generated synthetic val split (default: data module's)"
    )
    p.add_argument(
        "--trt-route",
        choices=TRT_ROUTES,
        help=f"TensorRT: via our ONNX or torch_tensorrt (default {DEFAULT['trt_route']})",
    )
    p.add_argument(
        "--trt-workspace-gb",
        type=float,
        help=f"TensorRT builder workspace in GB (default {DEFAULT['trt_workspace_gb']:g})",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    student, fmt, precision, target, out = (args.pop(k) for k in ("student", "format", "precision", "target", "out"))
    suffix = Path(student).suffix.lower()
    if (
        suffix not in STUDENT_SUFFIXES and not Path(student).is_dir()
    ):  # else the error would name NAME.safetensors, never typed
        print(
            f"error: {student} is not a student checkpoint: expected NAME.safetensors (a student a training run wrote, "
            "RUN/students/<name>.safetensors, with NAME.json beside it) or an okdhp run's RUN/ensemble.safetensors",
            file=sys.stderr,
        )
        return 2
    try:
        result = export(student, fmt, precision, out, target=target, **args)
    except (ExportError, MissingDependencyError, ConversionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = result.report
    print(markdown_table([report]))
    for note in report.get("notes", []):
        print(f"note: {note}")
    print(f"artifact: {result.artifact}  (metadata: {result.sidecar.name})")
    if report.get("trtexec"):
        print(f"build the engine on the device:\n  cd {out} && {report['trtexec']}")
    print(f"report: {out}/{REPORT_JSON}, {out}/{REPORT_MD}")
    if report["status"] == "failed":
        print(f"FAILED: {report['failure']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
