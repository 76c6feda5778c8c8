"""`BlazePoseLandmarker`: MediaPipe's BlazePose landmark models as a pose model with the
`Predictor`'s interface (`predict(image, boxes) -> PoseResult`, COCO-17), torch-free.

It exists to serve as a labelling teacher and a yardstick for students. MediaPipe's own crop
conventions are kept (docs/runtime.md): a square region around the person, 1.25x its size, fed
as 256x256 RGB in [0, 1] with black outside the image; outputs decoded as 39 landmarks (33 body
points, 2 auxiliary points that define the next region, 4 unused) with sigmoid visibility, and a
pose-presence score; landmark positions are refined from the heatmaps as MediaPipe does. Unlike
MediaPipe, the region is never rotated. With `refine_roi`, a second
pass runs on the region the auxiliary points give (MediaPipe's tracking region: centred on the
mid-hip, twice the mid-hip-to-circle distance, 1.25x). Of the 33 points, the 17 COCO ones are kept.

    teacher = BlazePoseLandmarker.fetch("full")     # pose_landmark_full.tflite from the mediapipe wheel
    result = teacher.predict(frame_bgr, boxes)      # PoseResult, scores = visibility
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..boxes import clip_to_image
from ..skeleton import COCO17, Skeleton
from .backends.base import RawModel
from .detectors.session import open_raw_model
from .errors import ModelFileError
from .predictor import check_boxes, check_image
from .result import PoseResult, StageTimes

__all__ = [
    "BlazePoseLandmarker",
    "LandmarkerConfig",
    "COCO_FROM_BLAZEPOSE",
    "VARIANTS",
    "is_blazepose_landmarker",
    "refine_from_heatmap",
    "roi_affine",
    "roi_from_auxiliary",
    "roi_to_image",
    "square_roi",
    "to_coco17",
]

SIZE = 256  # the landmark models' square input
NUM_LANDMARKS = 39
BODY = 33  # landmarks 33 and 34 are the auxiliary (region) points
HEATMAP_WINDOW = 7  # heatmap cells around a landmark that refine it (MediaPipe's kernel_size)
HEATMAP_CONFIDENCE = 0.5  # the window's peak (sigmoid) must reach this to move the landmark
# BlazePose topology index of each COCO-17 keypoint: nose, eyes, ears, shoulders, elbows,
# wrists, hips, knees, ankles (BlazePose's "left" is the person's left, as in COCO).
COCO_FROM_BLAZEPOSE = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
# teacher names -> fetch.py model keys
VARIANTS = {"lite": "pose_landmark_lite", "full": "pose_landmark_full", "heavy": "pose_landmark_heavy"}


@dataclass
class LandmarkerConfig:
    """MediaPipe's own settings by default."""

    scale: float = 1.25  # region side / person size (MediaPipe's rect transformation)
    min_presence: float = 0.5  # pose-presence threshold; a person below it gets all scores 0
    refine_roi: bool = True  # second pass on the region the auxiliary landmarks give
    refine_heatmap: bool = True  # move landmarks to their heatmap's local mean (MediaPipe's refinement)

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if not 0.0 <= self.min_presence <= 1.0:
            raise ValueError(f"min_presence must be in [0, 1], got {self.min_presence}")


def square_roi(boxes: np.ndarray, scale: float) -> np.ndarray:
    """(N, 4) xyxy person boxes -> (N, 3) square regions (cx, cy, side), side = scale x long side."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).clip(min=1.0) * scale
    return np.concatenate([centre, side[:, None]], 1)


def roi_from_auxiliary(auxiliary: np.ndarray, scale: float) -> np.ndarray:
    """(2, 2) auxiliary points in the image (mid-hip, a point on the body circle) -> (cx, cy, side)."""
    centre, edge = np.asarray(auxiliary, np.float64)
    side = max(2.0 * float(np.linalg.norm(edge - centre)), 1.0) * scale
    return np.array([centre[0], centre[1], side])


def roi_affine(roi: np.ndarray) -> np.ndarray:
    """(2, 3) map from input pixel indices to image pixel indices (for cv2.WARP_INVERSE_MAP).
    Input pixel j covers [j, j + 1] of the region's SIZE units, so its centre is j + 0.5."""
    cx, cy, side = (float(v) for v in roi)
    s = side / SIZE
    return np.array([[s, 0.0, cx - side / 2 + 0.5 * s], [0.0, s, cy - side / 2 + 0.5 * s]])


