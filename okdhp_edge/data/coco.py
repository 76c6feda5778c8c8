"""COCO person-keypoint loader: annotation JSON + images, boxes from ground truth or a detector.

Layout (see docs/data.md): ROOT/annotations/person_keypoints_{split}[2017].json and images in
the first of ROOT/images/{split}, ROOT/{split}2017, ROOT/images/{split}2017, ROOT/{split},
ROOT/images that exists. Crowd regions and people without labelled keypoints are skipped, as
in the standard top-down pipelines; image ids are kept so results go back to pycocotools.
A v=0 keypoint whose coordinates lie outside the image (the labeller writes those the teacher
puts well past the frame's edge) is read as codec.ABSENT: known not to be in the image.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..boxes import clip_to_image, iou_matrix
from ..codec import ABSENT
from ..geometry import outside_frame
from ..skeleton import Skeleton
from .base import DatasetError, Sample, drop_unreadable

__all__ = ["CocoSet", "load_coco", "find_coco_files", "read_json"]


@dataclass
class CocoSet:
    samples: list[Sample]
    annotation_file: Path
    image_dir: Path
    num_skipped: int  # unreadable images
    num_instances_skipped: int  # crowd, keypoint-less or degenerate-box instances


def read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{path}: not valid JSON ({err}); the {what} is corrupt or truncated, regenerate or re-download it"
        ) from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a UTF-8 text file; expected a JSON {what}") from None


def find_coco_files(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """(annotation file, image directory) of a split, trying the usual COCO namings."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: COCO data set directory not found")
    names = [f"person_keypoints_{split}.json", f"person_keypoints_{split}2017.json"]
    candidates = [root / "annotations" / n for n in names]
    ann = next((p for p in candidates if p.is_file()), None)
    if ann is None:
        tried = ", ".join(str(p) for p in candidates)
        raise DatasetError(f"{root}: no annotation file for split {split!r}; tried {tried}")
    dirs = [
        root / "images" / split,
        root / f"{split}2017",
        root / "images" / f"{split}2017",
        root / split,
        root / "images",
    ]
    image_dir = next((d for d in dirs if d.is_dir()), None)
    if image_dir is None:
        raise DatasetError(f"{root}: no image directory for split {split!r}; tried {', '.join(str(d) for d in dirs)}")
    return ann, image_dir


