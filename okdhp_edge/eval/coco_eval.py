"""COCO OKS AP/AR through pycocotools, on a results JSON anyone can re-score.

Result scores follow the usual top-down rescoring: box score x the mean of the keypoint
scores above 0.2 (0 when none is), so confident, complete poses rank first.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

from ..spec import write_json_atomic

__all__ = ["keypoint_results", "write_keypoint_results", "coco_keypoint_ap", "COCO_STATS", "KEYPOINT_SCORE_THRESHOLD"]

# Order of COCOeval.stats for iouType="keypoints".
COCO_STATS = ("ap", "ap50", "ap75", "ap_m", "ap_l", "ar", "ar50", "ar75", "ar_m", "ar_l")
KEYPOINT_SCORE_THRESHOLD = 0.2


def keypoint_results(
    keypoints: np.ndarray,
    scores: np.ndarray,
    image_ids: np.ndarray,
    box_scores: np.ndarray | None = None,
    category_id: int = 1,
) -> list[dict]:
    """COCO keypoint results entries [{image_id, category_id, keypoints [x, y, s] * K, score}]."""
    kps = np.asarray(keypoints, np.float64)
    sc = np.asarray(scores, np.float64)
    ids = np.asarray(image_ids).reshape(-1)
    n = kps.shape[0]
    boxes = np.ones(n) if box_scores is None else np.asarray(box_scores, np.float64).reshape(-1)
    if kps.shape[:2] != sc.shape or kps.shape[-1] != 2 or len(ids) != n or len(boxes) != n:
        raise ValueError(
            f"need keypoints (N,K,2), scores (N,K), N image ids and box scores; got {kps.shape}, {sc.shape}, "
            f"{len(ids)}, {len(boxes)}"
        )
    out = []
    for k, s, image_id, box in zip(kps, sc, ids, boxes):
        good = s > KEYPOINT_SCORE_THRESHOLD
        kpt_score = float(s[good].mean()) if good.any() else 0.0
        flat = np.concatenate([k, s[:, None]], axis=1).reshape(-1)
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [round(float(v), 3) for v in flat],
                "score": float(kpt_score * box),
            }
        )
    return out


def write_keypoint_results(results: list[dict], path: str | os.PathLike) -> Path:
    write_json_atomic(path, results)
    return Path(path)


def coco_keypoint_ap(
    annotation_file: str | os.PathLike,
    results: str | os.PathLike | list[dict],
    image_ids: list[int] | None = None,
    sigmas: tuple[float, ...] | None = None,
) -> dict[str, float]:
    """Run COCOeval (iouType "keypoints") and return its ten stats in percent (nan if undefined).

    `image_ids` restricts scoring to those images (e.g. the ones that were predicted);
    `sigmas` replaces the OKS constants for skeletons other than COCO-17.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(results, (list, tuple)) and not results:
        raise ValueError("coco_keypoint_ap: no results to score")
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        gt = COCO(str(annotation_file))
        dt = gt.loadRes(str(results) if not isinstance(results, list) else results)
        ev = COCOeval(gt, dt, iouType="keypoints")
        if image_ids is not None:
            ev.params.imgIds = sorted({int(i) for i in image_ids})
        if sigmas:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval reports -1 for an area range without ground truth: that is "undefined", not a score.
    return {name: float(100.0 * v) if v >= 0 else float("nan") for name, v in zip(COCO_STATS, ev.stats)}
