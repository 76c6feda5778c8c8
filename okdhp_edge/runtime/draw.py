"""Drawing helpers for demos: skeletons (left/right coloured), boxes, scores, track IDs and an FPS line.

All functions draw in place on a BGR uint8 image and return it.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..skeleton import Skeleton
from .result import PoseResult, TrackedPose

__all__ = ["draw_fps", "draw_pose", "draw_tracks", "tracks_result"]

LEFT = (0, 165, 255)  # BGR orange
RIGHT = (255, 144, 30)  # BGR blue
CENTER = (80, 220, 80)  # BGR green
BOX = (200, 200, 200)
DEFAULT_MIN_SCORE = 0.3  # for a Predictor's results, whose student's score scale the drawing cannot know


def _side(name: str) -> tuple[int, int, int]:
    name = name.lower()
    if name.startswith("left"):
        return LEFT
    if name.startswith("right"):
        return RIGHT
    return CENTER


def draw_pose(
    image: np.ndarray,
    result: PoseResult | Sequence[TrackedPose],
    min_score: float | None = None,
    draw_boxes: bool = True,
    draw_scores: bool = False,
) -> np.ndarray:
    """Draw every person's limbs and keypoints whose scores reach `min_score`.

    result: a Predictor's PoseResult, or the people a PoseTracker returned. min_score None: for the
    tracker's people, the keypoint threshold the tracker chose (TrackedPose.keypoint_threshold,
    automatic unless set), so the drawing shows the keypoints the tracker trusted; else 0.3.
    draw_scores writes each person's mean keypoint score above its box.
    """
    if not isinstance(result, PoseResult):
        people = list(result)
        if min_score is None and people:
            min_score = people[0].keypoint_threshold
        result = tracks_result(people)
    if min_score is None:
        min_score = DEFAULT_MIN_SCORE
    scale = max(1, round(min(image.shape[:2]) / 320))
    colors = [_side(n) for n in result.keypoint_names]
    for kpts, scores, box in zip(result.keypoints, result.scores, result.boxes):
        ok = np.isfinite(kpts).all(axis=1) & (scores >= min_score)
        pts = np.round(np.nan_to_num(kpts)).astype(int)
        # strokes follow the person's size, so a far person's limbs stay apart
        size = max(float(box[2] - box[0]), float(box[3] - box[1]))
        width, radius = max(1, min(2 * scale, round(size / 100))), max(1, min(2 * scale + 1, round(size / 50)))
        if draw_boxes:
            cv2.rectangle(image, tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:]), BOX, 1, cv2.LINE_AA)
        for a, b in result.limbs:
            if ok[a] and ok[b]:
                color = colors[a] if colors[a] == colors[b] else CENTER
                cv2.line(image, tuple(pts[a]), tuple(pts[b]), color, width, cv2.LINE_AA)
        for k in np.flatnonzero(ok):
            cv2.circle(image, tuple(pts[k]), radius, colors[k], -1, cv2.LINE_AA)
        if draw_scores:
            origin = (int(box[0]), max(int(box[1]) - 4, 12))
            cv2.putText(
                image,
                f"{float(scores.mean()):.2f}",
                origin,
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * scale,
                BOX,
                scale,
                cv2.LINE_AA,
            )
    return image


def tracks_result(tracks: Sequence[TrackedPose], skeleton: Skeleton | None = None) -> PoseResult:
    """The tracker's people as a PoseResult; the skeleton's names and limbs come from the people
    themselves unless `skeleton` is given (needed only to name the keypoints of an empty list)."""
    names, limbs = (
        (skeleton.keypoints, skeleton.limbs)
        if skeleton is not None
        else ((tracks[0].keypoint_names, tracks[0].limbs) if tracks else ((), ()))
    )
    k = len(names) if names else (len(tracks[0].keypoints) if tracks else 0)
    return PoseResult(
        keypoints=np.array([t.keypoints for t in tracks], np.float32).reshape(len(tracks), k, 2),
        scores=np.array([t.scores for t in tracks], np.float32).reshape(len(tracks), k),
        boxes=np.array([t.box for t in tracks], np.float32).reshape(-1, 4),
        keypoint_names=names,
        limbs=limbs,
    )


def _label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, color: tuple[int, int, int]) -> None:
    """White text on a filled box: readable on any background, and the box always fits the text."""
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = origin
    pad = max(2, round(4 * scale))
    cv2.rectangle(image, (x, y - h - pad), (x + w + 2 * pad, y + base + pad // 2), color, -1)
    cv2.putText(image, text, (x + pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _id_color(track_id: int) -> tuple[int, int, int]:
    hue = (track_id * 47) % 180  # well-spread hues for consecutive IDs
    bgr = cv2.cvtColor(np.array([[[hue, 200, 170]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_tracks(
    image: np.ndarray, tracks: Sequence[TrackedPose], skeleton: Skeleton | None = None, min_score: float | None = None
) -> np.ndarray:
    """Draw each tracked person's skeleton and box, with its ID above the box in the ID's colour
    (a tentative track, ID 0, gets no label). min_score None: the tracker's keypoint threshold."""
    if min_score is None and tracks:
        min_score = tracks[0].keypoint_threshold
    draw_pose(image, tracks_result(tracks, skeleton), min_score=min_score, draw_boxes=True)
    scale = max(0.4, min(image.shape[:2]) / 900)
    for t in tracks:
        if not t.track_id:
            continue
        x, y = int(t.box[0]), max(int(t.box[1]), int(24 * scale) + 4)
        _label(image, f"#{t.track_id}", (x, y), scale, _id_color(t.track_id))
    return image


def draw_fps(image: np.ndarray, fps: float, extra: str = "") -> np.ndarray:
    """Write 'NN.N FPS' (and `extra`) in the top-left corner on a dark box sized to the text."""
    text = f"{fps:.1f} FPS" + (f"  {extra}" if extra else "")
    scale = max(0.5, min(image.shape[:2]) / 720)
    _label(image, text, (4, int(24 * scale + 6)), scale, (40, 40, 40))
    return image
