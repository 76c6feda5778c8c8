"""The map-style top-down dataset shared by the COCO and MPII loaders (torch-free).

Bad images: the loaders drop samples whose image file is missing, empty, not an image or
truncated before the dataset is built (cheap checks of the first and last bytes), counted in
`num_skipped` with one summary warning. An image that passes those checks but still fails to
decode is found lazily: its samples are replaced by the next readable sample (a map-style
dataset cannot shrink mid-epoch), the image is counted, and each process warns once. The
replacement carries its own `index`, so evaluation never credits one person to another.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..skeleton import Skeleton
from ..spec import InputSpec
from .images import check_image_file, read_image
from .transforms import AugmentConfig, TopDownTransform

__all__ = ["DatasetError", "Sample", "PoseDataset", "drop_unreadable"]


class DatasetError(ValueError):
    """A data set that cannot be used as given; the message names the file, the entry and the fix."""


@dataclass
class Sample:
    """One person to crop: image-space box, ground truth and the ids evaluation needs."""

    image_path: Path
    image_id: int
    bbox: np.ndarray  # (4,) xyxy
    joints: np.ndarray  # (K, 3) x, y, v (v: 0 unlabelled, 1 occluded, 2 visible, codec.ABSENT outside the image)
    area: float
    box_score: float = 1.0
    head_size: float = 0.0  # PCKh normaliser: 0.6 x head-box diagonal (MPII), else 0
    # (M, 4) xyxy: unlabelled people in the same image, whose pixels the loss skips
    ignore_boxes: np.ndarray | None = None


def drop_unreadable(samples: list[Sample], source: str, progress: bool = True) -> tuple[list[Sample], int]:
    """Remove samples whose image fails the up-front check; one warning sums up what was dropped."""
    paths = sorted({s.image_path for s in samples})
    iterator = paths
    if progress and len(paths) > 5000:
        from tqdm import tqdm

        iterator = tqdm(paths, desc="checking images", unit="img", leave=False)
    bad = {}
    for path in iterator:
        reason = check_image_file(path)
        if reason is not None:
            bad[path] = reason
    if not bad:
        return samples, 0
    kept = [s for s in samples if s.image_path not in bad]
    examples = "; ".join(f"{p} ({r})" for p, r in list(bad.items())[:3])
    warnings.warn(
        f"{source}: skipped {len(bad)} of {len(paths)} images that are missing or corrupt "
        f"({len(samples) - len(kept)} people dropped), e.g. {examples}. Restore or re-download those files "
        "to use them; the count is in dataset.num_skipped.",
        stacklevel=3,
    )
    return kept, len(bad)


class PoseDataset:
    """Top-down person crops with heatmap targets; `dataset[i]` is a dict of numpy arrays.

    Keys: image (3,H,W), target (K,h,w), target_weight (K,), ignore (h,w) (1 where an unlabelled
    person covers the heatmap: see TopDownTransform), joints (K,3), crop_to_image (2,3),
    bbox (4,) xyxy, area, box_score, head_size (float32), image_id, index (int64) and flipped
    (bool; a mirrored training crop, whose channel k maps back to joint skeleton.flip_index[k]).
    `detections` names the detector results file when the boxes are not the annotated ones,
    which tells evaluation to apply the detection-box protocol (OKS-NMS, every image scored).
    With `train=True` (and an AugmentConfig) each item is augmented from a generator seeded by
    (seed, epoch, index): call `set_epoch(e)` before each epoch so every worker draws fresh,
    reproducible augmentations no matter which worker loads which item.
    """

    def __init__(
        self,
        samples: list[Sample],
        skeleton: Skeleton,
        kind: str,
        input_spec: InputSpec,
        *,
        heatmap_stride: int = 4,
        sigma: float = 2.0,
        absent_weight: float = 0.0,
        train: bool = False,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        annotation_file: Path | None = None,
        num_skipped: int = 0,
        source: str = "",
        detections: Path | None = None,
    ) -> None:
        if not samples:
            raise DatasetError(
                f"{source or 'dataset'}: no usable person samples; check the path, split and annotation file"
            )
        if int(seed) < 0:
            raise ValueError(f"{source}: seed must be >= 0, got {seed}")
        for s in samples[:1]:
            if s.joints.shape != (skeleton.num_keypoints, 3):
                raise DatasetError(
                    f"{source}: samples have {s.joints.shape[0]} joints but skeleton {skeleton.name!r} has "
                    f"{skeleton.num_keypoints}; pass the skeleton that matches the data set"
                )
        self.samples = samples
        self.skeleton = skeleton
        self.kind = kind
        self.input_spec = input_spec
        self.annotation_file = annotation_file
        self.detections = detections  # the detection results file the boxes came from; None = ground-truth boxes
        self.source = source
        self.train = train
        self.seed = int(seed)
        self.epoch = 0
        self.transform = TopDownTransform(
            input_spec, skeleton, heatmap_stride, sigma, (augment or AugmentConfig()) if train else None, absent_weight
        )
        self._num_skipped_upfront = int(num_skipped)
        self._bad: set[Path] = set()
        self._warned = False

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_skipped(self) -> int:
        """Images skipped as missing/corrupt (up front, plus those found unreadable in this process)."""
        return self._num_skipped_upfront + len(self._bad)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def ground_truth(self) -> dict[str, np.ndarray]:
        """All samples' annotations stacked, for evaluation without touching images."""
        return {
            "joints": np.stack([s.joints for s in self.samples]).astype(np.float32),
            "bbox": np.stack([s.bbox for s in self.samples]).astype(np.float32),
            "image_id": np.array([s.image_id for s in self.samples], np.int64),
            "area": np.array([s.area for s in self.samples], np.float32),
            "box_score": np.array([s.box_score for s in self.samples], np.float32),
            "head_size": np.array([s.head_size for s in self.samples], np.float32),
        }

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        index %= n
        for step in range(n):
            i = (index + step) % n
            sample = self.samples[i]
            if sample.image_path in self._bad:
                continue
            image = read_image(sample.image_path)
            if image is not None:
                return self._item(i, sample, image)
            self._bad.add(sample.image_path)
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.source}: cannot decode {sample.image_path}; its people are replaced by the next readable "
                    "samples. Further unreadable images are only counted (dataset.num_skipped).",
                    stacklevel=2,
                )
        raise DatasetError(f"{self.source}: none of the {n} samples' images can be decoded")

    def _item(self, i: int, sample: Sample, image: np.ndarray) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        out = self.transform(image, sample.bbox, sample.joints, rng, sample.ignore_boxes)
        out.update(
            joints=sample.joints.astype(np.float32),
            image_id=np.int64(sample.image_id),
            bbox=sample.bbox.astype(np.float32),
            area=np.float32(sample.area),
            box_score=np.float32(sample.box_score),
            head_size=np.float32(sample.head_size),
            index=np.int64(i),
        )
        return out
