"""Collect image-space predictions per dataset sample and score them the data set's way.

Every data set gets box-normalised PCK@0.2; COCO-kind sets (with an annotation file) also get
OKS AP/AR from pycocotools on a results JSON written to disk; MPII-kind sets get PCKh@0.5 with
the per-joint table. Only samples that received a prediction are scored (COCO AP on the
images they come from), and the number left out is reported, so partial evaluation is honest.

With detector boxes (a dataset built with `detections`) COCO AP follows the standard top-down
protocol: duplicate poses of one person are removed by OKS-NMS, and a complete evaluation is
scored on every image of the annotation file, so people the detector missed count as misses.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import numpy as np

from ..boxes import box_areas
from .coco_eval import coco_keypoint_ap, keypoint_results, write_keypoint_results
from .oks_nms import OKS_NMS_THRESHOLD, oks_nms
from .pck import pck, pckh

__all__ = ["Evaluator"]


class Evaluator:
    """`add()` batches of predictions by dataset index, then `compute()` the metrics (percent).

    `dataset` is a data.PoseDataset (anything with `skeleton`, `kind`, `annotation_file`,
    `__len__` and `ground_truth()`). A later prediction for the same index replaces the earlier.
    `oks_nms`: OKS threshold of the NMS applied to COCO results when the dataset's boxes come
    from a detector (None = off); with ground-truth boxes each person has one prediction and
    nothing is suppressed.
    """

    def __init__(
        self, dataset, pck_alpha: float = 0.2, pckh_threshold: float = 0.5, oks_nms: float | None = OKS_NMS_THRESHOLD
    ) -> None:
        if oks_nms is not None and not 0.0 < oks_nms <= 1.0:
            raise ValueError(f"Evaluator: oks_nms must be in (0, 1] or None (off), got {oks_nms}")
        self.dataset = dataset
        self.skeleton = dataset.skeleton
        self.pck_alpha = float(pck_alpha)
        self.pckh_threshold = float(pckh_threshold)
        self.oks_nms = oks_nms
        k = self.skeleton.num_keypoints
        self._keypoints = np.full((len(dataset), k, 2), np.nan, np.float32)
        self._scores = np.zeros((len(dataset), k), np.float32)
        self._seen = np.zeros(len(dataset), bool)
        self._person_id: int | None = None

    def reset(self) -> None:
        self._keypoints[:] = np.nan
        self._scores[:] = 0
        self._seen[:] = False

    def add(self, keypoints, scores, indices) -> None:
        """keypoints (N,K,2) in image pixels, scores (N,K), indices (N,) from the batch's `index`."""
        kps = _numpy(keypoints).astype(np.float32)
        sc = _numpy(scores).astype(np.float32)
        idx = _numpy(indices).astype(np.int64).reshape(-1)
        k = self.skeleton.num_keypoints
        if kps.ndim != 3 or kps.shape[1:] != (k, 2) or sc.shape != kps.shape[:2] or len(idx) != len(kps):
            raise ValueError(
                f"Evaluator.add: need keypoints (N,{k},2), scores (N,{k}) and N indices; "
                f"got {kps.shape}, {sc.shape}, {idx.shape}"
            )
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self._seen)):
            raise IndexError(f"Evaluator.add: indices must be in [0, {len(self._seen)}), got {idx.min()}..{idx.max()}")
        self._keypoints[idx] = kps
        self._scores[idx] = sc
        self._seen[idx] = True

    def compute(self, out_dir: str | Path | None = None) -> dict:
        """Metrics in percent; COCO results JSON goes to out_dir (or a temporary directory)."""
        if not self._seen.any():
            raise ValueError("Evaluator.compute: no predictions were added")
        sel = np.nonzero(self._seen)[0]
        gt = self.dataset.ground_truth()
        pred, scores = self._keypoints[sel], self._scores[sel]
        joints = gt["joints"][sel]
        metrics: dict = {
            f"pck@{self.pck_alpha:g}": pck(pred, joints, gt["bbox"][sel], self.pck_alpha).mean,
            "samples": int(len(sel)),
            "missing": int(len(self._seen) - len(sel)),
        }
        if self.dataset.kind == "coco" and self.dataset.annotation_file is not None:
            image_ids = gt["image_id"][sel]
            results = keypoint_results(pred, scores, image_ids, gt["box_score"][sel], self._category_id())
            detected = getattr(self.dataset, "detections", None) is not None
            if detected and self.oks_nms is not None:
                areas = box_areas(gt["bbox"][sel])
                keep = oks_nms(
                    pred, scores, [r["score"] for r in results], areas, image_ids, self._sigmas(), self.oks_nms
                )
                results = [results[i] for i in keep]
                metrics["suppressed"] = int(len(sel) - len(keep))
            # detector boxes, all predicted: score every image, so people without a box are misses
            scored_images = None if detected and metrics["missing"] == 0 else image_ids
            with contextlib.ExitStack() as stack:
                folder = (
                    Path(out_dir) if out_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
                )
                path = write_keypoint_results(results, folder / "keypoint_results.json")
                sigmas = self.skeleton.sigmas or None
                metrics.update(coco_keypoint_ap(self.dataset.annotation_file, path, scored_images, sigmas))
            if out_dir is not None:
                metrics["results_file"] = str(path)
        if self.dataset.kind == "mpii":
            heads = gt["head_size"][sel]
            if (heads > 0).any():
                result = pckh(pred, joints, heads, self.skeleton, self.pckh_threshold)
                metrics[f"pckh@{self.pckh_threshold:g}"] = result.mean
                metrics["pckh@0.1"] = pckh(pred, joints, heads, self.skeleton, 0.1).mean
                metrics["pckh_table"] = result.table
                metrics["pckh_per_joint"] = {n: float(v) for n, v in zip(self.skeleton.keypoints, result.per_joint)}
        return metrics

    def _sigmas(self) -> tuple[float, ...]:
        """The skeleton's OKS constants, which OKS-NMS cannot do without."""
        if not self.skeleton.sigmas:
            raise ValueError(
                f"Evaluator: skeleton {self.skeleton.name!r} has no OKS sigmas, which OKS-NMS needs; "
                "give the Skeleton its sigmas, or pass oks_nms=None"
            )
        return self.skeleton.sigmas

    def _category_id(self) -> int:
        """The person category id of the annotation file (1 in COCO), read once."""
        if self._person_id is None:
            with open(self.dataset.annotation_file, encoding="utf-8") as f:
                cats = json.load(f).get("categories", [])
            self._person_id = next((int(c["id"]) for c in cats if c.get("name") == "person"), 1)
        return self._person_id


def _numpy(x) -> np.ndarray:
    """Accept numpy arrays or CPU/GPU torch tensors without importing torch here."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
