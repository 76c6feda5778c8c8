"""The poses a frame's crops give: lost ones dropped, duplicates merged, on thresholds that follow the student.

Keypoint scores are heatmap peaks whose scale depends on the student, so thresholds left at None
(auto) are `auto_score` times the median mean score of the poses found in detections' crops, and
AUTO_PRIOR until AUTO_POSES of them are seen (docs/runtime.md: how the share was chosen).
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

__all__ = ["AUTO_POSES", "AUTO_PRIOR", "AutoThresholds", "Pose", "find_poses", "keypoint_box", "merge_duplicates"]

AUTO_POSES = 8  # auto thresholds: poses in detections' crops seen before the student's scores are trusted
AUTO_PRIOR = 0.5  # the thresholds until then
FOUND_POSES = 256  # auto thresholds follow the mean scores of this many latest poses in detections' crops


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
        self.found: deque[float] = deque(maxlen=FOUND_POSES)  # mean scores of poses in detections' crops

    def observe(self, scores: np.ndarray, fresh: Sequence[bool]) -> None:
        """Count the (K,) scores of each pose whose crop was fresh: only a detection's crop surely holds a person."""
        means = [float(s.mean()) for s, is_fresh in zip(scores, fresh) if is_fresh]
        self.found.extend(m for m in means if math.isfinite(m))

    def resolve(self, config: TrackerConfig) -> TrackerConfig:
        """The config with keypoint_score / lost_score set: as given, or from the scores observed."""
        if config.keypoint_score is not None and config.lost_score is not None:
            return config
        auto = AUTO_PRIOR
        if len(self.found) >= AUTO_POSES:
            auto = config.auto_score * float(np.median(self.found))
        return replace(
            config,
            keypoint_score=auto if config.keypoint_score is None else config.keypoint_score,
            lost_score=auto if config.lost_score is None else config.lost_score,
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
