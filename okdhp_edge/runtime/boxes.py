"""Box and pose similarity in numpy: IoU, greedy NMS, OKS. Shared by the detectors and the tracker,
so the runtime needs no torch or torchvision for them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_areas", "clip_boxes", "iou_matrix", "nms", "oks_matrix"]

DEFAULT_SIGMA = 0.07  # OKS constant for skeletons that publish none (mid-range of COCO's)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy boxes -> (N,) areas in pixels (0 for empty boxes)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy boxes -> (N, M) intersection over union (0 for empty boxes)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, highest score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        overlap = iou_matrix(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou_threshold]
    return np.asarray(keep, np.int64)


def clip_boxes(boxes: np.ndarray, width: int, height: int, min_size: float = 1.0) -> np.ndarray:
    """Clip xyxy boxes (extra columns kept) to the image; drop those under `min_size` pixels wide or high."""
    out = np.array(boxes, np.float32).reshape(-1, boxes.shape[-1] if np.ndim(boxes) == 2 else 4)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width - 1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height - 1)
    return out[(out[:, 2] - out[:, 0] >= min_size) & (out[:, 3] - out[:, 1] >= min_size)]


def oks_matrix(
    a: np.ndarray,
    b: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray | None = None,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Object keypoint similarity between poses a (N, K, 2) and b (M, K, 2).

    areas (N,) is the scale of each pose in a (box area in pixels, as COCO uses); visible (N, K)
    masks a's keypoints that count (default all). Pairs with no visible keypoint get 0.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    k = a.shape[1] if a.ndim == 3 else (b.shape[1] if b.ndim == 3 else 0)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    s = np.full(k, DEFAULT_SIGMA) if sigmas is None or len(sigmas) != k else np.asarray(sigmas, np.float64)
    d2 = ((a[:, None] - b[None]) ** 2).sum(axis=3)  # (N, M, K)
    scale = np.maximum(np.asarray(areas, np.float64), 1.0)[:, None, None] * (2 * s) ** 2 * 2
    e = np.exp(-d2 / scale)
    mask = np.ones(a.shape[:2], bool) if visible is None else np.asarray(visible, bool)
    counts = mask.sum(axis=1)[:, None]
    return np.where(counts > 0, (e * mask[:, None, :]).sum(axis=2) / np.maximum(counts, 1), 0.0)
