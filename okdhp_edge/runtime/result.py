"""What the runtime returns: `PoseResult` from `Predictor.predict` (keypoints in image pixels, their
scores, the boxes used), and `TrackedPose`, one person on one frame from `PoseTracker`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PoseResult", "StageTimes", "TRACK_STATES", "TrackedPose"]

TRACK_STATES = ("tentative", "confirmed", "coasting")


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
            people.append({"box": _box(box), "keypoints": _named_keypoints(self.keypoint_names, kpts, scores)})
        return {"people": people}


@dataclass
class TrackedPose:
    """One person on one frame, as PoseTracker reports them.

    track_id: the person's ID (0 while the track is tentative: IDs are spent on confirmed tracks only).
    age: frames since the track started (0 on its first frame).
    state: "confirmed" (a pose on this frame), "tentative" (new, not yet seen on `confirm` frames)
    or "coasting" (no pose on this frame: box and keypoints are where its velocity takes them);
    update() returns confirmed people only unless TrackerConfig.report is "all".
    detection_score: the detector's score for the box whose crop gave this frame's pose (the
    detection that started the track, or refreshed its crop on this frame); None when the pose came
    from the track's own crop (frames between detections), from the whole frame (no detector), or
    from a detector that returns no scores.
    keypoint_threshold: the keypoint score from which the tracker reports a keypoint as confident on
    this frame (TrackerConfig.draw_score: automatic unless the config set one); draw_pose hides
    keypoints below it.
    """

    track_id: int
    box: np.ndarray  # (4,) xyxy around the confident keypoints
    keypoints: np.ndarray  # (K, 2) image pixels, smoothed unless smoothing is off
    scores: np.ndarray  # (K,) heatmap peak values
    age: int
    state: str = "confirmed"
    detection_score: float | None = None
    keypoint_threshold: float = 0.5
    keypoint_names: tuple[str, ...] = ()
    limbs: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain types: ID, state, age, box, scores and named keypoints (indices as
        names when the skeleton's names are not known)."""
        names = self.keypoint_names or tuple(str(i) for i in range(len(self.keypoints)))
        return {
            "track_id": int(self.track_id),
            "state": str(self.state),
            "age": int(self.age),
            "box": _box(self.box),
            "detection_score": None if self.detection_score is None else round(float(self.detection_score), 4),
            "keypoint_threshold": round(float(self.keypoint_threshold), 4),
            "keypoints": _named_keypoints(names, self.keypoints, self.scores),
        }


def _box(box: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in box]


def _named_keypoints(names: tuple[str, ...], keypoints: np.ndarray, scores: np.ndarray) -> dict[str, dict[str, float]]:
    return {
        name: {"x": round(float(x), 2), "y": round(float(y), 2), "score": round(float(s), 4)}
        for name, (x, y), s in zip(names, keypoints, scores)
    }


@dataclass
class StageTimes:
    """Seconds spent in one `predict` call, by stage (the benchmark reads these)."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.inference + self.postprocess
