"""Training frames for the person detector: synthetic scenes (every person boxed by construction)
and real frames boxed by the labeller (`python -m okdhp_edge.data.label`), held in memory at the
detector's input size, then randomly scaled, shifted, flipped and recoloured into training crops.

Real frames' boxes come from a teacher that misses people. Two things keep those misses from
being taught as background: the labeller's ignore entries (people found but not labelled), and,
for a static camera, a clean plate (`python -m okdhp_edge.data.plate`): pixels that differ from the
plate and lie in no box are people or things in motion, and their cells are ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..data.base import DatasetError
from ..data.coco import load_coco
from ..data.synthetic.render import SceneConfig, background_photos, render_scene
from ..runtime.detectors.yolo import PAD_VALUE
from ..skeleton import get_skeleton
from .targets import build_targets

__all__ = ["Frame", "DetectionFrames", "labelled_frames", "synthetic_frames"]

MOTION_THRESHOLD = 30  # mean absolute BGR difference from the plate that counts as motion
MIN_VISIBLE = 0.4  # a person cut by the crop to less than this share of the box becomes an ignore region
ZOOM_OUT_RANGE = (2.0, 4.0)  # zoomed-out crops show the whole frame this many times smaller than the input


@dataclass
class Frame:
    """One frame at its own size, its people (N, 4) and a mask of pixels not to count as background;
    `scale` brings it to the detector's input size (crops are scaled around that)."""

    image: np.ndarray
    boxes: np.ndarray
    ignore: np.ndarray  # (H, W) uint8, 1 = ignored
    scale: float = 1.0


def synthetic_frames(
    count: int, width: int, height: int, seed: int, backgrounds: str | os.PathLike | None = None
) -> list[Frame]:
    """`count` rendered scenes of 1-7 people, small to large; every other one on a `backgrounds`
    photo when given (the rest keep the generator's drawn clutter)."""
    drawn = SceneConfig(people_weights=(1.0,) * 7, height_range=(0.25, 0.95), crowd_shrink=0.85)
    configs = [drawn, replace(drawn, backgrounds=background_photos(backgrounds))] if backgrounds else [drawn]
    rng = np.random.default_rng(seed)
    frames = []
    for i in tqdm(range(count), desc="synthetic scenes", leave=False):
        image, people = render_scene(rng, configs[i % len(configs)], (width, height))
        boxes = np.array(
            [[a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]] for a in people], np.float32
        )
        frames.append(Frame(image, boxes.reshape(-1, 4), np.zeros((height, width), np.uint8)))
    return frames


