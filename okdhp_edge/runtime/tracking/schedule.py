"""Which crops the pose network runs on this frame, and when the detector runs to refresh them.

A track's crop is its last box moved on by its velocity, so the pose network follows people
without a detector; the detector runs every `detect_every` frames, and whenever nobody is tracked,
to fix crops that drifted (a detection overlapping a crop replaces it) and to find newcomers.
Only crops from a detection (or the whole frame, without a detector) are fresh: only their poses
may start tracks, so a crop that drifts onto a sign does not turn it into a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ...boxes import box_areas, box_intersections, clip_boxes, iou_matrix
from ..errors import InputError
from ..tracker_config import TrackerConfig

if TYPE_CHECKING:
    from .track import Track

__all__ = ["Crops", "DetectionSchedule", "detections", "merge_detections", "tracked_crops"]


@dataclass
class Crops:
    """The boxes the pose network runs on, which are fresh, and each one's detection score."""

    boxes: np.ndarray  # (N, 4) xyxy, clipped to the frame
    fresh: np.ndarray  # (N,) bool: a detection's crop (or the whole frame), whose pose may start a track
    scores: np.ndarray  # (N,) float32 detector scores; NaN: not a scored detection

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def tracked(cls, boxes: np.ndarray) -> Crops:
        """Crops placed from tracks: not fresh, not scored."""
        return cls(boxes, np.zeros(len(boxes), bool), np.full(len(boxes), np.nan, np.float32))

    @classmethod
    def whole_frame(cls, width: int, height: int) -> Crops:
        """One fresh crop filling the frame: the person search when there is no detector."""
        return cls(
            np.array([[0, 0, width - 1, height - 1]], np.float32), np.ones(1, bool), np.full(1, np.nan, np.float32)
        )


class DetectionSchedule:
    """Counts frames since the detector last ran, and its runs."""

    def __init__(self) -> None:
        self.since = 0  # frames since the last detection (this one included, once `tick`ed)
        self.runs = 0  # detector calls so far

    def tick(self) -> None:
        """A new frame."""
        self.since += 1

    def due(self, tracked: int, every: int, has_detector: bool) -> bool:
        """Whether to look for people on this frame: nobody is `tracked`, or a detector is `every` frames due."""
        return not tracked or (has_detector and every > 0 and self.since >= every)

    def ran(self) -> None:
        self.runs += 1
        self.since = 0

    def reset(self) -> None:
        self.since = 0


def tracked_crops(tracks: Sequence[Track], config: TrackerConfig, width: int, height: int) -> Crops:
    """The crops of the tracks still given one (their pose lost at most `coast` frames ago; the most
    recently seen first, up to `max_people`): each track's box where its velocity takes it."""
    live = sorted((t for t in tracks if t.missed <= config.coast), key=lambda t: t.missed)[: config.max_people]
    boxes = np.array([t.predicted()[0] for t in live], np.float32).reshape(-1, 4)
    return Crops.tracked(clip_boxes(boxes, width, height))


def detections(found: np.ndarray, width: int, height: int) -> np.ndarray:
    """A detector's answer as (N, 5) x1, y1, x2, y2, score (NaN when it gives none), clipped to the
    frame; boxes with a coordinate that is not finite are dropped."""
    found = np.asarray(found, np.float32)
    if found.size and (found.ndim == 0 or found.shape[-1] < 4):
        raise InputError(
            f"the detector returned an array of shape {found.shape}; PoseTracker expects (N, 4+) boxes, "
            "x1, y1, x2, y2 in pixels first (extra columns such as a score are ignored)"
        )
    found = found.reshape(-1, found.shape[-1] if found.size else 4)
    found = np.concatenate(
        [found[:, :4], found[:, 4:5] if found.shape[1] > 4 else np.full((len(found), 1), np.nan)], axis=1
    )
    return clip_boxes(found[np.isfinite(found[:, :4]).all(axis=1)], width, height)


def merge_detections(
    crops: Crops, found: np.ndarray, replace_iou: float, max_people: int, replace_inside: float
) -> Crops:
    """Tracked crops with (N, 5) detections merged in: a detection overlapping a crop at least
    `replace_iou`, or covering at least `replace_inside` of a crop, replaces it (one detection per
    crop), the others are added up to `max_people` crops. The second rule keeps one near person
    one person: between detections their crop can drift onto the face, inside their next
    detection but overlapping it too little, which would start a second track there."""
    boxes, fresh, scores = crops.boxes.copy(), crops.fresh.copy(), crops.scores.copy()
    extra = []
    overlap = iou_matrix(found[:, :4], boxes)
    inside = box_intersections(found[:, :4], boxes) / np.maximum(box_areas(boxes), 1.0)[None, :]
    for i in range(len(found)):
        j = int(overlap[i].argmax()) if overlap.shape[1] else -1
        replace = j >= 0 and overlap[i, j] >= replace_iou
        if j >= 0 and not replace and inside[i].max() >= replace_inside:
            j, replace = int(inside[i].argmax()), True
        if replace:
            boxes[j], fresh[j], scores[j] = found[i, :4], True, found[i, 4]
            overlap[:, j] = inside[:, j] = -1  # one detection per crop
        else:
            extra.append(found[i])
    added = np.array(extra[: max(max_people - len(boxes), 0)], np.float32).reshape(-1, 5)
    return Crops(
        np.concatenate([boxes, added[:, :4]]),
        np.concatenate([fresh, np.ones(len(added), bool)]),
        np.concatenate([scores, added[:, 4]]),
    )
