"""Builds what the runtime tests run on: a tiny student, its ONNX / TFLite exports, and frames.

The student is the smallest branch of the `tiny` preset, randomly initialised with a fixed seed
(real pipelines, real backends; only the weights are untrained). Artifacts come from
`okdhp_edge.export.export`: `<name>-<precision>.<ext>` plus the `<artifact>.json` sidecar.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from okdhp_edge.skeleton import COCO17

# A standing person in a unit box (x right, y down), COCO-17 order.
POSE = np.array(
    [
        [0.50, 0.08],
        [0.53, 0.06],
        [0.47, 0.06],
        [0.56, 0.08],
        [0.44, 0.08],
        [0.62, 0.22],
        [0.38, 0.22],
        [0.70, 0.38],
        [0.30, 0.38],
        [0.74, 0.52],
        [0.26, 0.52],
        [0.58, 0.55],
        [0.42, 0.55],
        [0.60, 0.75],
        [0.40, 0.75],
        [0.61, 0.95],
        [0.39, 0.95],
    ],
    np.float32,
)


def make_student(out_dir: Path, seed: int = 0) -> Path:
    """Save the tiny preset's smallest student (branch 2); returns the .safetensors path."""
    import torch

    from okdhp_edge.models import OKDHPNet, describe_student, extract_student, get_preset, save_student

    torch.manual_seed(seed)
    preset = get_preset("tiny")
    net = OKDHPNet(preset.network_spec())
    student = extract_student(net, 2).eval()
    spec = describe_student(preset, 2, provenance={"note": "runtime test fixture, untrained"})
    return save_student(student, spec, out_dir / spec.name)


def export_artifact(student_path: Path, out_dir: Path, fmt: str, precision: str = "fp32", **options) -> Path:
    """Export through okdhp_edge.export (verification off: the runtime tests do their own checks)."""
    from okdhp_edge.export import export

    options.setdefault("verify_images", 0)
    return export(student_path, format=fmt, precision=precision, out_dir=out_dir, **options).artifact


def export_onnx(student_path: Path, out_dir: Path) -> Path:
    """FP32 ONNX, dynamic batch."""
    return export_artifact(student_path, out_dir, "onnx")


def export_tflite(student_path: Path, out_dir: Path) -> Path:
    """FP32 TFLite, batch 1."""
    return export_artifact(student_path, out_dir, "tflite")


def person_frame(
    width: int = 320, height: int = 240, box: tuple[float, float, float, float] = (110, 20, 210, 230), seed: int = 0
) -> np.ndarray:
    """A textured BGR frame with one stick figure filling `box` (x1, y1, x2, y2)."""
    rng = np.random.default_rng(seed)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    x1, y1, x2, y2 = box
    pts = np.round(POSE * [x2 - x1, y2 - y1] + [x1, y1]).astype(int)
    for a, b in COCO17.limbs:
        cv2.line(frame, tuple(pts[a]), tuple(pts[b]), (240, 240, 240), 5, cv2.LINE_AA)
    for i, p in enumerate(pts):
        cv2.circle(frame, tuple(p), 4, (40 + 12 * i, 255 - 10 * i, 60), -1, cv2.LINE_AA)
    return frame


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (320, 240), fps: float = 10.0) -> Path:
    """An mp4 of a stick figure walking left to right."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "this OpenCV build cannot write mp4v"
    for i in range(frames):
        x = 20 + i * (size[0] - 140) / max(frames - 1, 1)
        writer.write(person_frame(*size, box=(x, 20, x + 100, size[1] - 10), seed=i))
    writer.release()
    return path
