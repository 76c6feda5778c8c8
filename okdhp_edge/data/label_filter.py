"""Which teacher keypoints become labels: confident, self-consistent under a horizontal flip, and,
in video, consistent with the teacher on the adjacent frames (same boxes: people move little in
one frame, the teacher's jitter is what is caught). Pure numpy, so the rules are tested alone.

Agreement between two predictions of one keypoint is COCO's per-keypoint similarity
(okdhp_edge.boxes.keypoint_similarity), exp(-d^2 / (2 s^2 (2 sigma)^2)) with s^2 the person box's
area and sigma the keypoint's OKS constant: a tolerance that grows with the person and is tighter
on the face than on the hips. A keypoint the teacher puts well outside the frame (the elbows below
a close-up) is a guess, not a label; but that it is not in the image is worth teaching, so the
labeller writes such keypoints with v=0 and their coordinates (COCO readers ignore v=0 keypoints;
okdhp_edge.data.coco reads them as absent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..boxes import box_areas, keypoint_similarity
from ..geometry import outside_frame

__all__ = ["DROP_REASONS", "FilterConfig", "flip_back", "follow", "judge", "mirror_boxes"]

# why a keypoint was dropped, checked in this order
DROP_REASONS = ("low_score", "flip", "temporal", "outside")


@dataclass
class FilterConfig:
    """When a teacher keypoint is kept as a label (v=2)."""

    min_score: float = 0.5  # the teacher's score on the frame itself
    flip_agreement: float = 0.5  # similarity with the teacher's answer on the mirrored frame
    temporal_agreement: float = 0.5  # similarity with the teacher on each adjacent video frame
    min_keypoints: int = 3  # fewer kept keypoints: the person becomes an ignore entry (num_keypoints 0)
    outside_margin: float = 0.05  # a keypoint farther outside the frame than this share of its height is dropped

    def __post_init__(self) -> None:
        for name in ("flip_agreement", "temporal_agreement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.min_keypoints < 1:
            raise ValueError(f"min_keypoints must be >= 1, got {self.min_keypoints}")
        if self.outside_margin < 0:
            raise ValueError(f"outside_margin must be >= 0, got {self.outside_margin}")


def mirror_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """(N, 4) xyxy boxes as they lie in the horizontally mirrored frame."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.stack([width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0], boxes[:, 3]], 1)


def flip_back(keypoints: np.ndarray, width: int, flip_index: list[int]) -> np.ndarray:
    """(N, K, 2) keypoints predicted on the mirrored frame, in the frame's own coordinates and order."""
    points = np.asarray(keypoints, np.float64).copy()
    points[..., 0] = width - 1 - points[..., 0]
    return points[:, flip_index]


def follow(keypoints: np.ndarray, other: np.ndarray) -> np.ndarray:
    """`other` (N, K, 2) moved back by each person's median keypoint displacement from `keypoints`:
    a walking person moves a few pixels between frames, which is not the teacher's jitter."""
    other = np.asarray(other, np.float64)
    if other.size == 0:
        return other
    return other - np.median(other - np.asarray(keypoints, np.float64), axis=1, keepdims=True)


def judge(
    keypoints: np.ndarray,
    scores: np.ndarray,
    boxes: np.ndarray,
    flipped: np.ndarray,
    neighbours: list[np.ndarray],
    sigmas: np.ndarray,
    config: FilterConfig,
    frame_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep-mask (N, K) and drop reason per keypoint (N, K; -1 kept, else an index into DROP_REASONS).

    flipped: the teacher's (N, K, 2) keypoints on the mirrored frame, already `flip_back`-ed.
    neighbours: the teacher's (N, K, 2) keypoints for the same boxes on the adjacent frames of a
    video (empty for images); the temporal test needs agreement with every one of them, after
    `follow` takes out the person's own movement. frame_size: (width, height) for the outside test.
    """
    area = box_areas(boxes)
    checks = [
        (0, np.asarray(scores) >= config.min_score),
        (1, keypoint_similarity(keypoints, flipped, area, sigmas) >= config.flip_agreement),
    ]
    if neighbours:
        agree = [
            keypoint_similarity(keypoints, follow(keypoints, other), area, sigmas) >= config.temporal_agreement
            for other in neighbours
        ]
        checks.append((2, np.all(agree, axis=0)))
    if frame_size is not None:
        checks.append((3, ~outside_frame(keypoints, frame_size, config.outside_margin)))
    reason = np.full(np.asarray(scores).shape, -1)
    for r, passed in reversed(checks):
        reason[~passed] = r
    return reason == -1, reason
