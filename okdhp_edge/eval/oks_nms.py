"""OKS-NMS: drop duplicate poses of one person before COCO AP, as top-down evaluation does with detector boxes.

A detector often proposes two boxes for one person; both crops then predict nearly the same
pose, and COCOeval counts the lower-scored copy as a false positive. Greedy non-maximum
suppression on the object keypoint similarity (OKS) between predicted poses, per image, keeps
the highest-scored pose of each group (the HRNet / MMPose protocol, threshold 0.9). As there, the
OKS of two predictions scales by the mean of their box areas and counts only the keypoints both
score above OKS_VISIBLE_SCORE; the formula is the core's (okdhp_edge.boxes.oks_matrix).
"""

from __future__ import annotations

import numpy as np

from ..boxes import oks_matrix

__all__ = ["OKS_NMS_THRESHOLD", "OKS_VISIBLE_SCORE", "oks_nms"]

OKS_NMS_THRESHOLD = 0.9  # the usual top-down setting: only near-identical poses are merged
OKS_VISIBLE_SCORE = 0.2  # keypoints scored at or below this in either pose are left out of the OKS


def oks_nms(
    keypoints: np.ndarray,
    keypoint_scores: np.ndarray,
    pose_scores: np.ndarray,
    areas: np.ndarray,
    image_ids: np.ndarray,
    sigmas: tuple[float, ...] | np.ndarray,
    threshold: float = OKS_NMS_THRESHOLD,
) -> np.ndarray:
    """Indices of the poses kept, per image greedily by `pose_scores`: a pose whose OKS with an
    already kept pose of the same image exceeds `threshold` is dropped.

    keypoints (N, K, 2) in image pixels, keypoint_scores (N, K), pose_scores (N,) (the rescored
    result scores), areas (N,) person-box areas, image_ids (N,), sigmas (K,) the OKS constants.
    """
    kps = np.asarray(keypoints, np.float64)
    n, k = kps.shape[:2]
    sigmas = np.asarray(sigmas, np.float64)
    if sigmas.shape != (k,):
        raise ValueError(f"oks_nms: need {k} OKS sigmas (the skeleton's), got {sigmas.shape[0] if sigmas.ndim else 0}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"oks_nms: threshold must be in (0, 1], got {threshold}")
    confident = np.asarray(keypoint_scores, np.float64).reshape(n, k) > OKS_VISIBLE_SCORE
    scores = np.asarray(pose_scores, np.float64).reshape(-1)
    areas = np.asarray(areas, np.float64).reshape(-1)
    ids = np.asarray(image_ids).reshape(-1)
    if not len(scores) == len(areas) == len(ids) == n:
        raise ValueError(
            f"oks_nms: need N = {n} pose scores, areas and image ids; got {len(scores)}, {len(areas)}, {len(ids)}"
        )
    keep: list[int] = []
    for image_id in np.unique(ids):
        order = np.nonzero(ids == image_id)[0]
        order = order[np.argsort(-scores[order], kind="stable")]
        while len(order):
            best, rest = order[0], order[1:]
            keep.append(int(best))
            pair_areas = (areas[best] + areas[rest])[None] / 2.0
            used = confident[best][None, None] & confident[rest][None]
            overlap = oks_matrix(kps[best][None], kps[rest], pair_areas, sigmas, used)[0]
            order = rest[overlap <= threshold]
    return np.array(sorted(keep), np.int64)
