"""MPII loader in the layout the field uses: one JSON list per split plus an image folder.

ROOT/annot/{train,valid}.json (val may also be named val.json), images under ROOT/images.
Each entry is one person: {"image": name relative to ROOT/images, "center": [x, y],
"scale": person height / 200, "joints": [[x, y] x 16], "joints_vis": [0/1 x 16],
"head_box": [x1, y1, x2, y2] (needed for PCKh), "image_id": optional int}. Coordinates are
0-based pixel indices. The person box is the square of side 200 x scale around the center.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..skeleton import Skeleton
from .base import DatasetError, Sample, drop_unreadable
from .coco import read_json

__all__ = ["MpiiSet", "load_mpii", "find_mpii_file", "PCKH_HEAD_FACTOR"]

PCKH_HEAD_FACTOR = 0.6  # MPII's PCKh normaliser is 0.6 x the head box diagonal


@dataclass
class MpiiSet:
    samples: list[Sample]
    annotation_file: Path
    image_dir: Path
    num_skipped: int


def find_mpii_file(root: str | os.PathLike, split: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: MPII data set directory not found")
    names = {"train": ["train.json"], "val": ["valid.json", "val.json"]}.get(split)
    if names is None:
        raise DatasetError(f"{root}: split must be 'train' or 'val', got {split!r}")
    candidates = [root / "annot" / n for n in names]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DatasetError(
            f"{root}: no MPII annotation file for split {split!r}; tried {', '.join(map(str, candidates))}"
        )
    return path


def _entry(entry: Any, i: int, path: Path, k: int, image_dir: Path, ids: dict[str, int]) -> Sample:
    where = f"{path}: entry {i}"
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected an object")
    for field in ("image", "center", "scale", "joints", "joints_vis"):
        if field not in entry:
            raise DatasetError(f"{where}: missing field {field!r}")
    try:
        center = np.asarray(entry["center"], np.float64)
        scale = float(entry["scale"])
        joints = np.asarray(entry["joints"], np.float64)
        vis = np.asarray(entry["joints_vis"], np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'center', 'scale', 'joints' and 'joints_vis' must be numbers") from None
    if center.shape != (2,) or not np.isfinite(center).all():
        raise DatasetError(f"{where}: 'center' must be [x, y]")
    if not math.isfinite(scale) or scale <= 0:
        raise DatasetError(f"{where}: 'scale' must be a positive number, got {entry['scale']!r}")
    if joints.shape != (k, 2) or vis.shape != (k,):
        raise DatasetError(
            f"{where}: need {k} joints [[x, y], ...] and {k} joints_vis, got shapes {joints.shape} and {vis.shape}"
        )
    labelled = vis > 0
    if not np.isfinite(joints[labelled]).all():
        raise DatasetError(f"{where}: labelled joints must have finite coordinates")
    head_size = 0.0
    if entry.get("head_box") is not None:
        try:
            hb = np.asarray(entry["head_box"], np.float64)
        except (TypeError, ValueError):
            hb = np.zeros(0)
        if hb.shape != (4,) or not np.isfinite(hb).all():
            raise DatasetError(f"{where}: 'head_box' must be [x1, y1, x2, y2]")
        head_size = PCKH_HEAD_FACTOR * float(np.hypot(hb[2] - hb[0], hb[3] - hb[1]))
    name = str(entry["image"])
    image_id = int(entry["image_id"]) if "image_id" in entry else ids.setdefault(name, len(ids) + 1)
    half = 100.0 * scale
    box = np.array([center[0] - half, center[1] - half, center[0] + half, center[1] + half], np.float32)
    out = np.zeros((k, 3), np.float32)
    out[labelled, :2] = joints[labelled]
    out[labelled, 2] = 2.0
    return Sample(image_dir / name, image_id, box, out, float((2 * half) ** 2), 1.0, head_size)


def _warn_missing_head_boxes(samples: list[Sample], path: Path) -> None:
    """PCKh needs a head box per person: say so when validation people lack one, instead of scoring fewer silently."""
    missing = sum(s.head_size <= 0 for s in samples)
    if missing == len(samples):
        warnings.warn(
            f"{path}: no entry has a 'head_box', so PCKh (MPII's metric) cannot be computed on this split; add "
            "'head_box': [x1, y1, x2, y2] to each entry (docs/data.md), or score and select checkpoints by PCK@0.2 "
            "(--set eval.metric=pck@0.2)",
            stacklevel=3,
        )
    elif missing:
        warnings.warn(
            f"{path}: {missing} of {len(samples)} people have no 'head_box'; PCKh leaves them out. Add "
            "'head_box': [x1, y1, x2, y2] to those entries to score every person",
            stacklevel=3,
        )


def load_mpii(root: str | os.PathLike, split: str, skeleton: Skeleton, progress: bool = True) -> MpiiSet:
    """Read an MPII-layout split; people without labelled joints are skipped."""
    path = find_mpii_file(root, split)
    image_dir = Path(root).expanduser() / "images"
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: MPII image directory not found (expected ROOT/images)")
    data = read_json(path, "MPII annotation file")
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of person entries")
    k = skeleton.num_keypoints
    first = data[0].get("joints") if data and isinstance(data[0], dict) else None
    if isinstance(first, list) and len(first) != k:
        raise DatasetError(
            f"{path}: entries have {len(first)} joints but skeleton {skeleton.name!r} has {k}; use the matching "
            "skeleton (mpii16)"
        )
    ids: dict[str, int] = {}
    samples = [_entry(e, i, path, k, image_dir, ids) for i, e in enumerate(data)]
    samples = [s for s in samples if (s.joints[:, 2] > 0).any()]
    if not samples:
        raise DatasetError(f"{path}: no person with labelled joints in split {split!r} ({len(data)} entries)")
    if split == "val":
        _warn_missing_head_boxes(samples, path)
    samples, bad = drop_unreadable(samples, str(image_dir), progress)
    if not samples:
        raise DatasetError(f"{image_dir}: none of the images of split {split!r} can be read; check the image directory")
    return MpiiSet(samples, path, image_dir, bad)
