"""YOLO-family person detectors as Ultralytics exports them (ONNX or TFLite).

Three output layouts, told apart by the output shape (or forced with `layout=`):
  "v8"      (1, 4 + C, A): cx, cy, w, h, then C class scores per anchor (YOLOv8 / v11);
  "v5"      (1, A, 5 + C): cx, cy, w, h, objectness, C class scores (YOLOv5);
  "end2end" (1, N, 6): x1, y1, x2, y2, score, class with NMS inside the model (nms=True, YOLOv10/26).
Class 0 is COCO's person. Coordinates are in letterboxed input pixels; TFLite exports give them
normalised to [0, 1], which is recognised and scaled back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..backends.base import RawModel
from ..errors import ModelFileError

__all__ = ["LAYOUTS", "PAD_VALUE", "Letterbox", "YoloModel", "decode", "detect_layout", "letterbox"]

LAYOUTS = ("auto", "v8", "v5", "end2end")
MAX_END2END = 1000  # end-to-end exports keep at most this many rows; raw heads have more anchors
PAD_VALUE = 114  # Ultralytics' letterbox grey
DEFAULT_SIZE = 640  # input side for models exported with a dynamic input size
NORMALISED_MAX = 1.5  # box coordinates all below this: the export normalised them to [0, 1]


@dataclass(frozen=True)
class Letterbox:
    """How an image was scaled and padded into the network input; maps boxes back."""

    scale: float
    pad_x: float
    pad_y: float

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        out = np.array(boxes, np.float32)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        return out


def letterbox(image: np.ndarray, width: int, height: int, shrink: float = 1.0) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad (centred) to width x height, as Ultralytics does;
    `shrink` > 1 makes the image that many times smaller than the input, grey all round."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h) / shrink
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (width - new_w) / 2, (height - new_h) / 2
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    # area averaging when made much smaller: bilinear sampling would alias the zoom-out run's frame
    interpolation = cv2.INTER_AREA if shrink > 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation) if (new_w, new_h) != (w, h) else image
    canvas = np.full((height, width, 3), PAD_VALUE, np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox(scale, float(left), float(top))


def detect_layout(shape: tuple[int, ...]) -> str:
    """'v8', 'v5' or 'end2end' from a (1, a, b) output shape; ValueError when it is none of them."""
    if len(shape) != 3 or shape[0] != 1:
        raise ValueError(f"output shape {shape} is not (1, 4+classes, anchors), (1, anchors, 5+classes) or (1, N, 6)")
    _, a, b = shape
    if b == 6 and a <= MAX_END2END:
        return "end2end"
    if 5 <= a < b:
        return "v8"
    if 6 <= b < a:
        return "v5"
    raise ValueError(f"output shape {shape} is not (1, 4+classes, anchors), (1, anchors, 5+classes) or (1, N, 6)")


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def decode(output: np.ndarray, layout: str, width: int, height: int) -> np.ndarray:
    """One output tensor -> (M, 5) person candidates x1, y1, x2, y2, score in input pixels.

    Rows with non-finite values or empty boxes are dropped; nothing is thresholded here.
    """
    out = np.asarray(output, np.float32)[0]
    need = {"v8": (5, 0), "v5": (0, 6), "end2end": (0, 6)}.get(layout, (0, 0))
    if out.ndim != 2 or out.shape[0] < need[0] or out.shape[1] < need[1]:
        raise ValueError(f"output shape {np.shape(output)} does not fit the {layout!r} layout")
    if layout == "v8":
        rows = out.T
        boxes, scores = _xywh_to_xyxy(rows[:, :4]), rows[:, 4]
    elif layout == "v5":
        boxes, scores = _xywh_to_xyxy(out[:, :4]), out[:, 4] * out[:, 5]
    elif layout == "end2end":
        person = out[:, 5] == 0
        boxes, scores = out[person, :4], out[person, 4]
    else:
        raise ValueError(f"unknown YOLO layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    candidates = np.concatenate([boxes, scores[:, None]], axis=1)
    candidates = candidates[np.isfinite(candidates).all(axis=1)]
    coords = candidates[:, :4]
    if len(coords) and np.abs(coords).max() <= NORMALISED_MAX:
        candidates[:, [0, 2]] *= width
        candidates[:, [1, 3]] *= height
    keep = (candidates[:, 2] > candidates[:, 0]) & (candidates[:, 3] > candidates[:, 1])
    return candidates[keep]


class YoloModel:
    """Pre-processing and decoding for one YOLO export; `candidates(image)` before NMS."""

    def __init__(self, model: RawModel, layout: str = "auto") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown YOLO layout {layout!r}; valid: {', '.join(LAYOUTS)}")
        shape = model.input_shape
        if len(shape) != 4 or 3 not in (shape[1], shape[3]):
            raise ModelFileError(
                f"{model.path}: input shape {shape} is not an image batch (1, 3, H, W) or (1, H, W, 3); is this a "
                "YOLO detector?"
            )
        self.model = model
        self.nchw = shape[1] == 3
        h, w = (shape[2], shape[3]) if self.nchw else (shape[1], shape[2])
        self.width, self.height = w or DEFAULT_SIZE, h or DEFAULT_SIZE
        # Run once on a blank input: checks the output layout now rather than on the first frame.
        outputs = model.run(self._blob(np.full((self.height, self.width, 3), PAD_VALUE, np.uint8)))
        if len(outputs) != 1:
            raise ModelFileError(
                f"{model.path}: the detector has {len(outputs)} outputs; a YOLO export has one "
                f"({', '.join(LAYOUTS[1:])} layouts)"
            )
        try:
            found = detect_layout(outputs[0].shape)
        except ValueError as err:
            raise ModelFileError(
                f"{model.path}: {err}; pass a YOLO detection export (not segmentation, pose or classification), "
                "or force the layout with layout='v8' / 'v5' / 'end2end'"
            ) from None
        self.layout = found if layout == "auto" else layout

    def _blob(self, canvas_bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(canvas_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return (rgb.transpose(2, 0, 1) if self.nchw else rgb)[None]

    def candidates(self, image_bgr: np.ndarray, shrink: float = 1.0) -> tuple[np.ndarray, bool]:
        """(M, 5) person candidates in image pixels, and whether the model already ran NMS;
        `shrink`: the image that many times smaller than the input (letterbox)."""
        canvas, box = letterbox(image_bgr, self.width, self.height, shrink)
        output = self.model.run(self._blob(canvas))[0]
        found = decode(output, self.layout, self.width, self.height)
        found[:, :4] = box.to_image(found[:, :4])
        return found, self.layout == "end2end"
