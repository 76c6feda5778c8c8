"""PCK / PCKh by hand, COCO AP through pycocotools, the Evaluator and flip averaging."""

from __future__ import annotations

import json

import numpy as np
import pytest

from okdhp_edge.codec import HeatmapCodec
from okdhp_edge.data import build_dataset, generate_dataset
from okdhp_edge.eval import Evaluator, coco_keypoint_ap, flip_average, pck, pckh
from okdhp_edge.skeleton import COCO17, MPII16, Skeleton
from okdhp_edge.spec import InputSpec

SPEC = InputSpec(width=96, height=128)
TOY = Skeleton("toy", ("a", "b", "c", "d"), flip_pairs=((0, 1),), limbs=())


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval")
    generate_dataset(path, num_train=1, num_val=10, seed=11, progress=False)
    return path


def _gt_as_predictions(ds):
    gt = ds.ground_truth()
    return gt["joints"][..., :2].copy(), np.ones(gt["joints"].shape[:2], np.float32), np.arange(len(ds))


def test_pck_known_displacement():
    # Two people; boxes' larger sides 100 and 50 -> thresholds at alpha 0.2: 20 px and 10 px.
    joints = np.zeros((2, 4, 3))
    joints[..., 2] = 2
    joints[1, 3, 2] = 0  # unlabelled: never counted
    boxes = np.array([[0, 0, 100, 60], [10, 10, 40, 60]])
    pred = joints[..., :2].copy()
    pred[0, 0] += (19.9, 0)  # hit
    pred[0, 1] += (12, 16)  # distance 20: hit (<=)
    pred[0, 2] += (0, 20.1)  # miss
    pred[1, 0] += (6, 8)  # distance 10: hit
    pred[1, 1] += (10.5, 0)  # miss
    pred[1, 3] += (500, 0)  # unlabelled, ignored
    result = pck(pred, joints, boxes, alpha=0.2)
    # counted: 4 + 3 = 7 keypoints, hits: (0,0), (0,1), (0,3), (1,0), (1,2) = 5
    assert result.mean == pytest.approx(100 * 5 / 7)
    np.testing.assert_allclose(result.per_joint, [100, 50, 50, 100])
    np.testing.assert_array_equal(result.counts, [2, 2, 2, 1])


def test_pckh_known_displacement_and_mean_excludes_pelvis_thorax():
    n, k = 2, 16
    joints = np.zeros((n, k, 3))
    joints[..., 2] = 1
    head = np.array([10.0, 20.0])  # thresholds at 0.5: 5 px and 10 px
    pred = joints[..., :2].copy()
    names = MPII16.keypoints
    pred[:, names.index("left_wrist")] += (4, 4)  # 5.66 px: miss for person 0, hit for person 1
    pred[:, names.index("pelvis")] += 100  # a miss that the usual mean leaves out
    pred[:, names.index("thorax")] += 100
    result = pckh(pred, joints, head, MPII16, 0.5)
    # counted in the mean: 14 joints x 2 people = 28, one miss
    assert result.mean == pytest.approx(100 * 27 / 28)
    assert result.per_joint[names.index("left_wrist")] == pytest.approx(50)
    assert result.per_joint[names.index("pelvis")] == 0
    assert result.table["wrist"] == pytest.approx(75)
    assert result.table["head_top"] == 100 and result.table["mean"] == result.mean
    # a person without a head box cannot be normalised and is left out
    assert pckh(pred, joints, np.array([0.0, 20.0]), MPII16).mean == 100


def test_pck_validates_shapes():
    with pytest.raises(ValueError, match="one normaliser per person"):
        pck(np.zeros((2, 4, 2)), np.zeros((2, 4, 3)), np.zeros((3, 4)))


def test_ground_truth_scores_ap_100(root, tmp_path):
    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17)
    ev = Evaluator(ds)
    ev.add(*_gt_as_predictions(ds))
    metrics = ev.compute(out_dir=tmp_path)
    assert metrics["ap"] == pytest.approx(100) and metrics["ar"] == pytest.approx(100)
    assert metrics["ap50"] == pytest.approx(100) and metrics["pck@0.2"] == pytest.approx(100)
    assert metrics["samples"] == len(ds) and metrics["missing"] == 0
    results = json.loads((tmp_path / "keypoint_results.json").read_text())
    assert len(results) == len(ds) and len(results[0]["keypoints"]) == 51


def test_ground_truth_scores_pckh_100(root):
    ds = build_dataset(f"mpii:{root}", "val", SPEC, MPII16)
    ev = Evaluator(ds)
    ev.add(*_gt_as_predictions(ds))
    metrics = ev.compute()
    assert metrics["pckh@0.5"] == pytest.approx(100) and metrics["pckh@0.1"] == pytest.approx(100)
    assert set(metrics["pckh_table"]) == {"head_top", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "mean"}
    assert "ap" not in metrics


def test_displaced_predictions_lower_ap_and_file_rescores(root, tmp_path):
    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17)
    pred, scores, idx = _gt_as_predictions(ds)
    rng = np.random.default_rng(0)
    side = np.sqrt(ds.ground_truth()["area"])[:, None, None]
    pred += rng.normal(0, 0.08, pred.shape) * side
    ev = Evaluator(ds)
    ev.add(pred, scores, idx)
    metrics = ev.compute(out_dir=tmp_path)
    assert 5 < metrics["ap"] < 95
    rescored = coco_keypoint_ap(ds.annotation_file, tmp_path / "keypoint_results.json")
    assert rescored["ap"] == pytest.approx(metrics["ap"])


def test_partial_and_repeated_predictions(root):
    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17)
    pred, scores, idx = _gt_as_predictions(ds)
    ev = Evaluator(ds)
    ev.add(pred[:3] + 50, scores[:3], idx[:3])
    ev.add(pred[:3], scores[:3], idx[:3])  # replaces the first, bad, predictions
    metrics = ev.compute()
    assert metrics["samples"] == 3 and metrics["missing"] == len(ds) - 3
    assert metrics["pck@0.2"] == pytest.approx(100)
    with pytest.raises(IndexError):
        ev.add(pred[:1], scores[:1], [len(ds)])
    with pytest.raises(ValueError, match="no predictions"):
        Evaluator(ds).compute()


def test_evaluator_accepts_torch_tensors(root):
    torch = pytest.importorskip("torch")
    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17)
    pred, scores, idx = _gt_as_predictions(ds)
    ev = Evaluator(ds)
    ev.add(torch.from_numpy(pred), torch.from_numpy(scores), torch.from_numpy(idx))
    assert ev.compute()["pck@0.2"] == pytest.approx(100)


def test_flip_average_recovers_heatmaps_of_mirrored_input():
    codec = HeatmapCodec((32, 48), (8, 12), sigma=1.5)
    pts = np.array([[5.0, 10.0], [20.0, 30.0], [12.3, 40.1], [3.0, 3.0]])
    vis = np.ones(4)
    hm, _ = codec.encode(pts, vis)
    mirrored = pts.copy()
    mirrored[:, 0] = 32 - 1 - mirrored[:, 0]
    hm_m, _ = codec.encode(mirrored[TOY.flip_index], vis)  # what a perfect net sees on the mirror image
    np.testing.assert_allclose(flip_average(hm, hm_m, TOY.flip_index), hm, atol=1e-6)
    # without swapping channels back, the average is wrong
    assert not np.allclose(flip_average(hm, hm_m, list(range(4))), hm, atol=1e-3)
    with pytest.raises(ValueError, match="flip_index"):
        flip_average(hm, hm_m, [0, 1])
