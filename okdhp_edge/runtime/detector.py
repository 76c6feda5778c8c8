"""`Detector`: image -> person boxes, torch-free, for `PoseTracker` and `Predictor`.

    detector = Detector()                        # the default: okdhp-any, ONNX Runtime alone (below)
    detector = Detector("okdhp-any")             # this project's any-scene detector: near and far, shipped
    detector = Detector("okdhp-person")          # this project's street detector: small, far people, shipped
    detector = Detector("mediapipe")             # MediaPipe's pose detector, fetched once
    detector = Detector("yolo11n.onnx")          # an Ultralytics export (.onnx or .tflite)
    boxes = detector.detect(frame_bgr)           # (N, 5) x1, y1, x2, y2, score; people only
    result = predictor.predict(frame_bgr, boxes[:, :4])

Several models given as a list run one after the other on each frame, and their boxes are merged
(each model keeps its own thresholds; NMS across them). The default is this project's any-scene
detector, which finds near and far people with ONNX Runtime alone and nothing fetched; the former
default, okdhp-person with MediaPipe's, is `Detector(["okdhp-person", "mediapipe"])`; docs/runtime.md
has the measurements. The family is chosen from the file:
MediaPipe's pose detector by its input and outputs (detectors/blazepose.py), anything else as a
YOLO export by its output shape (detectors/yolo.py; the project's detector is exported in YOLOv8's
layout). NMS is numpy (okdhp_edge/boxes.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..boxes import clip_boxes, inside_bigger, nms
from .detectors.blazepose import BlazePoseModel, is_blazepose
from .detectors.session import open_raw_model
from .detectors.yolo import YoloModel
from .errors import BackendUnavailableError, ModelFileError
from .predictor import check_image

__all__ = ["DEFAULT_MODELS", "Detector", "DetectorConfig", "MODEL_NAMES", "SHIPPED_DETECTORS"]

MAX_CANDIDATES = 1000  # best-scoring candidates that enter NMS (bounds its cost on a low threshold)
# this project's detectors, inside the package; weights/NAME/ holds each one's record
SHIPPED_DETECTORS = {
    name: Path(__file__).parent / "detectors" / f"{name}.onnx" for name in ("okdhp-person", "okdhp-any")
}
DEFAULT_MODELS = ("okdhp-any",)
MODEL_NAMES = ("default", *SHIPPED_DETECTORS, "mediapipe")  # what Detector takes by name instead of a file
MERGE_IOU = 0.5  # boxes of different models overlapping more than this are one person
PART_SHARE = 1 / 16  # a box this small, 80 % inside one that scores as high, is a part of that person


@dataclass
class DetectorConfig:
    """What counts as a person, and how many are kept."""

    score_threshold: float = 0.3  # candidates scoring below this are dropped
    iou_threshold: float = 0.6  # candidates overlapping a better one more than this are dropped (NMS)
    max_people: int = 20  # the most boxes returned, best first

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if int(self.max_people) < 0:
            raise ValueError(f"max_people must be >= 0, got {self.max_people}")


# MediaPipe's own thresholds for its pose detector (pose_detection_cpu.pbtxt)
BLAZEPOSE_DEFAULTS = DetectorConfig(score_threshold=0.5, iou_threshold=0.3)
# a shipped detector's own thresholds, where they differ from DetectorConfig()'s: okdhp-any's second
# boxes on one near person overlap the first by 0.5-0.6, and street crowds lose nobody at 0.5 (docs/runtime.md)
SHIPPED_DEFAULTS = {SHIPPED_DETECTORS["okdhp-any"]: DetectorConfig(iou_threshold=0.5)}


class Detector:
    """Finds people in BGR frames. `detect(image)` -> (N, 5) float32 x1, y1, x2, y2, score,
    sorted by score, clipped to the image; `detector(image)` is the same call.

    model: a YOLO-family .onnx or .tflite export, MediaPipe's pose_detection.tflite, the names
    "okdhp-person" (far people, one street seen) and "okdhp-any" (near and far people; both shipped
    in the package) or "mediapipe" (fetched once, detectors/fetch.py), or a list of these, whose
    boxes are merged; None or "default" is DEFAULT_MODELS.
    backend / device / num_threads as for Predictor (applied to every model).
    Thresholds left as None take each model's defaults (YOLO: DetectorConfig(), okdhp-any NMS at IoU 0.5;
    MediaPipe: its own).
    layout (YOLO): "auto" (from the output shape), or force "v8", "v5" or "end2end".
    tiles (MediaPipe): also run on this many overlapping tile columns, to find smaller people.
    zoom_out (YOLO): also run on the frame this many times smaller (grey all round), where people
    who fill the frame look the size the model learnt best; one NMS over both runs (twice the cost).
    part_share: a box at most this share of the area of a box that scores at least as high, with
    80 % of it inside that box, is a part of that person (a face, an eye) and is dropped; 0 keeps all.
    """

    def __init__(
        self,
        model: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        backend: str | None = None,
        device: str = "auto",
        num_threads: int | None = None,
        *,
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_people: int | None = None,
        layout: str = "auto",
        tiles: int = 1,
        zoom_out: float | None = None,
        part_share: float = PART_SHARE,
    ) -> None:
        if not 0 <= part_share < 1:
            raise ValueError(f"part_share must be in [0, 1) (0 keeps every box), got {part_share}")
        self.part_share = float(part_share)
        paths = resolve_models(model)
        raws = []
        for path in paths:
            try:
                raws.append(open_raw_model(path, backend, device, num_threads))
            except BackendUnavailableError as err:  # no LiteRT (e.g. Python 3.8 on JetPack 5): say what runs without
                raise BackendUnavailableError(
                    f"{err}; without it, Detector('okdhp-any') runs on ONNX Runtime alone (shipped in the package)"
                ) from None
            except ModelFileError as err:
                raise ModelFileError(
                    f"{err}; Detector takes a YOLO detection export (.onnx or .tflite), "
                    f"{', '.join(repr(n) for n in MODEL_NAMES[1:])}, or None for the default"
                ) from None
        blazeposes = [is_blazepose(raw) for raw in raws]
        if tiles != 1 and not any(blazeposes):
            raise ValueError(
                f"tiles={tiles}: tiling is for MediaPipe's pose detector; {paths[0].name} is a YOLO export (leave "
                "tiles=1)"
            )
        if zoom_out is not None and (not zoom_out > 1 or all(blazeposes)):
            raise ValueError(
                f"zoom_out={zoom_out}: needs a number > 1 (how many times smaller the second run sees the frame) "
                "and a YOLO-layout model such as okdhp-person"
            )
        self.parts: list[_Part] = []
        for path, raw, blazepose in zip(paths, raws, blazeposes):
            family = BlazePoseModel(raw, tiles) if blazepose else YoloModel(raw, layout)
            base = BLAZEPOSE_DEFAULTS if blazepose else SHIPPED_DEFAULTS.get(path, DetectorConfig())
            config = DetectorConfig(
                base.score_threshold if score_threshold is None else score_threshold,
                base.iou_threshold if iou_threshold is None else iou_threshold,
                base.max_people if max_people is None else max_people,
            )
            self.parts.append(_Part(path, family, config, None if blazepose else zoom_out))

    # the first model's path, family and thresholds, for the common one-model case
    @property
    def model_path(self) -> Path:
        return self.parts[0].path

    @property
    def family(self) -> BlazePoseModel | YoloModel:
        return self.parts[0].family

    @property
    def config(self) -> DetectorConfig:
        return self.parts[0].config

    def __repr__(self) -> str:
        return f"Detector({', '.join(map(repr, self.parts))})"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """People in one BGR uint8 frame (grayscale and BGRA are converted, like Predictor)."""
        image = check_image(image)
        found = np.concatenate([part.detect(image) for part in self.parts])
        if len(self.parts) > 1:
            found = found[nms(found[:, :4], found[:, 4], MERGE_IOU)]
        if self.part_share:
            found = found[~inside_bigger(found[:, :4], found[:, 4], self.part_share)]
        found = found[np.argsort(-found[:, 4], kind="stable")]
        limit = max(int(p.config.max_people) for p in self.parts)
        return np.ascontiguousarray(found[:limit], np.float32).reshape(-1, 5)


@dataclass
class _Part:
    """One model of a Detector with its own thresholds."""

    path: Path
    family: BlazePoseModel | YoloModel
    config: DetectorConfig
    zoom_out: float | None = None  # YOLO: a second run on the frame this many times smaller

    def __repr__(self) -> str:
        tiles = f" tiles={self.family.tiles}" if isinstance(self.family, BlazePoseModel) else ""
        zoom = f" zoom_out={self.zoom_out}" if self.zoom_out else ""
        return f"{self.path.name!r} {type(self.family).__name__}{tiles}{zoom} {self.config}"

    def detect(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        found, done = self.family.candidates(image)
        if self.zoom_out:
            zoomed, _ = self.family.candidates(image, self.zoom_out)
            found, done = np.concatenate([found, zoomed]), False
        found = found[found[:, 4] >= self.config.score_threshold]
        found = clip_boxes(found, width, height)
        if not done:
            found = found[np.argsort(-found[:, 4], kind="stable")[:MAX_CANDIDATES]]
            found = found[nms(found[:, :4], found[:, 4], self.config.iou_threshold)]
        found = found[np.argsort(-found[:, 4], kind="stable")]
        return found[: int(self.config.max_people)].reshape(-1, 5)


def resolve_models(model: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Path]:
    """Model files for a Detector's `model` argument: names resolved, MediaPipe fetched when named."""
    if model is None or (isinstance(model, str) and model == "default"):
        names: Sequence = DEFAULT_MODELS
    elif isinstance(model, (list, tuple)):
        names = model
    else:
        names = [model]
    if not names:
        raise ValueError("Detector needs at least one model")
    paths = []
    for name in names:
        if isinstance(name, str) and name in SHIPPED_DETECTORS:
            paths.append(SHIPPED_DETECTORS[name])
        elif isinstance(name, str) and name == "mediapipe":
            from .detectors.fetch import fetch_pose_detector  # only MediaPipe needs pip and a cache

            paths.append(fetch_pose_detector())
        else:
            paths.append(Path(name))
    return paths
