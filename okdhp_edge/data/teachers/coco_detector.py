"""COCO-trained person-box teachers: NanoDet and MobileNetV3-CenterNet (converted from TF.js, fetch.py).

They label person boxes on real frames for detector training and for the pose labeller
(`python -m okdhp_edge.data.label --detector nanodet`); they are reference teachers, not shippable
defaults. `detect(image)` returns (N, 5) float32 x1, y1, x2, y2, score on the full frame, best
first, as the runtime's `Detector`.

Inputs as `@vladmandic/human` feeds them (src/object/nanodet.ts, centernet.ts):
- NanoDet (416x416, RGB / 255, NCHW): three levels, strides 8/16/32; per cell 80 sigmoid class
  scores and 4 x 11 logits of a distance distribution (GFL). Distances are the expectation of the
  softmax over bins 0..10, times the stride, from the cell's centre ((i + 0.5) * stride), as
  NanoDet's own head decodes them (human takes the arg-max bin with a fixed scale instead).
- CenterNet (512x512, RGB 0..255, NHWC): the graph itself picks the top 100 peaks of its heatmap
  (3x3 max-pool) and outputs x1, y1, x2, y2 (input pixels), score, class.
Both frames are stretched to the square input (no letterbox). COCO's person is class 0.
`ensemble` runs both and fuses their boxes (weighted box fusion): every box either model keeps
stays, and a person both see ranks above one that only one sees (its score is halved).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...boxes import iou_matrix, nms
from ...runtime.detectors.session import open_raw_model

__all__ = ["TEACHERS", "BoxTeacher", "BoxTeacherConfig", "fuse_boxes", "open_box_teacher"]

TEACHERS = ("nanodet", "centernet", "ensemble")
PERSON = 0  # COCO-80 class index of person
NANODET_STRIDES = (8, 16, 32)
NANODET_BINS = 11  # distance bins per side (reg_max 10)


@dataclass
class BoxTeacherConfig:
    """What counts as a person for a teacher."""

    score_threshold: float = 0.3  # person score below which a model's box is dropped (before fusion)
    iou_threshold: float = 0.5  # boxes overlapping a better one more than this are dropped (NMS)
    fuse_iou: float = 0.55  # ensemble: boxes of the two models overlapping more than this are one person
    max_people: int = 50

    def __post_init__(self) -> None:
        for name in ("score_threshold", "iou_threshold", "fuse_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


class _NanoDet:
    size = 416

    def __init__(self, path: Path, num_threads: int | None) -> None:
        self.model = open_raw_model(path, "onnx", "cpu", num_threads)

    def candidates(self, image: np.ndarray, threshold: float) -> np.ndarray:
        """Person candidates (N, 5) in the frame's pixels, before NMS."""
        height, width = image.shape[:2]
        rgb = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        outputs = self.model.run((rgb.astype(np.float32) / 255).transpose(2, 0, 1)[None])
        found = []
        for stride in NANODET_STRIDES:
            side = self.size // stride
            scores = next(o[0] for o in outputs if o.shape[1] == side * side and o.shape[2] == 80)[:, PERSON]
            logits = next(o[0] for o in outputs if o.shape[1] == side * side and o.shape[2] == 4 * NANODET_BINS)
            keep = np.flatnonzero(scores > threshold)
            if not len(keep):
                continue
            dist = logits[keep].reshape(-1, 4, NANODET_BINS)
            dist = np.exp(dist - dist.max(-1, keepdims=True))
            dist = (dist / dist.sum(-1, keepdims=True)) @ np.arange(NANODET_BINS, dtype=np.float32) * stride
            cx, cy = (keep % side + 0.5) * stride, (keep // side + 0.5) * stride
            boxes = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1)
            boxes *= np.array([width, height, width, height], np.float32) / self.size
            found.append(np.concatenate([boxes, scores[keep, None]], 1))
        return np.concatenate(found) if found else np.zeros((0, 5), np.float32)


