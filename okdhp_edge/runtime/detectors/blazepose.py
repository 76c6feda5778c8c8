"""MediaPipe's BlazePose person detector (`pose_detection.tflite`, shipped in the mediapipe wheel).

An SSD on a 224x224 letterboxed input in [-1, 1] with 2254 fixed-size anchors. Each detection is
a face box plus 4 keypoints: mid-hip, a point on the full-body circle, mid-shoulder, a point on
the upper-body circle. The person box is the full-body circle around the mid-hip, narrowed to a
standing person's shape. It was made for one person close to the camera: far, small people are
missed, which `tiles` (running it on overlapping tiles) partly makes up for at a cost in time.
"""

from __future__ import annotations

import numpy as np

from ..backends.base import RawModel
from ..errors import ModelFileError
from .yolo import letterbox

__all__ = ["BlazePoseModel", "is_blazepose", "ssd_anchors", "tile_grid"]

SIZE = 224
STRIDES = (8, 16, 32, 32, 32)  # mediapipe's SsdAnchorsCalculator options for this model
ANCHORS_PER_CELL = 2
NUM_ANCHORS = 2254
SCORE_CLIP = 100.0
# The model gives a circle around the body; a standing person's box is narrower and a little
# shorter. Half-height and half-width in units of the circle's radius, fitted on the first 10
# hand-boxed vtest frames (the other 10 are held out; docs/runtime.md).
HALF_HEIGHT = 0.89
HALF_WIDTH = 0.34


def ssd_anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1], in the model's output order (layers of equal stride merged)."""
    centres = []
    i = 0
    while i < len(STRIDES):
        stride = STRIDES[i]
        repeats = 0
        while i < len(STRIDES) and STRIDES[i] == stride:
            repeats += ANCHORS_PER_CELL
            i += 1
        n = SIZE // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], 1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


def is_blazepose(model: RawModel) -> bool:
    """MediaPipe's pose-detector signature: one (1, 224, 224, 3) input and two outputs (a YOLO export
    has one output); the outputs' shapes are checked when the model loads."""
    return tuple(model.input_shape) == (1, SIZE, SIZE, 3) and model.output_count == 2


class BlazePoseModel:
    """Pre-processing and decoding for pose_detection.tflite; `candidates(image)` before NMS."""

    def __init__(self, model: RawModel, tiles: int = 1) -> None:
        if model.input_shape[1:] != (SIZE, SIZE, 3):
            raise ModelFileError(
                f"{model.path}: input {model.input_shape} is not MediaPipe's pose detector (1, 224, 224, 3)"
            )
        outputs = model.run(np.zeros((1, SIZE, SIZE, 3), np.float32))
        shapes = sorted(o.shape for o in outputs)
        if shapes != [(1, NUM_ANCHORS, 1), (1, NUM_ANCHORS, 12)]:
            raise ModelFileError(
                f"{model.path}: outputs {shapes} are not MediaPipe's pose detector (1, 2254, 12) + (1, 2254, 1)"
            )
        if tiles < 1:
            raise ValueError(f"tiles must be >= 1, got {tiles}")
        self.model = model
        self.tiles = tiles
        self.anchors = ssd_anchors()

    def candidates(self, image_bgr: np.ndarray) -> tuple[np.ndarray, bool]:
        """(M, 5) person candidates in image pixels (whole image, then each tile); NMS not done."""
        found = [self._run(image_bgr, 0, 0)]
        for x, y, w, h in tile_grid(image_bgr.shape[1], image_bgr.shape[0], self.tiles):
            found.append(self._run(image_bgr[y : y + h, x : x + w], x, y))
        return np.concatenate(found), False

    def _run(self, image_bgr: np.ndarray, x0: int, y0: int) -> np.ndarray:
        canvas, box = letterbox(image_bgr, SIZE, SIZE)
        # mediapipe pads with black; the grey of YOLO's letterbox makes no difference to it
        rgb = canvas[..., ::-1].astype(np.float32) / 127.5 - 1.0
        outputs = sorted(self.model.run(rgb[None]), key=lambda o: o.shape[-1])
        raw_scores, raw = outputs[0][0, :, 0], outputs[1][0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -SCORE_CLIP, SCORE_CLIP).astype(np.float64)))
        hip = raw[:, 4:6] / SIZE + self.anchors
        edge = raw[:, 6:8] / SIZE + self.anchors
        radius = np.linalg.norm(edge - hip, axis=1) * SIZE  # letterboxed pixels
        cx, cy = hip[:, 0] * SIZE, hip[:, 1] * SIZE
        half_w, half_h = radius * HALF_WIDTH, radius * HALF_HEIGHT
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1)
        boxes = box.to_image(boxes) + np.array([x0, y0, x0, y0], np.float32)
        return np.concatenate([boxes, scores[:, None].astype(np.float32)], 1)


def tile_grid(width: int, height: int, tiles: int) -> list[tuple[int, int, int, int]]:
    """`tiles` columns x rows of overlapping square-ish tiles (x, y, w, h); none for tiles=1."""
    if tiles <= 1:
        return []
    cols = tiles
    rows = max(1, round(tiles * height / width))
    tw, th = int(np.ceil(width / cols * 1.5)), int(np.ceil(height / rows * 1.5))
    tw, th = min(tw, width), min(th, height)
    xs = np.linspace(0, width - tw, cols).round().astype(int)
    ys = np.linspace(0, height - th, rows).round().astype(int)
    return [(int(x), int(y), tw, th) for y in ys for x in xs]
