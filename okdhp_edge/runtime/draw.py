"""Drawing helpers for demos: skeletons (left/right coloured), boxes, scores and an FPS line.

All functions draw in place on a BGR uint8 image and return it.
"""
from __future__ import annotations

import cv2
import numpy as np

from .result import PoseResult

__all__ = ["draw_fps", "draw_pose"]

LEFT = (0, 165, 255)  # BGR orange
RIGHT = (255, 144, 30)  # BGR blue
CENTER = (80, 220, 80)  # BGR green
BOX = (200, 200, 200)


def _side(name: str) -> tuple[int, int, int]:
    name = name.lower()
    if name.startswith("left"):
        return LEFT
    if name.startswith("right"):
        return RIGHT
    return CENTER


def draw_pose(
    image: np.ndarray,
    result: PoseResult,
    min_score: float = 0.3,
    draw_boxes: bool = True,
    draw_scores: bool = False,
) -> np.ndarray:
    """Draw every person's limbs and keypoints whose scores reach `min_score`.

    draw_scores writes each person's mean keypoint score above its box.
    """
    scale = max(1, round(min(image.shape[:2]) / 320))
    colors = [_side(n) for n in result.keypoint_names]
    for kpts, scores, box in zip(result.keypoints, result.scores, result.boxes):
        ok = np.isfinite(kpts).all(axis=1) & (scores >= min_score)
        pts = np.round(np.nan_to_num(kpts)).astype(int)
        if draw_boxes:
            cv2.rectangle(image, tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:]), BOX, 1, cv2.LINE_AA)
        for a, b in result.limbs:
            if ok[a] and ok[b]:
                color = colors[a] if colors[a] == colors[b] else CENTER
                cv2.line(image, tuple(pts[a]), tuple(pts[b]), color, 2 * scale, cv2.LINE_AA)
        for k in np.flatnonzero(ok):
            cv2.circle(image, tuple(pts[k]), 2 * scale + 1, colors[k], -1, cv2.LINE_AA)
        if draw_scores:
            origin = (int(box[0]), max(int(box[1]) - 4, 12))
            cv2.putText(image, f"{float(scores.mean()):.2f}", origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, BOX, scale, cv2.LINE_AA)
    return image


def draw_fps(image: np.ndarray, fps: float, extra: str = "") -> np.ndarray:
    """Write 'NN.N FPS' (and `extra`) in the top-left corner, outlined so it reads on any background."""
    text = f"{fps:5.1f} FPS" + (f"  {extra}" if extra else "")
    scale = max(0.5, min(image.shape[:2]) / 720)
    origin = (8, int(24 * scale + 4))
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image
