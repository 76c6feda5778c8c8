"""The detector's runtime files: ONNX in YOLOv8's output layout, FP32 and static INT8, each checked
through `okdhp_edge.runtime.Detector` against the torch network on the calibration frames.

INT8 covers the convolutions; the decoding tail (sigmoid, peak test, exp, the grid) stays float,
since one uint8 scale cannot hold pixel coordinates and scores in [0, 1] together.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import torch

from ..boxes import iou_matrix
from ..export.errors import ConversionError, require
from ..export.quantize import quantize_onnx
from ..runtime import Detector
from ..runtime.detectors.yolo import decode, letterbox
from ..spec import write_json_atomic
from .data import labelled_frames, synthetic_frames
from .net import V8Export
from .weights import load_detector

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "export_detector", "float_tail_nodes", "main"]

INPUT_NAME, OUTPUT_NAME = "images", "output0"  # the names Ultralytics exports use
OPSET = 18
CALIBRATION_FRAMES = 64
MATCH_IOU = 0.7  # a runtime box "matches" torch's when it overlaps this much


def float_tail_nodes(model_path: Path) -> list[str]:
    """Nodes with no convolution downstream: the decoding after the heads."""
    onnx = require("onnx", "export", "ONNX INT8 quantization")
    graph = onnx.load(str(model_path)).graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    feeds_conv: dict[str, bool] = {}

    def reaches_conv(node) -> bool:
        if node.name not in feeds_conv:
            feeds_conv[node.name] = any(
                c.op_type == "Conv" or reaches_conv(c) for out in node.output for c in consumers.get(out, [])
            )
        return feeds_conv[node.name]

    return [n.name for n in graph.node if n.op_type != "Conv" and not reaches_conv(n)]


def _write_fp32(net: torch.nn.Module, path: Path, width: int, height: int) -> Path:
    require("onnxscript", "export", "ONNX export (torch.onnx dynamo exporter)")
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        program = torch.onnx.export(
            V8Export(net).eval(),
            (torch.zeros(1, 3, height, width),),
            dynamo=True,
            external_data=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
        )
    program.save(str(tmp), external_data=False)
    os.replace(tmp, path)
    return path


def _calibration(record: dict, sources: list[str], real_first: int | None) -> np.ndarray:
    """Letterboxed RGB frames in [0, 1], (N, 3, H, W): the training's own real frames when it had
    any (spread over them), else synthetic scenes."""
    spec = record["spec"]
    width, height = spec["width"], spec["height"]
    frames = [f.image for f in labelled_frames(sources, width, height, first=real_first, spread=CALIBRATION_FRAMES)]
    if not frames:
        frames = [f.image for f in synthetic_frames(CALIBRATION_FRAMES, width, height, seed=12345)]
    batch = np.stack([letterbox(f, width, height)[0][..., ::-1] for f in frames]).astype(np.float32) / 255.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def _check(path: Path, net: torch.nn.Module, calibration: np.ndarray) -> dict:
    """Share of torch's boxes (score >= the runtime's threshold) that the file finds again."""
    detector = Detector(path, num_threads=2)
    export = V8Export(net).eval()
    found = matched = 0
    for x in calibration:
        image = np.ascontiguousarray((x.transpose(1, 2, 0)[..., ::-1] * 255).round().astype(np.uint8))
        with torch.no_grad():
            output = export(torch.from_numpy(x[None])).numpy()
        found_by_torch = decode(output, "v8", x.shape[2], x.shape[1])
        reference = found_by_torch[found_by_torch[:, 4] >= detector.config.score_threshold, :4]
        boxes = detector.detect(image)[:, :4]
        found += len(reference)
        if len(reference) and len(boxes):
            matched += int((iou_matrix(reference, boxes).max(axis=1) >= MATCH_IOU).sum())
    return {"torch_boxes": found, "matched": matched, "recall_of_torch": round(matched / found, 3) if found else None}


def export_detector(
    weights: str | os.PathLike, *, calibration: list[str] = (), real_first: int | None = None
) -> list[Path]:
    """Write `<stem>.onnx` (FP32) and `<stem>-int8.onnx` beside the weights, and `<stem>-export.json`
    with what each check found; ConversionError when INT8 loses more than a tenth of the boxes."""
    weights = Path(weights)
    net, record = load_detector(weights)
    spec = record["spec"]
    fp32 = _write_fp32(net, weights.with_suffix(".onnx"), spec["width"], spec["height"])
    frames = _calibration(record, list(calibration), real_first)
    int8 = weights.with_name(weights.stem + "-int8.onnx")
    quantize_onnx(fp32, int8, frames, input_name=INPUT_NAME, float_nodes=float_tail_nodes)
    report = {"fp32": _check(fp32, net, frames), "int8": _check(int8, net, frames), "calibration_frames": len(frames)}
    write_json_atomic(weights.with_name(weights.stem + "-export.json"), report)
    recall = report["int8"]["recall_of_torch"]
    if recall is not None and recall < 0.9:
        raise ConversionError(
            f"{int8}: INT8 finds {recall:.0%} of the FP32 network's boxes on the calibration frames; "
            f"use the FP32 file {fp32.name}, or retrain with more real frames"
        )
    return [fp32, int8]


def main(argv: list[str] | None = None) -> int:
    """`python -m okdhp_edge.detection.export WEIGHTS [--real coco:DIR] [--real-first N]`."""
    parser = argparse.ArgumentParser(prog="python -m okdhp_edge.detection.export", description=export_detector.__doc__)
    parser.add_argument("weights", type=Path, help="a detector's .safetensors (its .json beside it)")
    parser.add_argument(
        "--real", action="append", default=[], help="calibrate on these labelled real frames, coco:DIR[:SPLIT]"
    )
    parser.add_argument("--real-first", type=int, help="only the first N frames of each real split")
    args = parser.parse_args(argv)
    for path in export_detector(args.weights, calibration=args.real, real_first=args.real_first):
        print(f"runtime file: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