def _motion(image: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Pixels that differ from the clean plate, as solid blobs (uint8 0/1)."""
    diff = cv2.absdiff(image, plate).mean(axis=2) > MOTION_THRESHOLD
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    blobs = cv2.morphologyEx(diff.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return cv2.dilate(blobs, kernel, iterations=2)


def _labelled_images(root: str | os.PathLike, split: str, first: int | None) -> list[tuple[Path, np.ndarray, object]]:
    """(image path, its people's boxes (N, 4) xyxy, ignore boxes or None) of a split, by file name (the
    first `first`): a person-keypoints split (the labeller's, or a generated set), or a detection split
    `annotations/instances_{split}.json` (python -m okdhp_edge.data.teachers.box), whose images with no
    box are kept as frames with nobody in them."""
    instances = Path(root).expanduser() / "annotations" / f"instances_{split}.json"
    if instances.is_file():
        images = _box_images(instances)
    else:
        coco = load_coco(root, split, get_skeleton("coco17"), progress=False)
        by_path: dict[Path, list] = {}
        for sample in coco.samples:
            by_path.setdefault(sample.image_path, []).append(sample)
        images = {
            path: (np.stack([s.bbox for s in samples]).astype(np.float32), samples[0].ignore_boxes)
            for path, samples in by_path.items()
        }
    paths = sorted(images)[:first] if first else sorted(images)
    return [(path, *images[path]) for path in paths]


def _box_images(path: Path) -> dict[Path, tuple[np.ndarray, None]]:
    """A COCO detection file's images -> their person boxes (xyxy; crowd regions left out)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        folder = path.parents[1] / "images"
        files = {image["id"]: folder / image["file_name"] for image in data["images"]}
        boxes: dict[Path, list] = {file: [] for file in files.values()}
        for ann in data["annotations"]:
            if ann.get("category_id", 1) == 1 and not ann.get("iscrowd", 0):
                x, y, w, h = ann["bbox"]
                boxes[files[ann["image_id"]]].append([x, y, x + w, y + h])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(
            f"{path}: not a COCO detection file ({type(err).__name__}: {err}); write it with "
            "python -m okdhp_edge.data.teachers.box"
        ) from None
    return {file: (np.asarray(b, np.float32).reshape(-1, 4), None) for file, b in boxes.items()}


def _paint(mask: np.ndarray, boxes: np.ndarray, value: int) -> None:
    for x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 4).round().astype(int):
        mask[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = value


def _load_frame(
    path: Path, boxes: np.ndarray, ignore_boxes, width: int, height: int, plate: np.ndarray | None, plate_path, root
) -> Frame:
    """One labelled frame at full resolution with its ignore mask (ignore entries, and motion
    against the plate outside the labelled boxes)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: cannot read this image of {root}; relabel the set or delete the frame's entry")
    mask = np.zeros(image.shape[:2], np.uint8)
    if plate is not None:
        if plate.shape != image.shape:
            raise DatasetError(
                f"{plate_path}: the plate is {plate.shape[1]}x{plate.shape[0]}, the frames of {root} are "
                f"{image.shape[1]}x{image.shape[0]}; make the plate from the same camera"
            )
        mask = _motion(image, plate)
        _paint(mask, boxes, 0)
    if ignore_boxes is not None:
        _paint(mask, ignore_boxes, 1)
    return Frame(image, boxes, mask, min(width / image.shape[1], height / image.shape[0]))


def labelled_frames(
    entries: list[str],
    width: int,
    height: int,
    *,
    first: int | None = None,
    plate: str | os.PathLike | None = None,
    spread: int | None = None,
) -> list[Frame]:
    """The labelled frames of every "coco:DIR" or "coco:DIR:SPLIT" entry (split "train" by default;
    the first `first` of each by file name), at full resolution, so that crops enlarged around a
    person keep the camera's detail. `spread`: only that many, evenly spaced, are read."""
    images = []
    for entry in entries:
        if not entry.startswith("coco:"):
            raise ValueError(
                f"{entry!r}: expected coco:DIR or coco:DIR:SPLIT (a folder written by python -m okdhp_edge.data.label "
                "or python -m okdhp_edge.data.teachers.box)"
            )
        root, _, split = entry[len("coco:") :].partition(":")
        if not Path(root).expanduser().is_dir():
            raise DatasetError(
                f"{entry}: folder {root} not found; label footage into it with python -m okdhp_edge.data.label VIDEO "
                f"--out {root}"
            )
        images += [(root, *image) for image in _labelled_images(root, split or "train", first)]
    if spread and images:
        images = [images[i] for i in np.linspace(0, len(images) - 1, spread).astype(int)]
    plate_image = None
    if plate is not None:
        plate_image = cv2.imread(str(plate), cv2.IMREAD_COLOR)
        if plate_image is None:
            raise DatasetError(
                f"{plate}: cannot read the clean plate; make it with python -m okdhp_edge.data.plate VIDEO --out "
                "PLATE.png"
            )
    return [
        _load_frame(path, boxes, ignore, width, height, plate_image, plate, root)
        for root, path, boxes, ignore in tqdm(images, desc="labelled frames", leave=False)
    ]


def _shrunk(frame: Frame, scale: float) -> Frame:
    """The frame made `scale` times its size by area averaging, as Detector's zoom-out run makes it
    (bilinear sampling at a quarter of the size would alias into textures the detector never sees)."""
    h, w = frame.image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
    ignore = cv2.resize(frame.ignore, size, interpolation=cv2.INTER_NEAREST)
    boxes = frame.boxes * np.array([size[0] / w, size[1] / h] * 2, np.float32)
    return Frame(image, boxes, ignore, 1.0)


class DetectionFrames:
    """Random training crops of `frames` with their CenterNet targets; `sample(rng)` -> one item."""

    def __init__(
        self,
        frames: list[Frame],
        crop: tuple[int, int],
        stride: int,
        scale: tuple[float, float] = (0.6, 1.6),
        zoom: float = 0.0,
        zoom_out: float = 0.0,
    ) -> None:
        if not frames:
            raise DatasetError("the detector has no training frames")
        self.frames = frames
        self.crop = crop
        self.stride = stride
        self.scale = scale
        self.zoom = zoom  # share of crops enlarged around one person until they fill 30-90 % of the crop's height
        self.zoom_out = zoom_out  # share of crops showing the whole frame 2-4x smaller, on the letterbox grey

    def __len__(self) -> int:
        return len(self.frames)

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        frame = self.frames[int(rng.integers(len(self.frames)))]
        cw, ch = self.crop
        h, w = frame.image.shape[:2]
        flip = rng.random() < 0.5
        if len(frame.boxes) and rng.random() < self.zoom:
            x1, y1, x2, y2 = frame.boxes[int(rng.integers(len(frame.boxes)))]
            s = float(rng.uniform(0.3, 0.9) * ch / max(y2 - y1, 1.0))
            ox = (x1 + x2) / 2 * s - cw * rng.uniform(0.25, 0.75)
            oy = (y1 + y2) / 2 * s - ch * rng.uniform(0.35, 0.65)
        elif self.zoom_out and rng.random() < self.zoom_out:
            # what Detector(zoom_out=k) shows the network: people near the camera at mid-size, and empty
            # scenes shrunk, whose textures must not turn into people
            frame = _shrunk(frame, frame.scale / float(np.exp(rng.uniform(*np.log(ZOOM_OUT_RANGE)))))
            s = 1.0
            ox, oy = self._origin(frame.image.shape[1], cw, rng), self._origin(frame.image.shape[0], ch, rng)
        else:
            s = frame.scale * float(np.exp(rng.uniform(*np.log(self.scale))))
            ox, oy = self._origin(w * s, cw, rng), self._origin(h * s, ch, rng)
        matrix = np.array([[s, 0, -ox], [0, s, -oy]], np.float32)
        if flip:
            matrix = np.array([[-1, 0, cw - 1], [0, 1, 0]], np.float32) @ np.vstack([matrix, [0, 0, 1]])
        image = cv2.warpAffine(frame.image, matrix, (cw, ch), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
        ignore = cv2.warpAffine(frame.ignore, matrix, (cw, ch), flags=cv2.INTER_NEAREST, borderValue=0)
        boxes, lost = self._warp_boxes(frame.boxes, matrix)
        for x1, y1, x2, y2 in lost.round().astype(int):
            ignore[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = 1
        image = self._recolour(image, rng)
        gw, gh = cw // self.stride, ch // self.stride
        grid_ignore = cv2.resize(ignore.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA) > 0.5
        item = build_targets(boxes, grid_ignore, cw, ch, self.stride)
        item["image"] = np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1), np.float32) / 255.0
        return item

    @staticmethod
    def _origin(side: float, crop: int, rng: np.random.Generator) -> float:
        """Where the crop starts along one side of the scaled frame: mostly on the frame, a little
        past its edges; a frame smaller than the crop lands anywhere inside it."""
        if side <= crop:
            return -rng.uniform(0, crop - side)
        margin = 0.1 * crop
        return rng.uniform(-margin, side - crop + margin)

    def _warp_boxes(self, boxes: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes through the affine, clipped to the crop; those mostly cut away are returned apart."""
        if not len(boxes):
            return boxes, boxes
        corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 3]]], axis=1)  # (N, 2, 2)
        moved = corners @ matrix[:, :2].T + matrix[:, 2]
        out = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
        cw, ch = self.crop
        clipped = out.copy()
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, cw)
        clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, ch)
        area = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
        kept = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        visible = kept / np.maximum(area, 1e-6)
        good = visible >= MIN_VISIBLE
        partly = (visible > 0) & ~good
        return clipped[good], clipped[partly]

    @staticmethod
    def _recolour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Brightness, contrast and saturation jitter, sometimes blur or grey: cameras differ."""
        out = image.astype(np.float32)
        out = (out - out.mean()) * rng.uniform(0.7, 1.3) + out.mean() + rng.uniform(-30, 30)
        if rng.random() < 0.3:
            grey = out.mean(axis=2, keepdims=True)
            out = grey + (out - grey) * rng.uniform(0.0, 1.2)
        if rng.random() < 0.2:
            out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 1.5)))
        return out.clip(0, 255).astype(np.uint8)
