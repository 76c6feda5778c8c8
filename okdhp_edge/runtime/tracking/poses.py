"""The poses a frame's crops give: lost ones dropped, duplicates merged, on thresholds that follow the student.

Keypoint scores are heatmap peaks whose scale depends on the student, so thresholds left at None
(auto) are `auto_score` times a median over the poses found in detections' crops, and AUTO_PRIOR
until AUTO_POSES of them are seen (docs/runtime.md: how the share was chosen): for tracking (which
keypoints place the next crop, when a pose is lost) the median mean score, for drawing
(`draw_score`) the median `pose_score`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ...boxes import box_areas, clip_boxes, oks_matrix
from ..appearance import colour_signature
from ..result import PoseResult
from ..tracker_config import TrackerConfig
from .schedule import Crops

__all__ = [
    "AUTO_POSES",
    "AUTO_PRIOR",
    "AutoThresholds",
    "Pose",
    "find_poses",
    "keypoint_box",
    "merge_duplicates",
    "pose_score",
]

AUTO_POSES = 8  # auto thresholds: poses in detections' crops seen before the student's scores are trusted
AUTO_PRIOR = 0.5  # the thresholds until then
FOUND_POSES = 256  # auto thresholds follow the scores of this many latest poses in detections' crops


def pose_score(scores: np.ndarray) -> float:
    """How sure the student is of a pose's joints: the mean of its best third of keypoint scores.
    A person the frame cuts to head and shoulders (most joints out of view, scored low) scores as
    high as a whole one; a mean over every joint halves there, and a drawing threshold that follows
    it sinks to the out-of-view joints' scores and draws them on the person."""
    best = np.sort(np.asarray(scores, np.float64).ravel())[-max(1, math.ceil(np.size(scores) / 3)) :]
    return float(best.mean())


@dataclass
class Pose:
    """One person found in one crop, not yet given to a track."""

    box: np.ndarray  # around the confident keypoints
    keypoints: np.ndarray
    scores: np.ndarray
    colour: np.ndarray  # colour_signature of the box
    fresh: bool  # from a detection (or the whole frame): may start a track
    detection_score: float | None  # the detector's score for the crop's box; None: not a scored detection


def keypoint_box(
    keypoints: np.ndarray, scores: np.ndarray, config: TrackerConfig, width: int, height: int
) -> np.ndarray | None:
    """xyxy box around one person's confident keypoints, grown and clipped; None when lost.
    Thresholds left at None (auto) count as AUTO_PRIOR here: AutoThresholds settles them."""
    keypoint_score = AUTO_PRIOR if config.keypoint_score is None else config.keypoint_score
    lost_score = AUTO_PRIOR if config.lost_score is None else config.lost_score
    confident = scores >= keypoint_score
    if confident.sum() < config.min_keypoints or scores.mean() < lost_score:
        return None
    pts = keypoints[confident]
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    bw = max((x2 - x1) * (1 + 2 * config.margin), config.min_box_size)
    bh = max((y2 - y1) * (1 + 2 * config.margin), config.min_box_size)
    box = clip_boxes(np.array([[cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]], np.float32), width, height)
    return box[0] if len(box) else None


class AutoThresholds:
    """Settles a config's automatic keypoint thresholds on the scores of the poses seen so far."""

    def __init__(self) -> None:
        # mean scores and pose_score of poses in detections' crops
        self.found: deque[tuple[float, float]] = deque(maxlen=FOUND_POSES)

    def observe(self, scores: np.ndarray, fresh: Sequence[bool]) -> None:
        """Count the (K,) scores of each pose whose crop was fresh: only a detection's crop surely holds a person."""
        found = [(float(s.mean()), pose_score(s)) for s, is_fresh in zip(scores, fresh) if is_fresh]
        self.found.extend(f for f in found if math.isfinite(f[0]))

    def resolve(self, config: TrackerConfig) -> TrackerConfig:
        """The config with keypoint_score / lost_score / draw_score set: as given, or from the scores observed."""
        if None not in (config.keypoint_score, config.lost_score, config.draw_score):
            return config
        auto = draw = AUTO_PRIOR
        if len(self.found) >= AUTO_POSES:
            auto, draw = (config.auto_score * float(m) for m in np.median(np.array(self.found), axis=0))
        return replace(
            config,
            keypoint_score=auto if config.keypoint_score is None else config.keypoint_score,
            lost_score=auto if config.lost_score is None else config.lost_score,
            draw_score=draw if config.draw_score is None else config.draw_score,
        )


def find_poses(frame: np.ndarray, result: PoseResult, crops: Crops, scoring: TrackerConfig) -> list[Pose]:
    """The poses of `result` (one per crop) that are not lost, each with its colours and its crop's
    detection score. scoring: the config with its thresholds settled (AutoThresholds.resolve)."""
    height, width = frame.shape[:2]
    poses = []
    for kpts, kpt_scores, is_fresh, found in zip(result.keypoints, result.scores, crops.fresh, crops.scores):
        box = keypoint_box(kpts, kpt_scores, scoring, width, height)
        if box is not None:
            detection = float(found) if math.isfinite(found) else None
            poses.append(Pose(box, kpts, kpt_scores, colour_signature(frame, box), bool(is_fresh), detection))
    return poses


def merge_duplicates(poses: list[Pose], scoring: TrackerConfig, sigmas: np.ndarray | None) -> list[Pose]:
    """OKS-NMS: of poses more alike than `duplicate_oks` (two crops on one person) the most
    confident is kept, fresh, and scored, if any of its twins was. sigmas: the skeleton's OKS constants."""
    if len(poses) < 2:
        return poses
    poses = sorted(poses, key=lambda p: -float(p.scores.mean()))
    kpts = np.stack([p.keypoints for p in poses])
    areas = box_areas(np.stack([p.box for p in poses]))
    visible = np.stack([p.scores >= scoring.keypoint_score for p in poses])
    oks = oks_matrix(kpts, kpts, areas, sigmas, visible)
    kept: list[int] = []
    for i in range(len(poses)):
        twin = next((k for k in kept if oks[k, i] > scoring.duplicate_oks), None)
        if twin is None:
            kept.append(i)
        else:
            poses[twin].fresh |= poses[i].fresh
            if poses[twin].detection_score is None:
                poses[twin].detection_score = poses[i].detection_score
    return [poses[i] for i in kept]