def roi_to_image(points: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """Model outputs (x, y in [0, SIZE] over the region) -> image pixel indices."""
    cx, cy, side = (float(v) for v in roi)
    return np.asarray(points, np.float64) * (side / SIZE) + [cx - side / 2, cy - side / 2]


def to_coco17(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 33+, 2) BlazePose points and (..., 33+) scores -> the COCO-17 subset, in COCO order."""
    index = list(COCO_FROM_BLAZEPOSE)
    return np.asarray(points)[..., index, :], np.asarray(scores)[..., index]


def refine_from_heatmap(points: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """(L, 2) landmarks in input pixels and (h, w, L) heatmap logits -> refined landmarks.

    Each landmark whose heatmap peaks confidently in the HEATMAP_WINDOW-cell square around it
    moves to the sigmoid-weighted mean of the cells' indices there (MediaPipe's refinement: cell
    indices, not cell centres, which agrees with the regressed positions on average).
    """
    h, w, count = heatmap.shape
    half = (HEATMAP_WINDOW - 1) // 2
    out = np.array(points, np.float64)
    for k in range(count):
        col, row = int(out[k, 0] / SIZE * w), int(out[k, 1] / SIZE * h)
        if not (0 <= col < w and 0 <= row < h):
            continue
        r0, r1, c0, c1 = max(0, row - half), min(h, row + half + 1), max(0, col - half), min(w, col + half + 1)
        confidence = _sigmoid(heatmap[r0:r1, c0:c1, k].astype(np.float64))
        if confidence.max() >= HEATMAP_CONFIDENCE:
            rows, cols = np.mgrid[r0:r1, c0:c1]
            total = confidence.sum()
            out[k] = ((confidence * cols).sum() / total * SIZE / w, (confidence * rows).sum() / total * SIZE / h)
    return out


def is_blazepose_landmarker(model: RawModel) -> bool:
    """MediaPipe's landmark-model signature: one (1, 256, 256, 3) input and five outputs."""
    return tuple(model.input_shape) == (1, SIZE, SIZE, 3) and model.output_count == 5


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


