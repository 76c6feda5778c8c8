"""`PoseTracker`: pose on video without running a person detector on every frame.

Each frame's crop is placed from the previous frame's keypoints (the box around the confident
keypoints, grown by a margin). When a pose is lost (its mean score falls below a threshold, or
too few keypoints are confident) the tracker re-initialises on the same frame: from the
detector's boxes when one is given, otherwise from the whole frame (one person).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .predictor import Predictor, check_image
from .result import PoseResult

__all__ = ["PoseTracker", "TrackerConfig", "keypoint_box"]

Detector = Callable[[np.ndarray], np.ndarray]


@dataclass
class TrackerConfig:
    """Thresholds are on heatmap peak scores (as in PoseResult.scores)."""

    keypoint_score: float = 0.3  # keypoints at least this confident place the next crop
    min_keypoints: int = 4  # fewer confident keypoints than this: the pose is lost
    lost_score: float = 0.2  # mean score below this: the pose is lost
    margin: float = 0.15  # grow the keypoint box by this fraction of its size on each side
    min_box_size: float = 16.0  # pixels; a box never shrinks below this
    max_people: int = 8
    detect_interval: int = 0  # with a detector: also re-detect every this many frames (0: only when lost)
    flip_test: bool = False


def keypoint_box(
    keypoints: np.ndarray,
    scores: np.ndarray,
    config: TrackerConfig,
    width: int,
    height: int,
) -> np.ndarray | None:
    """xyxy box around one person's confident keypoints, grown and clipped; None when lost."""
    confident = scores >= config.keypoint_score
    if confident.sum() < config.min_keypoints or scores.mean() < config.lost_score:
        return None
    pts = keypoints[confident]
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    bw = max((x2 - x1) * (1 + 2 * config.margin), config.min_box_size)
    bh = max((y2 - y1) * (1 + 2 * config.margin), config.min_box_size)
    box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], np.float32)
    box[[0, 2]] = box[[0, 2]].clip(0, width - 1)
    box[[1, 3]] = box[[1, 3]].clip(0, height - 1)
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return None
    return box


class PoseTracker:
    """Feed frames in order with `update(frame)`; returns the frame's PoseResult.

    detector: optional callable frame -> (N, 4) xyxy boxes (extra columns such as scores are
    dropped), called only to (re-)initialise. Without it, the whole frame is one person.
    """

    def __init__(self, predictor: Predictor, detector: Detector | None = None, config: TrackerConfig | None = None) -> None:
        self.predictor = predictor
        self.detector = detector
        self.config = config or TrackerConfig()
        self.boxes: np.ndarray | None = None  # crops for the next frame; None: re-initialise
        self.reinitialisations = 0
        self._since_init = 0

    def reset(self) -> None:
        """Forget the tracked poses (e.g. after a scene cut); the next frame re-initialises."""
        self.boxes = None

    def update(self, frame: np.ndarray, rgb: bool = False) -> PoseResult:
        frame = check_image(frame)
        height, width = frame.shape[:2]
        self._since_init += 1
        due = self.detector is not None and 0 < self.config.detect_interval <= self._since_init
        tracked = self.boxes is not None and not due
        result = self.predictor.predict(frame, self.boxes if tracked else self._initial_boxes(frame), rgb, self.config.flip_test)
        if not self._track(result, width, height) and tracked:
            # Every pose was lost: look again on this frame rather than return a lost pose.
            result = self.predictor.predict(frame, self._initial_boxes(frame), rgb, self.config.flip_test)
            self._track(result, width, height)
        return result

    def _initial_boxes(self, frame: np.ndarray) -> np.ndarray | None:
        self.reinitialisations += 1
        self._since_init = 0
        if self.detector is None:
            return None
        boxes = np.asarray(self.detector(frame), np.float32)
        boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.size else 4)[:, :4]
        return boxes[: self.config.max_people]

    def _track(self, result: PoseResult, width: int, height: int) -> bool:
        """Place the next frame's crops from this result; False when every pose is lost."""
        boxes = [keypoint_box(k, s, self.config, width, height) for k, s in zip(result.keypoints, result.scores)]
        kept = [b for b in boxes if b is not None]
        self.boxes = np.stack(kept) if kept else None
        return bool(kept)
