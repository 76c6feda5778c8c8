"""`Predictor`: image + person boxes -> keypoints, with any backend.

The pipeline is the one validation and export calibration use, so a model is deployed on exactly
the pixels it was evaluated on: `crop_people` + `normalize` (okdhp_edge.preprocess), the backend,
then `HeatmapCodec.decode_to_image`. Inputs are checked here, before they reach native code.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..boxes import clip_to_image
from ..codec import HeatmapCodec, flip_heatmaps
from ..preprocess import crop_people, normalize
from ..skeleton import Skeleton
from ..spec import ModelSpec
from .backends import Backend, open_backend
from .bundled import DEFAULT_POSE_MODEL, resolve_pose_model
from .errors import InputError, ModelFileError
from .result import PoseResult, StageTimes

__all__ = ["Predictor", "PreparedBatch", "check_boxes", "check_image"]


@dataclass
class PreparedBatch:
    """Network input for N people and what is needed to map the answer back to the image."""

    inputs: np.ndarray  # (N, ...) float32 in the artifact's input layout
    crop_to_image: np.ndarray  # (N, 2, 3)
    boxes: np.ndarray  # (N, 4) clipped xyxy


class Predictor:
    """Runs an exported student (or a .safetensors student, through torch) on images.

    model_path: a file, or the name of a pose student shipped in the package (`bundled_models()`;
    default "real-tiny"): a name opens its `.tflite` where LiteRT is installed, else its `.onnx`.
    backend: None picks it from the suffix (.onnx, .tflite, .engine, .mlpackage, .safetensors);
    with a bundled name, it picks that name's file for this backend.
    device: "auto", "cpu", "cuda", "tensorrt", "coreml" (what each backend accepts differs).
    num_threads: CPU threads for the backend; None leaves the backend's default.
    max_batch: most person crops per backend call when the model accepts any batch size; an
    artifact whose metadata sets a lower `max_batch` (TensorRT profile, Core ML range) lowers it.
    One Predictor may be shared by threads: backends that cannot run concurrently (TensorRT,
    Core ML) are called one at a time, the others (ONNX Runtime, LiteRT, torch) run in parallel.
    On the CPU (ONNX Runtime, LiteRT) with num_threads > 1 (None: a thread per core), one crop
    runs on all the threads, and several crops are split into up to that many parts that run
    concurrently, each on one thread (`Backend.parts`, `Backend.run_part`): short kernels share
    the cores less well than whole crops do (docs/runtime.md, Benchmark).
    """

    def __init__(
        self,
        model_path: str | os.PathLike = DEFAULT_POSE_MODEL,
        backend: str | None = None,
        device: str = "auto",
        num_threads: int | None = None,
        *,
        max_batch: int = 16,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.model_path: Path = resolve_pose_model(model_path, backend)
        self.backend: Backend = open_backend(self.model_path, backend, device, num_threads)
        self.spec: ModelSpec = self.backend.spec
        self.skeleton: Skeleton = self.spec.skeleton
        self.codec = HeatmapCodec(self.spec.input_size, self.spec.heatmap_size)
        self.fixed_batch: int | None = self.backend.batch
        self.batch_size = self.fixed_batch or min(max_batch, self.backend.max_batch or max_batch)
        self._run_lock = nullcontext() if self.backend.thread_safe else threading.Lock()
        self._local = threading.local()  # last_times, one per thread
        # the calling thread runs one part itself; threads start on first use
        self._pool = ThreadPoolExecutor(self.backend.parts - 1) if self.backend.parts > 1 else None

    @property
    def last_times(self) -> StageTimes:
        """The stage times of this thread's last `predict` (threads sharing the Predictor each see their own)."""
        return getattr(self._local, "times", None) or StageTimes()

    def __repr__(self) -> str:
        return f"Predictor({str(self.model_path)!r}, {self.backend.describe()}, spec={self.spec.name!r})"

    # -- the three stages; `predict` chains them and records their times -------------------

    def preprocess(self, image: np.ndarray, boxes: np.ndarray | None = None, rgb: bool = False) -> PreparedBatch:
        """Check the inputs, cut one crop per box and normalise it for the network."""
        image = check_image(image)
        boxes = check_boxes(boxes, image.shape[1], image.shape[0])
        crops, crop_to_image = crop_people(image, boxes, self.spec.input)
        inputs = normalize(crops, self.spec.input, bgr=not rgb)
        have, want = self.spec.input.layout.upper(), self.backend.info.input_layout
        if have != want:
            inputs = np.ascontiguousarray(
                inputs.transpose(0, 2, 3, 1) if want == "NHWC" else inputs.transpose(0, 3, 1, 2)
            )
        return PreparedBatch(inputs, crop_to_image, boxes)

    def infer(self, inputs: np.ndarray, flip_test: bool = False) -> np.ndarray:
        """Network input (N, ...) -> heatmaps (N, K, h, w) float32, batched; flip test averages
        with the mirrored crops' heatmaps (mirroring is exact on this codec's grid)."""
        n = len(inputs)
        if flip_test:
            width_axis = 3 if self.backend.info.input_layout == "NCHW" else 2
            inputs = np.concatenate([inputs, np.flip(inputs, axis=width_axis)])
        parts = split_evenly(len(inputs), self.backend.parts if self._pool else 1)
        if len(parts) == 1:
            heatmaps = self._run_part(inputs, part=False)
        else:
            others = [self._pool.submit(self._run_part, inputs[a:b], True) for a, b in parts[1:]]
            a, b = parts[0]
            heatmaps = np.concatenate([self._run_part(inputs[a:b], True)] + [f.result() for f in others])
        if flip_test:
            heatmaps = (heatmaps[:n] + flip_heatmaps(heatmaps[n:], self.skeleton.flip_index)) * 0.5
        return heatmaps

    def postprocess(self, heatmaps: np.ndarray, batch: PreparedBatch) -> PoseResult:
        """Heatmaps -> image-space keypoints and scores."""
        keypoints, scores = self.codec.decode_to_image(heatmaps, batch.crop_to_image)
        return PoseResult(
            keypoints=keypoints.astype(np.float32),
            scores=scores.astype(np.float32),
            boxes=batch.boxes,
            keypoint_names=self.skeleton.keypoints,
            limbs=self.skeleton.limbs,
        )

    def predict(
        self,
        image: np.ndarray,
        boxes: np.ndarray | None = None,
        rgb: bool = False,
        flip_test: bool = False,
    ) -> PoseResult:
        """Poses for the people in `boxes` (N x 4 xyxy; None: the whole image is one person).

        image: HxWx3 uint8, BGR like OpenCV unless rgb=True; HxW grayscale and HxWx4 are converted.
        Boxes are clipped to the image; non-finite, inverted or empty-after-clipping boxes are errors.
        """
        t0 = time.perf_counter()
        batch = self.preprocess(image, boxes, rgb)
        t1 = time.perf_counter()
        heatmaps = self.infer(batch.inputs, flip_test) if len(batch.inputs) else self._empty_heatmaps()
        t2 = time.perf_counter()
        result = self.postprocess(heatmaps, batch)
        self._local.times = StageTimes(t1 - t0, t2 - t1, time.perf_counter() - t2)
        return result

    # -- helpers -------------------------------------------------------------------------------

    def _empty_heatmaps(self) -> np.ndarray:
        w, h = self.spec.heatmap_size
        return np.zeros((0, self.skeleton.num_keypoints, h, w), np.float32)

    def _run_part(self, inputs: np.ndarray, part: bool) -> np.ndarray:
        """Heatmaps of a run of crops, in backend calls of at most `batch_size`; `part`: one of
        several runs going on at once, each on one thread."""
        size = self.batch_size
        return np.concatenate([self._run_chunk(inputs[i : i + size], part) for i in range(0, len(inputs), size)])

    def _run_chunk(self, chunk: np.ndarray, part: bool) -> np.ndarray:
        """Heatmaps of one backend call; `part`: one of several calls running at once."""
        n = len(chunk)
        if self.fixed_batch and n < self.fixed_batch:  # pad a short last chunk to the engine's batch
            pad = np.zeros((self.fixed_batch - n, *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        with self._run_lock:
            out = self.backend.run_part(chunk) if part else self.backend.run(chunk)
        if self.backend.info.output_layout == "NHWC" and out.ndim == 4:
            out = out.transpose(0, 3, 1, 2)
        w, h = self.spec.heatmap_size
        expected = (len(chunk), self.skeleton.num_keypoints, h, w)
        if out.shape != expected:
            raise ModelFileError(
                f"{self.model_path}: the model returned {out.shape} but its metadata promises heatmaps {expected} "
                "(N, K, h, w); the metadata does not belong to this model: re-export it"
            )
        return np.ascontiguousarray(out[:n], dtype=np.float32)


def split_evenly(n: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) ranges cutting n items into min(parts, n) runs whose lengths differ by at most one."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def check_image(image: object) -> np.ndarray:
    """Return an HxWx3 uint8 view/copy of `image` in its own channel order, or raise InputError."""
    if image is None:
        raise InputError(
            "image is None: cv2.imread/VideoCapture.read return None when they cannot read a file or frame; check "
            "the path or camera"
        )
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"image must be a numpy array (HxWx3 uint8), got {type(image).__name__}; convert with np.asarray(image)"
        )
    if image.dtype != np.uint8:
        hint = (
            " ; for floats in [0, 1] use (image * 255).round().clip(0, 255).astype(np.uint8)"
            if image.dtype.kind == "f"
            else ""
        )
        raise InputError(f"image must be uint8 (0-255), got dtype {image.dtype}{hint}")
    if image.ndim == 4:
        raise InputError(f"image has shape {image.shape}: predict takes one image (HxWx3); call it once per frame")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InputError(
            f"image has shape {image.shape}; expected HxWx3 (also accepted: HxW or HxWx1 grayscale, HxWx4 with alpha)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image is empty (shape {image.shape})")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if image.shape[2] == 4:
        image = image[..., :3]  # alpha dropped; colour order kept
    return np.ascontiguousarray(image)


def check_boxes(boxes: object, width: int, height: int, clip: bool = True) -> np.ndarray:
    """Validate xyxy boxes and clip them to the image; returns (N, 4) float32.

    None -> the whole image. A (4,) box is one person; (0, 4) means nobody. Boxes are clipped to
    [0, width - 1] x [0, height - 1]; non-finite or inverted boxes, and boxes with less than one
    pixel of width or height left after clipping (entirely outside the image), raise InputError.
    clip=False checks the same but returns the boxes as given: regions that may run past the
    image's edges, as MediaPipe's landmark model takes them (the warp pads them).
    """
    if boxes is None:
        return np.array([[0.0, 0.0, width - 1.0, height - 1.0]], np.float32)
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("boxes must be numeric, an N x 4 array of x1, y1, x2, y2") from None
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None]
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        hint = "; detector output with scores? pass boxes[:, :4]" if arr.ndim == 2 and arr.shape[1] > 4 else ""
        raise InputError(f"boxes have shape {arr.shape}; expected N x 4 (x1, y1, x2, y2){hint}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise InputError(f"box(es) {bad.tolist()} contain NaN or infinity: {arr[bad[0]].tolist()}")
    inverted = np.flatnonzero((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1]))
    if inverted.size:
        raise InputError(
            f"box(es) {inverted.tolist()} have x2 < x1 or y2 < y1 (expected x1, y1, x2, y2): "
            f"{arr[inverted[0]].tolist()}"
        )
    clipped = clip_to_image(arr, width, height)
    empty = np.flatnonzero((clipped[:, 2] - clipped[:, 0] < 1) | (clipped[:, 3] - clipped[:, 1] < 1))
    if empty.size:
        raise InputError(
            f"box(es) {empty.tolist()} are degenerate or outside the {width}x{height} image "
            f"(less than 1 pixel wide or high after clipping): {arr[empty[0]].tolist()}; drop them before predict"
        )
    return (clipped if clip else arr).astype(np.float32)
