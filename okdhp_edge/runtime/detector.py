"""`Detector`: image -> person boxes, torch-free, for `PoseTracker` and `Predictor`.

    detector = Detector("yolo11n.onnx")          # an Ultralytics export (.onnx or .tflite)
    boxes = detector.detect(frame_bgr)           # (N, 5) x1, y1, x2, y2, score; people only
    result = predictor.predict(frame_bgr, boxes[:, :4])

The family is chosen from the file: YOLO exports by their output shape (detectors/yolo.py).
NMS is numpy (runtime/boxes.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .boxes import clip_boxes, nms
from .detectors.session import open_raw_model
from .detectors.yolo import YoloModel
from .errors import ModelFileError
from .predictor import check_image

__all__ = ["Detector", "DetectorConfig"]

MAX_CANDIDATES = 1000  # best-scoring candidates that enter NMS (bounds its cost on a low threshold)


@dataclass
class DetectorConfig:
    """What counts as a person, and how many are kept."""

    score_threshold: float = 0.3  # candidates scoring below this are dropped
    iou_threshold: float = 0.6  # candidates overlapping a better one more than this are dropped (NMS)
    max_people: int = 20  # the most boxes returned, best first

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if int(self.max_people) < 0:
            raise ValueError(f"max_people must be >= 0, got {self.max_people}")


class Detector:
    """Finds people in BGR frames. `detect(image)` -> (N, 5) float32 x1, y1, x2, y2, score,
    sorted by score, clipped to the image; `detector(image)` is the same call.

    model: a YOLO-family .onnx or .tflite file; backend / device / num_threads as for Predictor.
    layout: "auto" (from the output shape), or force "v8", "v5" or "end2end".
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        backend: str | None = None,
        device: str = "auto",
        num_threads: int | None = None,
        *,
        score_threshold: float = DetectorConfig.score_threshold,
        iou_threshold: float = DetectorConfig.iou_threshold,
        max_people: int = DetectorConfig.max_people,
        layout: str = "auto",
    ) -> None:
        self.config = DetectorConfig(score_threshold, iou_threshold, max_people)
        if model is None:
            raise ModelFileError(
                "Detector() needs a person detector file: pass a YOLO export, e.g. Detector('yolo11n.onnx') "
                "(Ultralytics: YOLO('yolo11n.pt').export(format='onnx'))"
            )
        self.model_path = Path(model)
        try:
            raw = open_raw_model(self.model_path, backend, device, num_threads)
        except ModelFileError as err:
            raise ModelFileError(f"{err}; Detector takes a YOLO detection export (.onnx or .tflite)") from None
        self.family = YoloModel(raw, layout)

    def __repr__(self) -> str:
        return f"Detector({str(self.model_path)!r}, {type(self.family).__name__}, {self.config})"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """People in one BGR uint8 frame (grayscale and BGRA are converted, like Predictor)."""
        image = check_image(image)
        height, width = image.shape[:2]
        found, done = self.family.candidates(image)
        found = found[found[:, 4] >= self.config.score_threshold]
        found = clip_boxes(found, width, height)
        if not done:
            found = found[np.argsort(-found[:, 4], kind="stable")[:MAX_CANDIDATES]]
            found = found[nms(found[:, :4], found[:, 4], self.config.iou_threshold)]
        found = found[np.argsort(-found[:, 4], kind="stable")]
        return np.ascontiguousarray(found[: int(self.config.max_people)], np.float32).reshape(-1, 5)
