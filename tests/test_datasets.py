"""Loaders (synthetic/COCO/MPII), the contract's item layout, augmentation and bad data."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from okdhp_edge.codec import ABSENT, flip_heatmaps
from okdhp_edge.data import AugmentConfig, DatasetError, PoseDataset, build_dataset, generate_dataset
from okdhp_edge.data.synthetic import coco_annotation_path, mpii_annotation_path
from okdhp_edge.geometry import apply_affine
from okdhp_edge.preprocess import crop_people, normalize
from okdhp_edge.skeleton import COCO17, MPII16
from okdhp_edge.spec import InputSpec

SPEC = InputSpec(width=96, height=128)
KEYS = {
    "image": ((3, 128, 96), np.float32),
    "target": ((17, 32, 24), np.float32),
    "target_weight": ((17,), np.float32),
    "ignore": ((32, 24), np.float32),
    "joints": ((17, 3), np.float32),
    "crop_to_image": ((2, 3), np.float32),
    "image_id": ((), np.int64),
    "bbox": ((4,), np.float32),
    "area": ((), np.float32),
    "box_score": ((), np.float32),
    "head_size": ((), np.float32),
    "index": ((), np.int64),
}
NO_JITTER = dict(brightness=0.0, contrast=0.0, saturation=0.0)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth")
    generate_dataset(path, num_train=8, num_val=5, seed=1, progress=False)
    return path


def _copy(root, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


def _image_of(item):
    """Undo normalize: back to a BGR uint8 crop."""
    x = item["image"].transpose(1, 2, 0) * np.asarray(SPEC.std) + np.asarray(SPEC.mean)
    return np.clip(np.rint(x[..., ::-1]), 0, 255).astype(np.uint8)


def test_synthetic_source_follows_contract(tmp_path):
    ds = build_dataset("synthetic", "val", SPEC, COCO17, cache_dir=tmp_path, synthetic_images=4)
    assert ds.kind == "coco" and ds.skeleton is COCO17 and ds.num_skipped == 0
    assert ds.annotation_file is not None and ds.annotation_file.is_file()
    item = ds[0]
    for key, (shape, dtype) in KEYS.items():
        assert np.asarray(item[key]).shape == shape, key
        assert np.asarray(item[key]).dtype == dtype, key
    # the cached set is reused, not regenerated
    stamp = ds.annotation_file.stat().st_mtime_ns
    again = build_dataset("synthetic", "val", SPEC, COCO17, cache_dir=tmp_path, synthetic_images=4)
    assert again.annotation_file == ds.annotation_file and again.annotation_file.stat().st_mtime_ns == stamp
    assert len(list(tmp_path.iterdir())) == 1


def test_coco_layout_read_from_generated_set(root):
    ds = build_dataset(f"coco:{root}", "train", SPEC, COCO17)
    coco = json.loads(coco_annotation_path(root, "train").read_text())
    assert len(ds) == len(coco["annotations"])
    assert {s.image_id for s in ds.samples} <= {im["id"] for im in coco["images"]}
    ann = coco["annotations"][0]
    x, y, w, h = ann["bbox"]
    image = next(im for im in coco["images"] if im["id"] == ann["image_id"])
    inside = np.clip([x, y, x + w, y + h], 0, [image["width"] - 1, image["height"] - 1] * 2)  # okdhp_edge.boxes
    assert np.allclose(ds.samples[0].bbox, inside, atol=1e-3)
    assert np.allclose(ds.samples[0].joints.reshape(-1), ann["keypoints"], atol=1e-3)


def test_mpii_layout_read_from_generated_set(root):
    ds = build_dataset(f"mpii:{root}", "val", SPEC, MPII16)
    entries = json.loads(mpii_annotation_path(root, "val").read_text())
    assert ds.kind == "mpii" and ds.annotation_file == mpii_annotation_path(root, "val") and len(ds) == len(entries)
    item = ds[0]
    assert item["target"].shape == (16, 32, 24) and item["joints"].shape == (16, 3)
    hb = np.asarray(entries[0]["head_box"])
    assert item["head_size"] == pytest.approx(0.6 * np.hypot(hb[2] - hb[0], hb[3] - hb[1]), rel=1e-5)
    side = 200 * entries[0]["scale"]
    assert item["bbox"][2] - item["bbox"][0] == pytest.approx(side, rel=1e-4)
    # the same synthetic directory serves either skeleton
    assert build_dataset(f"synthetic:{root}", "val", SPEC, MPII16).kind == "mpii"


def test_validation_pixels_match_preprocess(root):
    import cv2

    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17)
    item = ds[1]
    sample = ds.samples[1]
    crops, back = crop_people(cv2.imread(str(sample.image_path)), sample.bbox[None], SPEC)
    assert np.array_equal(item["image"], normalize(crops, SPEC)[0])
    assert np.array_equal(item["crop_to_image"], back[0])


def _roundtrip_error(ds, item):
    """Max distance (crop pixels) between decoded targets mapped back and the ground truth."""
    codec = ds.transform.codec
    xy, _ = codec.decode(item["target"][None])
    xy = xy[0]
    inside = (xy[:, 0] > 2) & (xy[:, 0] < SPEC.width - 3) & (xy[:, 1] > 2) & (xy[:, 1] < SPEC.height - 3)
    use = (item["target_weight"] > 0) & inside
    order = np.asarray(ds.skeleton.flip_index) if item["flipped"] else np.arange(ds.skeleton.num_keypoints)
    err = np.linalg.norm(apply_affine(xy, item["crop_to_image"]) - item["joints"][order, :2], axis=1)[use]
    pixel = np.linalg.norm(item["crop_to_image"][:, 0])  # image pixels per crop pixel
    return err.max() / pixel, use.sum()


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_augmented_targets_map_back_to_ground_truth(root, flip):
    aug = AugmentConfig(scale=0.3, rotation=40, rotation_prob=1.0, flip_prob=flip, half_body_prob=0.3)
    ds = build_dataset(f"coco:{root}", "train", SPEC, COCO17, train=True, augment=aug)
    checked = 0
    for i in range(len(ds)):
        item = ds[i]
        assert bool(item["flipped"]) == bool(flip)
        err, n = _roundtrip_error(ds, item)
        checked += n
        assert err < 1.5, (i, err)  # argmax + quarter step on a stride-4 grid
    assert checked > 50


def test_flip_mirrors_crop_and_swaps_left_right(root):
    plain = build_dataset(
        f"coco:{root}",
        "train",
        SPEC,
        COCO17,
        train=True,
        augment=AugmentConfig(scale=0.0, rotation=0.0, flip_prob=0.0, **NO_JITTER),
    )
    flipped = build_dataset(
        f"coco:{root}",
        "train",
        SPEC,
        COCO17,
        train=True,
        augment=AugmentConfig(scale=0.0, rotation=0.0, flip_prob=1.0, **NO_JITTER),
    )
    a, b = plain[2], flipped[2]
    diff = np.abs(_image_of(a)[:, ::-1].astype(int) - _image_of(b).astype(int))
    assert np.percentile(diff, 99) <= 2  # identical up to warp rounding
    np.testing.assert_allclose(flip_heatmaps(a["target"], COCO17.flip_index), b["target"], atol=1e-5)
    np.testing.assert_array_equal(a["target_weight"][COCO17.flip_index], b["target_weight"])
    # a left-side joint's target sits where the mirrored right-side joint was
    ls, rs = COCO17.keypoints.index("left_shoulder"), COCO17.keypoints.index("right_shoulder")
    if a["target_weight"][rs] > 0:
        ya, xa = np.unravel_index(a["target"][rs].argmax(), a["target"][rs].shape)
        yb, xb = np.unravel_index(b["target"][ls].argmax(), b["target"][ls].shape)
        assert (yb, xb) == (ya, a["target"].shape[-1] - 1 - xa)


def test_augmentation_is_seeded_per_epoch_and_index(root):
    ds = build_dataset(f"coco:{root}", "train", SPEC, COCO17, train=True, seed=3)
    first = ds[4]["image"]
    assert np.array_equal(first, ds[4]["image"])
    ds.set_epoch(1)
    assert not np.array_equal(first, ds[4]["image"])
    ds.set_epoch(0)
    assert np.array_equal(first, ds[4]["image"])
    other = build_dataset(f"coco:{root}", "train", SPEC, COCO17, train=True, seed=4)
    assert not np.array_equal(first, other[4]["image"])


def test_torch_dataloader_batches_with_a_worker(root):
    torch = pytest.importorskip("torch")
    ds = build_dataset(f"coco:{root}", "train", SPEC, COCO17, train=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="fork")
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 128, 96) and batch["target"].dtype == torch.float32
    assert batch["index"].tolist() == [0, 1, 2, 3]
    assert torch.equal(batch["image"][1], torch.from_numpy(ds[1]["image"]))


def test_corrupt_image_is_skipped_and_counted(root, tmp_path):
    data = _copy(root, tmp_path)
    coco = json.loads(coco_annotation_path(data, "train").read_text())
    victim = coco["images"][0]
    (data / "images" / "train" / victim["file_name"]).write_bytes(b"this is not a jpeg")
    people = sum(a["image_id"] == victim["id"] for a in coco["annotations"])
    with pytest.warns(UserWarning, match="skipped 1 of 8 images") as record:
        ds = build_dataset(f"coco:{data}", "train", SPEC, COCO17)
    assert len(record) == 1
    assert ds.num_skipped == 1
    assert len(ds) == len(coco["annotations"]) - people
    assert victim["id"] not in {s.image_id for s in ds.samples}


def test_image_that_fails_to_decode_later_is_replaced(root, tmp_path):
    data = _copy(root, tmp_path)
    ds = build_dataset(f"coco:{data}", "train", SPEC, COCO17)
    bad = ds.samples[0].image_path
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 200 + b"\xff\xd9")  # passes the header check, cannot decode
    n_bad = sum(s.image_path == bad for s in ds.samples)
    with pytest.warns(UserWarning, match="cannot decode") as record:
        item = ds[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds[0]  # a second failure is counted, not warned again
    assert len(record) == 1
    assert int(item["index"]) == n_bad  # the next readable sample, carrying its own index
    assert ds.num_skipped == 1


def test_missing_image_counted(root, tmp_path):
    data = _copy(root, tmp_path)
    coco = json.loads(coco_annotation_path(data, "val").read_text())
    (data / "images" / "val" / coco["images"][-1]["file_name"]).unlink()
    with pytest.warns(UserWarning, match="missing"):
        ds = build_dataset(f"coco:{data}", "val", SPEC, COCO17)
    assert ds.num_skipped == 1


def test_malformed_coco_annotation_names_file_and_entry(root, tmp_path):
    data = _copy(root, tmp_path)
    path = coco_annotation_path(data, "train")
    coco = json.loads(path.read_text())
    coco["annotations"][3]["keypoints"] = coco["annotations"][3]["keypoints"][:-3]
    path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r"person_keypoints_train\.json: annotations\[3\].*'keypoints'.*51"):
        build_dataset(f"coco:{data}", "train", SPEC, COCO17)


def test_truncated_json_is_a_clear_error(root, tmp_path):
    data = _copy(root, tmp_path)
    path = coco_annotation_path(data, "val")
    path.write_text(path.read_text()[:100])
    with pytest.raises(DatasetError, match="not valid JSON"):
        build_dataset(f"coco:{data}", "val", SPEC, COCO17)


def test_malformed_mpii_entry_names_file_and_entry(root, tmp_path):
    data = _copy(root, tmp_path)
    path = mpii_annotation_path(data, "val")
    entries = json.loads(path.read_text())
    del entries[1]["scale"]
    path.write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=r"valid\.json: entry 1: missing field 'scale'"):
        build_dataset(f"mpii:{data}", "val", SPEC, MPII16)


def test_crowd_and_keypointless_people_are_skipped(root, tmp_path):
    data = _copy(root, tmp_path)
    path = coco_annotation_path(data, "val")
    coco = json.loads(path.read_text())
    n = len(coco["annotations"])
    image_id = coco["images"][0]["id"]
    coco["annotations"] += [
        {
            "id": 9001,
            "image_id": image_id,
            "category_id": 1,
            "iscrowd": 1,
            "bbox": [1, 1, 30, 30],
            "area": 900,
            "segmentation": {"counts": [], "size": [1, 1]},
        },
        {
            "id": 9002,
            "image_id": image_id,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [1, 1, 30, 30],
            "area": 900,
            "keypoints": [0] * 51,
            "num_keypoints": 0,
        },
    ]
    path.write_text(json.dumps(coco))
    assert len(build_dataset(f"coco:{data}", "val", SPEC, COCO17)) == n


def test_keypoints_placed_outside_the_image_are_taught_as_absent(root, tmp_path):
    data = _copy(root, tmp_path)
    path = coco_annotation_path(data, "val")
    coco = json.loads(path.read_text())
    ann = coco["annotations"][0]
    image = next(i for i in coco["images"] if i["id"] == ann["image_id"])
    joints = np.array(ann["keypoints"], np.float64).reshape(17, 3)
    joints[15] = (joints[11, 0], image["height"] + 40, 0)  # an ankle below the frame: absent
    joints[16] = (0, 0, 0)  # COCO's "not labelled"
    ann["keypoints"] = joints.ravel().tolist()
    path.write_text(json.dumps(coco))
    val = build_dataset(f"coco:{data}", "val", SPEC, COCO17, absent_weight=1.0)
    index = next(i for i, s in enumerate(val.samples) if s.image_id == ann["image_id"])
    assert val.samples[index].joints[15, 2] == ABSENT and val.samples[index].joints[16, 2] == 0
    augment = AugmentConfig(flip_prob=1.0, **NO_JITTER)  # mirrored: the absent ankle is channel 16 now
    train = PoseDataset(val.samples, COCO17, "coco", SPEC, train=True, augment=augment, absent_weight=1.0)
    for item, (absent, unknown) in ((val[index], (15, 16)), (train[index], (16, 15))):
        assert item["target_weight"][absent] == 1 and item["target"][absent].max() == 0  # "not here", taught
        assert item["target_weight"][unknown] == 0  # unknown: skipped
    assert build_dataset(f"coco:{data}", "val", SPEC, COCO17)[index]["target_weight"][15] == 0  # off by default


@pytest.mark.parametrize("train", [False, True])
def test_unlabelled_people_become_ignore_pixels_of_their_image_s_crops(root, tmp_path, train):
    data = _copy(root, tmp_path)
    path = coco_annotation_path(data, "val")
    coco = json.loads(path.read_text())
    first = coco["annotations"][0]
    x, y, w, h = first["bbox"]
    # an unlabelled person standing over the left half of the first labelled person's box
    coco["annotations"].append(
        {
            "id": 9002,
            "image_id": first["image_id"],
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [x, y, w / 2, h],
            "area": w * h / 2,
            "keypoints": [0] * 51,
            "num_keypoints": 0,
        }
    )
    path.write_text(json.dumps(coco))
    aug = AugmentConfig(rotation=30.0, rotation_prob=1.0, flip_prob=0.5, **NO_JITTER)
    ds = build_dataset(f"coco:{data}", "val", SPEC, COCO17, train=train, augment=aug if train else None)
    index = next(
        i
        for i, s in enumerate(ds.samples)
        if s.image_id == first["image_id"] and np.allclose(s.bbox[:2], [x, y], atol=1)
    )
    item = ds[index]
    mask = item["ignore"]
    assert set(np.unique(mask)) == {0.0, 1.0}
    # the mask is the box warped into the heatmap: check at the box's own centre and far right of the person
    to_heatmap = np.linalg.inv(np.vstack([item["crop_to_image"], [0, 0, 1]]))[:2]
    inside = (apply_affine(np.array([[x + w / 4, y + h / 2]]), to_heatmap)[0] + 0.5) / 4 - 0.5
    outside = (apply_affine(np.array([[x + w * 0.95, y + h / 2]]), to_heatmap)[0] + 0.5) / 4 - 0.5
    assert mask[int(round(inside[1])), int(round(inside[0]))] == 1.0
    assert mask[int(round(outside[1])), int(round(outside[0]))] == 0.0
    others = [i for i, s in enumerate(ds.samples) if s.image_id != first["image_id"]]
    assert not ds[others[0]]["ignore"].any()


def test_empty_dataset_is_a_clear_error(root, tmp_path):
    data = _copy(root, tmp_path)
    path = coco_annotation_path(data, "val")
    coco = json.loads(path.read_text())
    coco["annotations"] = []
    path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="no annotated"):
        build_dataset(f"coco:{data}", "val", SPEC, COCO17)


def test_bad_sources_and_skeleton_mismatch(root, tmp_path):
    with pytest.raises(DatasetError, match="unknown data source"):
        build_dataset("imagenet:/x", "val", SPEC, COCO17)
    with pytest.raises(DatasetError, match="not found"):
        build_dataset(f"coco:{tmp_path / 'nope'}", "val", SPEC, COCO17)
    with pytest.raises(DatasetError, match="17 keypoints but skeleton 'mpii16'"):
        build_dataset(f"coco:{root}", "val", SPEC, MPII16)
    with pytest.raises(DatasetError, match="split must be"):
        build_dataset(f"coco:{root}", "test", SPEC, COCO17)


def test_detection_boxes(root, tmp_path):
    coco = json.loads(coco_annotation_path(root, "val").read_text())
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in coco["annotations"]]
    dets.append({"image_id": coco["images"][0]["id"], "category_id": 1, "bbox": [0, 0, 3, 3], "score": 0.8})
    dets.append({"image_id": coco["images"][0]["id"], "category_id": 1, "bbox": [5, 5, 40, 40], "score": 0.01})
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    ds = build_dataset(f"coco:{root}", "val", SPEC, COCO17, detections=path, min_box_score=0.05)
    assert len(ds) == len(coco["annotations"]) + 1
    matched = [s for s in ds.samples if (s.joints[:, 2] > 0).any()]
    assert len(matched) == len(coco["annotations"])
    assert all(s.box_score == pytest.approx(0.9) for s in matched)


def test_synthetic_dir_generates_missing_split(tmp_path):
    ds = build_dataset(f"synthetic:{tmp_path / 'fresh'}", "val", SPEC, COCO17, synthetic_images=2)
    assert ds.annotation_file == coco_annotation_path(tmp_path / "fresh", "val")
    assert len(json.loads(ds.annotation_file.read_text())["images"]) == 2


def test_data_and_eval_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, okdhp_edge.data, okdhp_edge.eval; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
