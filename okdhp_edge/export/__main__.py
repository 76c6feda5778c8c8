"""CLI: python -m okdhp_edge.export STUDENT (--format F --precision P | --target T) --out DIR [...]

Exit status: 0 exported (and verified where possible), 1 verification failed (--max-drop
exceeded or a structural check failed; the artifact is kept and marked in the report),
2 the export could not be done (bad option, missing package, conversion error).
"""
from __future__ import annotations

import argparse
import sys

from .api import export
from .errors import ConversionError, ExportError, MissingDependencyError
from .options import CALIB_METHODS, FORMATS, INT8_RESIDUALS, INT8_SCHEMES, PRECISIONS, TRT_ROUTES
from .report import REPORT_JSON, REPORT_MD, markdown_table
from .targets import TARGETS


def _parser() -> argparse.ArgumentParser:
    targets = "\n".join(f"  {t.name:<12} {t.format}/{t.precision}: {t.description}" for t in TARGETS.values())
    p = argparse.ArgumentParser(
        prog="python -m okdhp_edge.export",
        description="Convert a trained student into a deployable artifact, verify it against PyTorch, write a report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"targets (--target picks format/precision defaults):\n{targets}",
    )
    p.add_argument("student", help="student weights NAME.safetensors (its NAME.json spec sits beside it)")
    p.add_argument("--format", type=str.lower, help=f"one of {', '.join(FORMATS)} (default: the target's, else onnx)")
    p.add_argument("--precision", type=str.lower, help=f"one of {', '.join(PRECISIONS)} (default: the target's, else fp32)")
    p.add_argument("--target", help=f"one of {', '.join(TARGETS)}")
    p.add_argument("--out", default="exports", help="output folder (default: exports)")
    p.add_argument("--calib-data", default="synthetic", help="synthetic | synthetic:DIR | coco:PATH | mpii:PATH (val split)")
    p.add_argument("--calib-images", type=int, default=128, help="crops for INT8 calibration (default 128)")
    p.add_argument("--calib-method", default="average", choices=CALIB_METHODS,
                   help="ONNX INT8 activation ranges: average (default: moving average of each crop's min/max, "
                        "the only method that lost no accuracy on our students), minmax, entropy, percentile")
    p.add_argument("--int8-scheme", default="auto", choices=INT8_SCHEMES,
                   help="auto (qdq for onnx, symmetric for tensorrt) | qdq | symmetric (TensorRT-friendly) | calibrator")
    p.add_argument("--int8-residual", default="auto", choices=INT8_RESIDUALS,
                   help="auto = int8 (full-integer: fastest, and what integer-only accelerators need) | float "
                        "(sums, pooling, upsampling and pre-activation BatchNorms stay float: a little more "
                        "accurate, 15-35%% slower on ONNX Runtime)")
    p.add_argument("--no-equalize", dest="equalize", action="store_false",
                   help="INT8: skip the per-channel activation equalization done before calibration")
    p.add_argument("--verify-images", type=int, default=64, help="held-out crops to verify on (0: skip; default 64)")
    p.add_argument("--max-drop", type=float, help="fail (exit 1) when --metric drops by more than this many points")
    p.add_argument("--metric", default="pck@0.2", help="accuracy metric for --max-drop (pck@0.2, ap, pckh@0.5, ...)")
    p.add_argument("--nhwc", action="store_true", default=None, help="NHWC input/output (onnx, tflite)")
    p.add_argument("--image-input", action="store_true", help="Core ML: RGB image input, normalised inside the model")
    p.add_argument("--opset", type=int,
                   help="ONNX opset (default: the target's, else 18; 13-16 for fp32/fp16 TensorRT 8.2 only)")
    p.add_argument("--max-batch", type=int, default=32, help="largest batch for Core ML / TensorRT (default 32)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for verification (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for the calibration/verification split")
    p.add_argument("--cache-dir", help="where generated synthetic data is cached (default: the data module's)")
    p.add_argument("--synthetic-images", type=int, help="size of a generated synthetic val split (default: data module's)")
    p.add_argument("--trt-route", default="onnx", choices=TRT_ROUTES, help="TensorRT: via our ONNX (default) or torch_tensorrt")
    p.add_argument("--trt-workspace-gb", type=float, default=2.0, help="TensorRT builder workspace (default 2 GB)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = dict(
        calib_data=args.calib_data, calib_images=args.calib_images, calib_method=args.calib_method,
        int8_scheme=args.int8_scheme, int8_residual=args.int8_residual, equalize=args.equalize,
        verify_images=args.verify_images, max_drop=args.max_drop, metric=args.metric,
        image_input=args.image_input, max_batch=args.max_batch, num_threads=args.threads,
        seed=args.seed, synthetic_images=args.synthetic_images, cache_dir=args.cache_dir, trt_route=args.trt_route,
        trt_workspace_gb=args.trt_workspace_gb,
    )
    if args.nhwc is not None:
        options["nhwc"] = True
    if args.opset is not None:
        options["opset"] = args.opset
    try:
        result = export(args.student, args.format, args.precision, args.out, target=args.target, **options)
    except (ExportError, MissingDependencyError, ConversionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = result.report
    print(markdown_table([report]))
    for note in report.get("notes", []):
        print(f"note: {note}")
    print(f"artifact: {result.artifact}  (metadata: {result.sidecar.name})")
    if report.get("trtexec"):
        print(f"build the engine on the device:\n  cd {args.out} && {report['trtexec']}")
    print(f"report: {args.out}/{REPORT_JSON}, {args.out}/{REPORT_MD}")
    if report["status"] == "failed":
        print(f"FAILED: {report['failure']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
