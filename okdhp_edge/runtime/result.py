"""What `Predictor.predict` returns: keypoints in image pixels, their scores, and the boxes used."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PoseResult", "StageTimes"]


@dataclass
class PoseResult:
    """Poses of N people with K keypoints each.

    keypoints (N, K, 2) float32 x, y in image pixels (pixel-index coordinates, like OpenCV);
    scores (N, K) float32 heatmap peak values (higher is more confident; not probabilities);
    boxes (N, 4) float32 xyxy boxes the crops were cut from, after clipping to the image;
    keypoint_names the skeleton's K names; limbs the (a, b) index pairs for drawing.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    keypoint_names: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...] = field(default=())

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def mean_scores(self) -> np.ndarray:
        """(N,) mean keypoint score per person: a cheap 'is this a pose at all' signal."""
        return self.scores.mean(axis=1) if self.scores.size else np.zeros(len(self), np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: one entry per person with named keypoints."""
        people = []
        for kpts, scores, box in zip(self.keypoints, self.scores, self.boxes):
            people.append({
                "box": [round(float(v), 2) for v in box],
                "keypoints": {
                    name: {"x": round(float(x), 2), "y": round(float(y), 2), "score": round(float(s), 4)}
                    for name, (x, y), s in zip(self.keypoint_names, kpts, scores)
                },
            })
        return {"people": people}


@dataclass
class StageTimes:
    """Seconds spent in one `predict` call, by stage (the benchmark reads these)."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.inference + self.postprocess
