"""The core's box and keypoint-similarity maths (okdhp_edge/boxes.py): OKS against pycocotools'
COCOeval on hand-made people, and the one clipping convention (pixel centres)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from okdhp_edge.boxes import clip_boxes, clip_to_image, oks_matrix
from okdhp_edge.skeleton import COCO17


def _coco_oks(gt_points, visibility, areas, dt_points) -> np.ndarray:
    """pycocotools' OKS of each detection (rows, in the order given) with each ground truth person."""
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    anns = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "area": float(area),
            "bbox": [*points.min(0), *(points.max(0) - points.min(0))],
            "keypoints": np.concatenate([points, v[:, None]], 1).ravel().tolist(),
            "num_keypoints": int((v > 0).sum()),
        }
        for i, (points, v, area) in enumerate(zip(gt_points, visibility, areas))
    ]
    category = {"id": 1, "name": "person", "keypoints": list(COCO17.keypoints), "skeleton": []}
    dts = [
        {"image_id": 1, "category_id": 1, "keypoints": np.c_[p, np.ones(len(p))].ravel().tolist(), "score": 1 - i / 10}
        for i, p in enumerate(dt_points)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco.COCO()
        gt.dataset = {"images": [{"id": 1, "width": 640, "height": 480}], "annotations": anns, "categories": [category]}
        gt.createIndex()
        ev = cocoeval.COCOeval(gt, gt.loadRes(dts), iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(COCO17.sigmas)
        ev.evaluate()
    return ev.ious[(1, 1)]


def test_oks_matches_pycocotools():
    rng = np.random.default_rng(3)
    gt = rng.uniform(50, 400, (3, 17, 2)).round(1)
    visibility = rng.choice([0, 1, 2], (3, 17), p=[0.3, 0.2, 0.5])
    visibility[:, 0] = 2  # everyone has a labelled keypoint (COCO scores the others by their box)
    gt[visibility == 0] = 0.0
    areas = np.array([900.0, 12000.0, 40000.0])  # small, medium and large people
    dt = np.concatenate([gt + rng.normal(0, s, gt.shape) for s in (2.0, 8.0)] + [rng.uniform(50, 400, (1, 17, 2))])
    expected = _coco_oks(gt, visibility, areas, dt).T  # (people, detections)
    ours = oks_matrix(gt, dt, areas, COCO17.sigmas, visibility > 0)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)
    assert ours.max() > 0.5 and ours.min() < 0.01  # the hand-made people span near and far
    # one scale and one mask per pair (OKS-NMS's form) gives the same numbers
    per_pair = oks_matrix(gt, dt, np.repeat(areas[:, None], len(dt), 1), COCO17.sigmas, visibility[:, None] > 0)
    np.testing.assert_array_equal(per_pair, ours)


def test_boxes_clip_to_the_centres_of_the_outer_pixels():
    boxes = np.array([[-5, -5, 700, 500, 0.9], [630, 470, 650, 490, 0.8], [639.5, 10, 700, 20, 0.7]], np.float32)
    clipped = [[0, 0, 639, 479, 0.9], [630, 470, 639, 479, 0.8], [639, 10, 639, 20, 0.7]]
    np.testing.assert_array_equal(clip_to_image(boxes, 640, 480), np.float32(clipped))
    np.testing.assert_array_equal(clip_boxes(boxes, 640, 480), np.float32(clipped[:2]))  # no width left: dropped
