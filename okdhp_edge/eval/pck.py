"""PCK (box-normalised, any skeleton) and PCKh in MPII's convention, in percent.

A keypoint counts when it is labelled (v > 0) and its normaliser is positive. PCK's
normaliser is the larger side of the person box; PCKh's is the head size, 0.6 x the head-box
diagonal (the value the MPII loader stores as `head_size`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..skeleton import Skeleton

__all__ = ["PCKResult", "pck", "pckh", "keypoint_hits", "MPII_GROUPS"]

# MPII's usual table: head top, then left/right averages; pelvis and thorax stay out of the mean.
MPII_GROUPS = ("head_top", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
_EXCLUDED_FROM_MEAN = ("pelvis", "thorax")


@dataclass
class PCKResult:
    """mean: percent over counted keypoints; per_joint: percent (nan where a joint has no labels)."""

    mean: float
    per_joint: np.ndarray
    counts: np.ndarray
    table: dict[str, float] = field(default_factory=dict)


def keypoint_hits(
    pred: np.ndarray, joints: np.ndarray, norm: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(hit, counted) boolean (N, K): distance <= threshold * norm, for labelled keypoints with norm > 0."""
    pred = np.asarray(pred, np.float64)
    joints = np.asarray(joints, np.float64)
    norm = np.asarray(norm, np.float64).reshape(-1)
    if pred.ndim != 3 or pred.shape[-1] != 2 or joints.shape[:2] != pred.shape[:2] or joints.shape[-1] < 3:
        raise ValueError(f"need pred (N,K,2) and joints (N,K,3), got {pred.shape} and {joints.shape}")
    if norm.shape[0] != pred.shape[0]:
        raise ValueError(f"need one normaliser per person: {norm.shape[0]} for {pred.shape[0]}")
    counted = (joints[..., 2] > 0) & (norm[:, None] > 0)
    dist = np.linalg.norm(pred - joints[..., :2], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        hit = counted & (dist <= threshold * norm[:, None])
    return hit, counted


def _summarise(hit: np.ndarray, counted: np.ndarray, mean_mask: np.ndarray | None = None) -> PCKResult:
    counts = counted.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = 100.0 * hit.sum(0) / counts
    use = counts > 0 if mean_mask is None else (counts > 0) & mean_mask
    mean = float(100.0 * hit[:, use].sum() / counts[use].sum()) if use.any() else float("nan")
    return PCKResult(mean, per_joint.astype(np.float64), counts.astype(np.int64))


def pck(pred: np.ndarray, joints: np.ndarray, boxes_xyxy: np.ndarray, alpha: float = 0.2) -> PCKResult:
    """PCK@alpha with the person box's larger side as the normaliser."""
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    norm = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return _summarise(*keypoint_hits(pred, joints, norm, alpha))


def pckh(
    pred: np.ndarray, joints: np.ndarray, head_sizes: np.ndarray, skeleton: Skeleton, threshold: float = 0.5
) -> PCKResult:
    """PCKh@threshold: per-joint percent, the MPII table and the usual mean.

    The mean weights joints by how often they are labelled and leaves out pelvis and thorax,
    as MPII's evaluation does; `table` holds head top, shoulder, elbow, wrist, hip, knee, ankle
    (left/right averaged) and "mean" for skeletons whose keypoint names contain those words.
    """
    names = skeleton.keypoints
    mean_mask = np.array([n not in _EXCLUDED_FROM_MEAN for n in names])
    result = _summarise(*keypoint_hits(pred, joints, head_sizes, threshold), mean_mask)
    for group in MPII_GROUPS:
        idx = [i for i, n in enumerate(names) if n == group or n.endswith("_" + group)]
        values = result.per_joint[idx] if idx else np.zeros(0)
        if len(values) and np.isfinite(values).any():
            result.table[group] = float(np.nanmean(values))
    result.table["mean"] = result.mean
    return result