class _CenterNet:
    size = 512

    def __init__(self, path: Path, num_threads: int | None) -> None:
        self.model = open_raw_model(path, "onnx", "cpu", num_threads)

    def candidates(self, image: np.ndarray, threshold: float) -> np.ndarray:
        height, width = image.shape[:2]
        rgb = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        # the model's rows (x1, y1, x2, y2, score, class); its other outputs are the maps they come from
        detections = next(o for o in self.model.run(rgb.astype(np.float32)[None]) if o.ndim == 3 and o.shape[2] == 6)
        rows = detections[0][(detections[0][:, 5] == PERSON) & (detections[0][:, 4] > threshold)]
        boxes = rows[:, :4] * np.array([width, height, width, height], np.float32) / self.size
        return np.concatenate([boxes, rows[:, 4:5]], 1)


def fuse_boxes(parts: list[np.ndarray], iou: float) -> np.ndarray:
    """Weighted box fusion of several models' (N, 5) boxes: boxes overlapping a cluster's fused box
    by more than `iou` join it (best scores first); a cluster's box is the score-weighted mean and
    its score the summed scores over the number of models (a person only one model sees scores half)."""
    boxes = np.concatenate(parts) if parts else np.zeros((0, 5), np.float32)
    clusters: list[list[np.ndarray]] = []
    fused = np.zeros((0, 4), np.float32)
    for row in boxes[np.argsort(-boxes[:, 4], kind="stable")]:
        overlap = iou_matrix(row[None, :4], fused)[0] if len(fused) else np.zeros(0)
        if len(overlap) and overlap.max() > iou:
            j = int(overlap.argmax())
            clusters[j].append(row)
            members = np.array(clusters[j])
            fused[j] = (members[:, :4] * members[:, 4:5]).sum(0) / members[:, 4].sum()
        else:
            clusters.append([row])
            fused = np.concatenate([fused, row[None, :4]])
    scores = np.array([min(sum(r[4] for r in c), len(parts)) / len(parts) for c in clusters], np.float32)
    return np.concatenate([fused, scores[:, None]], 1).astype(np.float32).reshape(-1, 5)


class BoxTeacher:
    """A COCO person-box teacher (`TEACHERS`); `detect(image)` -> (N, 5) as the runtime's Detector."""

    def __init__(self, name: str = "centernet", num_threads: int | None = None, config: BoxTeacherConfig | None = None):
        from .fetch import fetch_teacher

        if name not in TEACHERS:
            raise ValueError(f"unknown box teacher {name!r}; valid: {', '.join(TEACHERS)}")
        self.name, self.config = name, config or BoxTeacherConfig()
        families = {"nanodet": _NanoDet, "centernet": _CenterNet}
        wanted = list(families) if name == "ensemble" else [name]
        self.models = [families[n](fetch_teacher(n), num_threads) for n in wanted]

    def __repr__(self) -> str:
        return f"BoxTeacher({self.name!r}, {self.config})"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """People in one BGR uint8 frame, best first, clipped to the frame."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        config = self.config
        parts = []
        for model in self.models:
            found = model.candidates(image, config.score_threshold)
            parts.append(found[nms(found[:, :4], found[:, 4], config.iou_threshold)])
        found = parts[0] if len(parts) == 1 else fuse_boxes(parts, config.fuse_iou)
        height, width = image.shape[:2]
        found[:, [0, 2]] = found[:, [0, 2]].clip(0, width - 1)
        found[:, [1, 3]] = found[:, [1, 3]].clip(0, height - 1)
        found = found[np.argsort(-found[:, 4], kind="stable")][: config.max_people]
        return np.ascontiguousarray(found, np.float32).reshape(-1, 5)


def open_box_teacher(name: str | os.PathLike, num_threads: int | None = None) -> BoxTeacher:
    """The teacher called `name` (one of TEACHERS), for the labeller's --detector."""
    return BoxTeacher(str(name), num_threads)
