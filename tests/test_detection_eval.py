"""COCO validation on detector boxes: OKS-NMS, box scores into AP, every image scored, config wiring.

Everything runs through real pycocotools on a tiny synthetic COCO-format set written here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from okdhp_edge.data import build_dataset, generate_dataset
from okdhp_edge.data.synthetic import coco_annotation_path
from okdhp_edge.eval import Evaluator, oks_nms
from okdhp_edge.skeleton import COCO17
from okdhp_edge.spec import InputSpec
from okdhp_edge.train.config import ConfigError, load_config

SPEC = InputSpec(width=96, height=128)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("dets")
    generate_dataset(path, num_train=1, num_val=6, seed=5, progress=False)
    return path


def _annotations(root) -> dict:
    return json.loads(coco_annotation_path(root, "val").read_text())


def _write(tmp_path, dets: list[dict]):
    path = tmp_path / "detections.json"
    path.write_text(json.dumps(dets))
    return path


def _perfect(ds):
    """Each sample's matched ground truth as its prediction: confident where labelled, 0 elsewhere."""
    joints = ds.ground_truth()["joints"]
    return joints[..., :2].copy(), (joints[..., 2] > 0).astype(np.float32), np.arange(len(ds))


def test_oks_nms_compares_only_keypoints_confident_in_both_poses():
    pose = np.random.default_rng(1).uniform(0, 100, (17, 2))
    other = pose.copy()
    other[:8] += 50.0  # far off, but not confident in the second pose: left out of the OKS
    scores = np.ones((2, 17))
    scores[1, :8] = 0.1
    rest = (np.array([0.9, 0.8]), np.full(2, 2500.0), np.array([1, 1]), COCO17.sigmas)
    np.testing.assert_array_equal(oks_nms(np.stack([pose, other]), scores, *rest), [0])
    scores[0, 8:] = 0.1  # nothing confident in both: no overlap, both kept
    np.testing.assert_array_equal(oks_nms(np.stack([pose, other]), scores, *rest), [0, 1])


def test_oks_nms_keeps_the_best_of_each_duplicate_group_per_image():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, (17, 2))
    far = base + 60.0
    keypoints = np.stack([base, base + 0.5, far, base])
    scores = np.ones((4, 17))
    pose_scores = np.array([0.7, 0.9, 0.8, 0.6])
    areas = np.full(4, 2500.0)
    image_ids = np.array([1, 1, 1, 2])  # the last pose is in another image: never compared
    keep = oks_nms(keypoints, scores, pose_scores, areas, image_ids, COCO17.sigmas)
    np.testing.assert_array_equal(keep, [1, 2, 3])  # pose 0 duplicates the higher-scored pose 1
    keep = oks_nms(keypoints, scores, pose_scores, areas, image_ids, COCO17.sigmas, threshold=1.0)
    np.testing.assert_array_equal(keep, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="17 OKS sigmas"):
        oks_nms(keypoints, scores, pose_scores, areas, image_ids, COCO17.sigmas[:5])


def _scored(ds, tmp_path, name, **options) -> tuple[dict, list[dict]]:
    ev = Evaluator(ds, **options)
    ev.add(*_perfect(ds))
    metrics = ev.compute(out_dir=tmp_path / name)
    return metrics, json.loads((tmp_path / name / "keypoint_results.json").read_text())


def test_duplicate_detection_is_suppressed_and_box_scores_reach_ap(root, tmp_path):
    people = [a for a in _annotations(root)["annotations"] if a.get("num_keypoints", 1) > 0]
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": round(0.9 - 0.05 * i, 2)}
        for i, a in enumerate(people)
    ]
    x, y, w, h = people[0]["bbox"]
    # a second box on the first person, ranked above every other person
    dets.append({"image_id": people[0]["image_id"], "category_id": 1, "bbox": [x + 2, y + 1, w, h], "score": 0.88})
    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17, detections=_write(tmp_path, dets))
    assert ds.detections is not None and len(ds) == len(people) + 1

    plain, plain_results = _scored(ds, tmp_path, "plain", oks_nms=None)
    assert len(plain_results) == len(people) + 1
    assert plain["ap"] < 99.0  # the duplicate is a false positive ranked among the true positives
    assert plain["ar"] == pytest.approx(100.0)

    metrics, results = _scored(ds, tmp_path, "nms")
    assert metrics["suppressed"] == 1 and len(results) == len(people)
    assert metrics["ap"] == pytest.approx(100.0) and metrics["ar"] == pytest.approx(100.0)
    # rescoring: box score x mean confident keypoint score (1 here), so each person keeps its detector score
    assert sorted(r["score"] for r in results) == pytest.approx(sorted(d["score"] for d in dets[:-1]))


def test_people_without_a_detection_count_as_misses(root, tmp_path):
    people = [a for a in _annotations(root)["annotations"] if a.get("num_keypoints", 1) > 0]
    dropped_image = people[0]["image_id"]
    missed = sum(a["image_id"] == dropped_image for a in people)
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9}
        for a in people
        if a["image_id"] != dropped_image
    ]
    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17, detections=_write(tmp_path, dets))
    metrics, _ = _scored(ds, tmp_path, "missed")
    # the image with no detection is still scored: its people lower the recall
    assert metrics["ar"] == pytest.approx(100.0 * (len(people) - missed) / len(people))
    assert metrics["ap"] < 100.0
    gt_boxes = build_dataset(f"coco:{root}", "val", SPEC, COCO17)
    assert _scored(gt_boxes, tmp_path, "gt")[0]["ap"] == pytest.approx(100.0)


def test_min_box_score_drops_low_detections(root, tmp_path):
    people = [a for a in _annotations(root)["annotations"] if a.get("num_keypoints", 1) > 0]
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9 if i else 0.3}
        for i, a in enumerate(people)
    ]
    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17, detections=_write(tmp_path, dets), min_box_score=0.5)
    assert len(ds) == len(people) - 1
    assert _scored(ds, tmp_path, "threshold")[0]["ar"] < 100.0


def test_config_wires_detections_into_the_validation_split(root, tmp_path):
    import torch

    from okdhp_edge.train.data import build_run_data
    from okdhp_edge.train.distributed import DistContext

    people = [a for a in _annotations(root)["annotations"] if a.get("num_keypoints", 1) > 0]
    path = _write(
        tmp_path, [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in people[:2]]
    )
    cfg = load_config(
        "tiny",
        overrides={"data": {"source": f"synthetic:{root}", "val_detections": str(path), "val_min_box_score": 0.5}},
    )
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    data = build_run_data(cfg.data, SPEC, COCO17, batch_size=1, seed=0, ctx=ctx)
    assert data.val.detections == path and len(data.val) == 2
    assert data.train.detections is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"source": "mpii:/data/mpii", "val_detections": "dets.json"}, "need COCO-layout data"),
        ({"val_min_box_score": 0.3}, "set data.val_detections"),
        ({"val_detections": "dets.json", "val_min_box_score": -1.0}, "must be a number >= 0"),
    ],
)
def test_config_rejects_bad_detection_settings(data, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", overrides={"data": data})


def test_missing_detection_file_names_it(root, tmp_path):
    from okdhp_edge.data import DatasetError

    with pytest.raises(DatasetError, match="dets-missing.json: detection results file not found"):
        build_dataset(f"coco:{root}", "val", SPEC, COCO17, detections=tmp_path / "dets-missing.json")