def _numbers(value: Any, n: int, where: str, field: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise DatasetError(f"{where}: field {field!r} must be a list of {n} numbers, got {str(value)[:80]}")
    try:
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: field {field!r} holds non-numbers: {str(value)[:80]}") from None
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise DatasetError(f"{where}: field {field!r} must hold {n} finite numbers, got {str(value)[:80]}")
    return arr


def _person_category(data: dict, path: Path, skeleton: Skeleton) -> int:
    cats = data.get("categories")
    if not isinstance(cats, list):
        raise DatasetError(f"{path}: missing 'categories' list")
    person = next((c for c in cats if isinstance(c, dict) and c.get("name") == "person"), None)
    if person is None:
        raise DatasetError(f"{path}: no category named 'person'; this is not a person-keypoints file")
    names = person.get("keypoints")
    if isinstance(names, list) and len(names) != skeleton.num_keypoints:
        raise DatasetError(
            f"{path}: the person category has {len(names)} keypoints but skeleton {skeleton.name!r} has "
            f"{skeleton.num_keypoints}; use the matching skeleton"
        )
    return int(person["id"])


def _images(data: dict, path: Path) -> dict[int, tuple[str, int, int]]:
    images = data.get("images")
    if not isinstance(images, list):
        raise DatasetError(f"{path}: missing 'images' list")
    out = {}
    for i, img in enumerate(images):
        where = f"{path}: images[{i}]"
        if not isinstance(img, dict):
            raise DatasetError(f"{where}: expected an object")
        try:
            out[int(img["id"])] = (str(img["file_name"]), int(img.get("width", 0)), int(img.get("height", 0)))
        except KeyError as err:
            raise DatasetError(f"{where}: missing field {err.args[0]!r}") from None
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: 'id', 'width' and 'height' must be integers") from None
    return out


def _parse_instance(
    ann: Any, i: int, path: Path, k: int, images: dict
) -> tuple[int, np.ndarray, np.ndarray, float, bool] | None:
    """(image_id, bbox xyxy, joints (K,3), area, crowd) of one annotation, or an error naming it."""
    where = f"{path}: annotations[{i}]" + (f" (id {ann.get('id')})" if isinstance(ann, dict) and "id" in ann else "")
    if not isinstance(ann, dict):
        raise DatasetError(f"{where}: expected an object")
    for field in ("image_id", "bbox"):
        if field not in ann:
            raise DatasetError(f"{where}: missing field {field!r}")
    try:
        image_id = int(ann["image_id"])
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'image_id' must be an integer") from None
    if image_id not in images:
        raise DatasetError(f"{where}: image_id {image_id} is not in the 'images' list")
    crowd = bool(ann.get("iscrowd", 0))
    x, y, w, h = _numbers(ann["bbox"], 4, where, "bbox")
    if "keypoints" not in ann:
        if crowd:
            return image_id, np.zeros(4), np.zeros((k, 3)), 0.0, True
        raise DatasetError(f"{where}: missing field 'keypoints'")
    joints = _numbers(ann["keypoints"], 3 * k, where, "keypoints").reshape(k, 3)
    if ((joints[:, 2] < 0) | (joints[:, 2] > 2)).any():
        raise DatasetError(f"{where}: keypoint visibility flags must be 0, 1 or 2")
    _, width, height = images[image_id]
    outside = outside_frame(joints[:, :2], (width, height), 0.0) if width > 0 and height > 0 else False
    absent = (joints[:, 2] == 0) & outside  # v=0 with a place outside the image: known not to be in it
    joints[joints[:, 2] == 0, :2] = 0.0
    joints[absent, 2] = ABSENT
    try:
        area = float(ann.get("area", w * h))
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'area' must be a number") from None
    if not math.isfinite(area):
        raise DatasetError(f"{where}: 'area' must be finite")
    return image_id, np.array([x, y, x + w, y + h]), joints, area, crowd


def _is_ignore_entry(ann: dict) -> bool:
    """A person annotated with a box but no keypoints (COCO's small people, the labeller's
    people the teacher could not label): not a sample, and the loss skips their pixels."""
    return not ann.get("iscrowd", 0) and int(ann.get("num_keypoints", 0) or 0) == 0


def _clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Clip to the image (when its size is known), in the core's pixel-centre convention; None for
    boxes with no extent."""
    if width > 0 and height > 0:
        box = clip_to_image(box[None], width, height)[0]
    x1, y1, x2, y2 = box
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    return np.asarray(box, np.float32)


def _detections(path: Path, person_id: int, images: dict, min_score: float) -> list[tuple[int, np.ndarray, float]]:
    data = read_json(path, "detection results file")
    if not isinstance(data, list):
        raise DatasetError(
            f"{path}: expected a list of COCO detection results [{{image_id, category_id, bbox, score}}, ...]"
        )
    out = []
    for i, det in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(det, dict):
            raise DatasetError(f"{where}: expected an object")
        for field in ("image_id", "bbox", "score"):
            if field not in det:
                raise DatasetError(f"{where}: missing field {field!r}")
        if int(det.get("category_id", person_id)) != person_id:
            continue
        image_id = int(det["image_id"])
        if image_id not in images:
            raise DatasetError(f"{where}: image_id {image_id} is not in the annotation file's images")
        score = float(det["score"])
        if score < min_score:
            continue
        x, y, w, h = _numbers(det["bbox"], 4, where, "bbox")
        out.append((image_id, np.array([x, y, x + w, y + h]), score))
    return out


def load_coco(
    root: str | os.PathLike,
    split: str,
    skeleton: Skeleton,
    detections: str | os.PathLike | None = None,
    min_box_score: float = 0.0,
    progress: bool = True,
) -> CocoSet:
    """Read a COCO person-keypoints split into samples (one per person box).

    With `detections` (a COCO detection results JSON), each person detection scoring at least
    `min_box_score` becomes a sample; its ground truth (for PCK) is the best-overlapping
    annotated person with IoU >= 0.5, or none (all joints unlabelled).
    """
    ann_path, image_dir = find_coco_files(root, split)
    data = read_json(ann_path, "COCO annotation file")
    if not isinstance(data, dict):
        raise DatasetError(f"{ann_path}: expected a JSON object with 'images', 'annotations' and 'categories'")
    person_id = _person_category(data, ann_path, skeleton)
    images = _images(data, ann_path)
    anns = data.get("annotations")
    if not isinstance(anns, list):
        raise DatasetError(f"{ann_path}: missing 'annotations' list")
    k = skeleton.num_keypoints
    gt: dict[int, list[tuple[np.ndarray, np.ndarray, float]]] = {}
    ignore: dict[int, list[np.ndarray]] = {}  # image id -> boxes of people with no labelled keypoint
    skipped = 0
    for i, ann in enumerate(anns):
        if isinstance(ann, dict) and ann.get("category_id", person_id) != person_id:
            continue
        image_id, box, joints, area, crowd = _parse_instance(ann, i, ann_path, k, images)
        _, width, height = images[image_id]
        clipped = None if crowd else _clip_box(box, width, height)
        if crowd or clipped is None or not (joints[:, 2] > 0).any():
            skipped += 1
            if clipped is not None and _is_ignore_entry(ann):
                ignore.setdefault(image_id, []).append(clipped)
            continue
        gt.setdefault(image_id, []).append((clipped, joints.astype(np.float32), area))
    samples: list[Sample] = []
    if detections is None:
        for image_id, people in gt.items():
            path = image_dir / images[image_id][0]
            unlabelled = np.array(ignore[image_id], np.float32) if image_id in ignore else None
            samples += [
                Sample(path, image_id, box, joints, area, ignore_boxes=unlabelled) for box, joints, area in people
            ]
    else:
        for image_id, box, score in _detections(Path(detections), person_id, images, min_box_score):
            _, width, height = images[image_id]
            clipped = _clip_box(box, width, height)
            if clipped is None:
                continue
            people = gt.get(image_id, [])
            overlap = iou_matrix(clipped, np.array([person[0] for person in people]))[0]
            best, best_iou = None, 0.5
            for person, iou in zip(people, overlap):
                if iou >= best_iou:
                    best, best_iou = person, iou
            joints = best[1] if best is not None else np.zeros((k, 3), np.float32)
            area = best[2] if best is not None else float((clipped[2] - clipped[0]) * (clipped[3] - clipped[1]))
            samples.append(Sample(image_dir / images[image_id][0], image_id, clipped, joints, area, score))
    if not samples:
        what = "detections" if detections is not None else "annotated (non-crowd, with keypoints) people"
        raise DatasetError(
            f"{ann_path}: no {what} in split {split!r} ({len(images)} images, {len(anns)} annotations, "
            f"{skipped} skipped); check that this is the right split and file"
        )
    samples, bad = drop_unreadable(samples, str(image_dir), progress)
    if not samples:
        raise DatasetError(f"{image_dir}: none of the images of split {split!r} can be read; check the image directory")
    return CocoSet(samples, ann_path, image_dir, bad, skipped)
