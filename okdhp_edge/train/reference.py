"""A no-network reference row: the average training pose placed in every validation box.

It shows how much of a score is earned by the network: box-normalised PCK@0.2 is lenient on
small people, and a student is only useful as far as it beats this guess.
"""

from __future__ import annotations

import numpy as np

from ..data import PoseDataset
from ..eval import Evaluator
from ..geometry import apply_affine, box_to_center_size, crop_affine, invert_affine
from .evaluate import strict_pck

__all__ = ["mean_pose_reference"]


def mean_pose_reference(train: PoseDataset, val: PoseDataset) -> dict:
    """Metrics (percent) of predicting the mean crop-space training pose for every validation person."""
    spec = val.input_spec
    size = (spec.width, spec.height)

    def to_crop(box: np.ndarray) -> np.ndarray:
        center, window = box_to_center_size(box, spec.width / spec.height, spec.crop_padding)
        return crop_affine(center, window, size)

    gt = train.ground_truth()
    points = np.stack([apply_affine(j[:, :2], to_crop(b)) for j, b in zip(gt["joints"], gt["bbox"])]).astype(np.float64)
    points[gt["joints"][..., 2] <= 0] = np.nan
    labelled = ~np.isnan(points[..., 0]).all(axis=0)
    mean = np.full(points.shape[1:], np.nan)
    mean[labelled] = np.nanmean(points[:, labelled], axis=0)
    mean[~labelled] = ((size[0] - 1) / 2, (size[1] - 1) / 2)  # never labelled: the crop centre
    boxes = val.ground_truth()["bbox"]
    predictions = np.stack([apply_affine(mean, invert_affine(to_crop(b))) for b in boxes]).astype(np.float32)
    evaluator = Evaluator(val)
    evaluator.add(predictions, np.ones(predictions.shape[:2], np.float32), np.arange(len(val)))
    metrics = evaluator.compute()
    metrics.update(strict_pck(val, predictions))
    return metrics
