"""Held-out crops for calibration and verification, made exactly as at inference.

Both come from the data module's validation split (`build_dataset(..., "val")`), whose items
are built with `preprocess.crop_people` + `preprocess.normalize`: the very pixels the deployed
model will see. Calibration takes the head of a seeded permutation, verification the tail, so
the two never share a crop unless the split is too small (the overlap is then reported).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..spec import ModelSpec
from .errors import ExportError

__all__ = ["Crops", "HeldOut", "JoinedParts", "load_crops", "open_held_out"]


@dataclass
class HeldOut:
    """A validation dataset and the crops reserved for calibration and for verification."""

    source: str
    dataset: Any
    calib_indices: np.ndarray
    verify_indices: np.ndarray
    split: str = "val"

    @property
    def overlap(self) -> int:
        return int(np.intersect1d(self.calib_indices, self.verify_indices).size)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "split": self.split,
            "dataset_size": len(self.dataset),
            "calib_images": int(len(self.calib_indices)),
            "verify_images": int(len(self.verify_indices)),
            "overlap": self.overlap,
        }


class JoinedParts:
    """Several datasets of one skeleton and input read as one, for calibration drawn from every
    part in proportion to its size (a mixture "A+B" as --calib-data). Items carry their index in
    the joined set. COCO AP needs one annotation file, so verification on it scores PCK only."""

    annotation_file = None

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts
        self.skeleton, self.kind = parts[0].skeleton, parts[0].kind
        self.source = " + ".join(str(getattr(p, "source", "?")) for p in parts)
        self._starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        k = int(np.searchsorted(self._starts, index, side="right") - 1)
        return {**self.parts[k][index - int(self._starts[k])], "index": index}

    def ground_truth(self) -> dict[str, np.ndarray]:
        truths = [p.ground_truth() for p in self.parts]
        shared = [key for key in truths[0] if all(key in t for t in truths)]
        return {key: np.concatenate([t[key] for t in truths]) for key in shared}


def open_held_out(
    source: str,
    spec: ModelSpec,
    calib_images: int,
    verify_images: int,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    synthetic_images: int | None = None,
    split: str = "val",
) -> HeldOut:
    """Open `source` ("synthetic", "synthetic:DIR", "coco:PATH", "mpii:PATH", or several joined
    by "+", each part's `split` read whole) at the spec's geometry.

    `synthetic_images` sizes a generated synthetic val split (default: the data module's, shared
    with training's validation set and cached).
    """
    try:
        from ..data import build_dataset
        from ..data.mixture import split_sources
    except ImportError as err:
        raise ExportError(f"calibration data needs okdhp_edge.data ({err})") from None
    input_spec = copy.deepcopy(spec.input)
    input_spec.layout = "NCHW"  # items are NCHW; network_inputs transposes for NHWC artifacts
    try:
        datasets = [
            build_dataset(
                part,
                split,
                input_spec,
                spec.skeleton,
                heatmap_stride=spec.heatmap_stride,
                train=False,
                cache_dir=cache_dir,
                synthetic_images=synthetic_images,
            )
            for part in split_sources(source)
        ]
    except (FileNotFoundError, ValueError) as err:
        raise ExportError(
            f"cannot open calibration data {source!r}: {err}. Use --calib-data synthetic, coco:PATH "
            "(COCO root with annotations/person_keypoints_val2017.json), mpii:PATH, or several joined by '+'"
        ) from None
    dataset = datasets[0] if len(datasets) == 1 else JoinedParts(datasets)
    if len(dataset) == 0:
        raise ExportError(f"calibration data {source!r} has no people in its {split} split")
    order = np.random.default_rng(seed).permutation(len(dataset))
    calib = np.sort(order[: min(calib_images, len(order))])
    verify = np.sort(order[::-1][: min(verify_images, len(order))])
    return HeldOut(source, dataset, calib, verify, split)


@dataclass
class Crops:
    """Network inputs of some dataset items plus what is needed to score their predictions."""

    images: np.ndarray  # float32 (N, 3, H, W) or (N, H, W, 3)
    crop_to_image: np.ndarray  # (N, 2, 3)
    indices: np.ndarray  # (N,) dataset indices as the items report them


def load_crops(dataset: Any, indices: np.ndarray, layout: str = "NCHW", desc: str = "crops") -> Crops:
    """Stack the normalised crops of `indices` as one float32 batch in `layout`."""
    if len(indices) == 0:
        raise ExportError("no crops selected: ask for at least one image")
    items = [dataset[int(i)] for i in tqdm(indices, desc=desc, unit="crop", leave=False)]
    images = np.stack([item["image"] for item in items]).astype(np.float32)
    if layout.upper() == "NHWC":
        images = images.transpose(0, 2, 3, 1)
    return Crops(
        images=np.ascontiguousarray(images),
        crop_to_image=np.stack([item["crop_to_image"] for item in items]).astype(np.float32),
        indices=np.array([int(item["index"]) for item in items], np.int64),
    )