class BlazePoseLandmarker:
    """Runs pose_landmark_{lite,full,heavy}.tflite on person boxes; answers like `Predictor`.

    scores: the landmarks' visibility (sigmoid), 0 for a person whose pose-presence score is below
    `config.min_presence` (the model says there is no pose in that box). The models are batch 1:
    people are run one at a time (two runs each with `refine_roi`).
    """

    skeleton: Skeleton = COCO17

    def __init__(
        self, model_path: str | os.PathLike, num_threads: int | None = None, config: LandmarkerConfig | None = None
    ) -> None:
        self.model_path = Path(model_path)
        self.config = config or LandmarkerConfig()
        try:
            self.model = open_raw_model(self.model_path, None, "cpu", num_threads)
        except ModelFileError as err:
            raise ModelFileError(
                f"{err}; BlazePoseLandmarker takes MediaPipe's pose_landmark_{{lite,full,heavy}}.tflite"
            ) from None
        if not is_blazepose_landmarker(self.model):
            raise ModelFileError(
                f"{self.model_path}: not a MediaPipe BlazePose landmark model (input {self.model.input_shape}, "
                f"{self.model.output_count} outputs; expected (1, 256, 256, 3) and 5); use "
                "BlazePoseLandmarker.fetch('full')"
            )
        shapes = [o.shape for o in self.model.run(np.zeros((1, SIZE, SIZE, 3), np.float32))]
        self._landmarks = next((i for i, s in enumerate(shapes) if s == (1, NUM_LANDMARKS * 5)), None)
        self._flag = next((i for i, s in enumerate(shapes) if s == (1, 1)), None)
        self._heatmap = next((i for i, s in enumerate(shapes) if len(s) == 4 and s[-1] == NUM_LANDMARKS), None)
        self._segmentation = next((i for i, s in enumerate(shapes) if s == (1, SIZE, SIZE, 1)), None)
        if self._landmarks is None or self._flag is None or self._heatmap is None:
            raise ModelFileError(
                f"{self.model_path}: outputs {shapes} lack BlazePose's (1, 195) landmarks, (1, 1) pose flag "
                "and (1, h, w, 39) heatmaps"
            )
        self._local = threading.local()  # last_times, one per thread

    @classmethod
    def fetch(
        cls, variant: str = "full", num_threads: int | None = None, config: LandmarkerConfig | None = None
    ) -> BlazePoseLandmarker:
        """The landmark model `variant` (lite, full, heavy) from the cache, fetched when needed: full
        from the mediapipe wheel, lite and heavy from the npm package @mediapipe/pose (detectors/fetch.py)."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown BlazePose variant {variant!r}; valid: {', '.join(VARIANTS)}")
        from .detectors.fetch import fetch_model

        return cls(fetch_model(VARIANTS[variant]), num_threads, config)

    def __repr__(self) -> str:
        return f"BlazePoseLandmarker({str(self.model_path)!r}, {self.config})"

    @property
    def last_times(self) -> StageTimes:
        """This thread's last `predict` time (all of it counted as inference)."""
        return getattr(self._local, "times", None) or StageTimes()

    def predict(
        self, image: np.ndarray, boxes: np.ndarray | None = None, rgb: bool = False, flip_test: bool = False
    ) -> PoseResult:
        """COCO-17 poses for the people in `boxes` (N x 4 xyxy; None: the whole image); called like
        Predictor.predict, so it can drive PoseTracker. MediaPipe has no flip test: flip_test=True is an error.
        A box may run past the image's edges (a body the frame cuts, extrapolated as MediaPipe's detector
        does): its region is taken as given and padded; the result's boxes are clipped to the image."""
        if flip_test:
            raise ValueError(
                "BlazePoseLandmarker has no flip test (MediaPipe runs each region once); use flip_test=False"
            )
        t0 = time.perf_counter()
        image = check_image(image)
        regions = check_boxes(boxes, image.shape[1], image.shape[0], clip=False)
        image_rgb = image if rgb else image[..., ::-1]
        points = np.zeros((len(regions), BODY, 2))
        scores = np.zeros((len(regions), BODY))
        for n, roi in enumerate(square_roi(regions, self.config.scale)):
            landmarks, visibility, flag = self._run(image_rgb, roi)
            if self.config.refine_roi and flag >= self.config.min_presence:
                second = self._run(image_rgb, roi_from_auxiliary(landmarks[BODY : BODY + 2], self.config.scale))
                if second[2] >= self.config.min_presence:
                    landmarks, visibility, flag = second
            points[n] = landmarks[:BODY]
            scores[n] = visibility[:BODY] if flag >= self.config.min_presence else 0.0
        keypoints, kept = to_coco17(points, scores)
        t1 = time.perf_counter()
        self._local.times = StageTimes(0.0, t1 - t0, 0.0)
        boxes = clip_to_image(regions, image.shape[1], image.shape[0]).astype(np.float32)
        return PoseResult(keypoints.astype(np.float32), kept.astype(np.float32), boxes, COCO17.keypoints, COCO17.limbs)

    def segment(self, image: np.ndarray, boxes: np.ndarray | None = None, rgb: bool = False) -> np.ndarray:
        """(N, H, W) float32 person probabilities in [0, 1]: the landmark model's segmentation output
        for each box, on the region `predict` settles on, warped back onto the image (0 outside the
        region, and everywhere for a box without a pose). Used to cut real people out of frames."""
        if self._segmentation is None:
            raise ModelFileError(f"{self.model_path}: has no (1, 256, 256, 1) segmentation output")
        image = check_image(image)
        regions = check_boxes(boxes, image.shape[1], image.shape[0], clip=False)
        image_rgb = image if rgb else image[..., ::-1]
        height, width = image.shape[:2]
        masks = np.zeros((len(regions), height, width), np.float32)
        for n, roi in enumerate(square_roi(regions, self.config.scale)):
            landmarks, _, flag, logits = self._run(image_rgb, roi, with_mask=True)
            if self.config.refine_roi and flag >= self.config.min_presence:
                second_roi = roi_from_auxiliary(landmarks[BODY : BODY + 2], self.config.scale)
                second = self._run(image_rgb, second_roi, with_mask=True)
                if second[2] >= self.config.min_presence:
                    roi, flag, logits = second_roi, second[2], second[3]
            if flag >= self.config.min_presence:
                masks[n] = cv2.warpAffine(
                    _sigmoid(logits).astype(np.float32),
                    roi_affine(roi),
                    (width, height),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0.0,
                )
        return masks

    def _run(self, image_rgb: np.ndarray, roi: np.ndarray, with_mask: bool = False) -> tuple:
        """One region -> (39, 2) image-space landmarks, (39,) visibility, pose-presence score
        (and, `with_mask`, the (256, 256) segmentation logits)."""
        crop = cv2.warpAffine(
            image_rgb,
            roi_affine(roi),
            (SIZE, SIZE),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        outputs = self.model.run((crop.astype(np.float32) / 255.0)[None])
        raw = outputs[self._landmarks].reshape(NUM_LANDMARKS, 5)
        flag = float(outputs[self._flag].reshape(-1)[0])
        points = (
            refine_from_heatmap(raw[:, :2], outputs[self._heatmap][0]) if self.config.refine_heatmap else raw[:, :2]
        )
        visibility = _sigmoid(raw[:, 3].astype(np.float64))
        if with_mask:
            return roi_to_image(points, roi), visibility, flag, outputs[self._segmentation][0, :, :, 0]
        return roi_to_image(points, roi), visibility, flag
