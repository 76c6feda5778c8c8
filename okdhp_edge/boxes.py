"""Boxes and keypoint similarity in numpy: areas, IoU, greedy NMS, clipping to the image, OKS.

One module for every caller (the runtime's predictor, detectors and tracker, OKS-NMS in
evaluation, the labeller's keypoint filter, the COCO loader, the detector's export check), so each
rule is written once and the runtime still needs no torch.

Clipping, pixel centres: points in this package are pixel-index coordinates (geometry.py: pixel i
has its centre at i and covers [i - 0.5, i + 0.5]), and a box's corners are points too. So a box is
clipped to where a point on the image can lie, x in [0, W - 1] and y in [0, H - 1], the centres of
the first and last pixels, not to the image's outer edges [-0.5, W - 0.5]. Keypoints and clipped
boxes then share one range, mirroring (x -> W - 1 - x) maps it onto itself, it is what `Predictor`
and `Detector` have always returned, and so training and evaluation cut the same crop from a
dataset's box as the runtime does. A box clipped this way is at most one pixel narrower than the
edges would give; crop windows are padded by a quarter, so nothing needs the halves.

OKS, COCO's formula (pycocotools' COCOeval.computeOks): per keypoint exp(-d^2 / (2 s^2 (2 sigma)^2))
with s^2 the person's area in pixels and sigma the keypoint's constant, averaged over the
keypoints that count. s^2 is floored at one square pixel where pycocotools adds 1e-16: the same
number for any person of a pixel or more, and no division by zero for a degenerate box.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_SIGMA",
    "box_areas",
    "box_intersections",
    "clip_boxes",
    "clip_to_image",
    "inside_bigger",
    "iou_matrix",
    "keypoint_similarity",
    "nms",
    "oks_matrix",
    "parts_of",
]

DEFAULT_SIGMA = 0.07  # OKS constant for skeletons that publish none (mid-range of COCO's)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy boxes -> (N,) areas in pixels (0 for empty boxes)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(axis=1)


def box_intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy boxes -> (N, M) areas of their overlaps in pixels."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.clip(rb - lt, 0, None).prod(axis=2)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy boxes -> (N, M) intersection over union (0 for empty boxes)."""
    inter = box_intersections(a, b)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def parts_of(boxes: np.ndarray, others: np.ndarray, share: float, inside: float = 0.8) -> np.ndarray:
    """(N, M) bool: box i has at least `inside` of its area within box j and at most `share` of its
    area: a face or an eye of that person rather than another person."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    others = np.asarray(others, np.float64).reshape(-1, 4)
    area = box_areas(boxes)[:, None]
    return (box_intersections(boxes, others) >= inside * area) & (area <= share * box_areas(others)[None, :])


def inside_bigger(boxes: np.ndarray, scores: np.ndarray, share: float, inside: float = 0.8) -> np.ndarray:
    """(N,) bool: boxes that are `parts_of` another box scoring as high: a face or an eye of a
    person already found."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    part = parts_of(boxes, boxes, share, inside) & (scores[None, :] >= scores[:, None])
    np.fill_diagonal(part, False)
    return part.any(axis=1)


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


def clip_to_image(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4+) xyxy boxes (extra columns kept) clipped to [0, width - 1] x [0, height - 1], the
    pixel-centre convention above; a float copy, nothing dropped."""
    out = np.array(boxes, np.result_type(np.asarray(boxes).dtype, np.float32))
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width - 1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height - 1)
    return out


def clip_boxes(boxes: np.ndarray, width: int, height: int, min_size: float = 1.0) -> np.ndarray:
    """Clip float32 xyxy boxes (extra columns kept) to the image; drop those under `min_size` pixels wide or high."""
    out = np.asarray(boxes, np.float32).reshape(-1, boxes.shape[-1] if np.ndim(boxes) == 2 else 4)
    out = clip_to_image(out, width, height)
    return out[(out[:, 2] - out[:, 0] >= min_size) & (out[:, 3] - out[:, 1] >= min_size)]


def keypoint_similarity(a: np.ndarray, b: np.ndarray, areas: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Per-keypoint OKS term exp(-d^2 / (2 s^2 (2 sigma)^2)) of points a and b (..., K, 2), which
    broadcast together; areas (...) is s^2 of each pair, sigmas (K,) the keypoints' constants."""
    d2 = ((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).sum(-1)
    scale = np.maximum(np.asarray(areas, np.float64), 1.0)[..., None] * (2 * np.asarray(sigmas, np.float64)) ** 2
    return np.exp(-d2 / (2 * scale))


def oks_matrix(
    a: np.ndarray,
    b: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray | None = None,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Object keypoint similarity between poses a (N, K, 2) and b (M, K, 2) -> (N, M).

    areas: s^2 in pixels, (N,) the box area of each pose in a (as COCO scales by the ground
    truth's), or (N, M) one per pair. sigmas (K,): the keypoints' constants, DEFAULT_SIGMA for each
    when None or of another length. visible: the keypoints that count, (N, K) a's or (N, M, K) per
    pair (default all); a pair with none counts 0.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    k = a.shape[1] if a.ndim == 3 else (b.shape[1] if b.ndim == 3 else 0)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    s = np.full(k, DEFAULT_SIGMA) if sigmas is None or len(sigmas) != k else np.asarray(sigmas, np.float64)
    areas = np.asarray(areas, np.float64)
    e = keypoint_similarity(a[:, None], b[None], areas[:, None] if areas.ndim == 1 else areas, s)  # (N, M, K)
    mask = np.ones(a.shape[:2], bool) if visible is None else np.asarray(visible, bool)
    mask = np.broadcast_to(mask[:, None] if mask.ndim == 2 else mask, e.shape)
    counts = mask.sum(axis=2)
    return np.where(counts > 0, (e * mask).sum(axis=2) / np.maximum(counts, 1), 0.0)
