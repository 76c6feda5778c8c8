"""Synthetic people: determinism, COCO/MPII layout, labels that match the pictures."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from okdhp_edge.data.synthetic import (
    COCO_POINTS,
    SceneConfig,
    coco_annotation_path,
    generate_dataset,
    image_rng,
    mpii_annotation_path,
    render_scene,
)
from okdhp_edge.skeleton import COCO17, MPII16


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_train=12, num_val=6, seed=7, progress=False)
    return root


def test_render_is_deterministic_per_seed():
    a_img, a_people = render_scene(np.random.default_rng(123))
    b_img, b_people = render_scene(np.random.default_rng(123))
    c_img, _ = render_scene(np.random.default_rng(124))
    assert np.array_equal(a_img, b_img)
    assert len(a_people) == len(b_people)
    for a, b in zip(a_people, b_people):
        assert np.array_equal(a.keypoints, b.keypoints) and a.bbox == b.bbox
    assert a_img.shape != c_img.shape or not np.array_equal(a_img, c_img)


def test_render_size_and_people_count():
    cfg = SceneConfig(people_weights=(0.0, 0.0, 1.0), truncation_prob=0.0)
    img, people = render_scene(np.random.default_rng(5), cfg, size=(200, 150))
    assert img.shape == (150, 200, 3) and img.dtype == np.uint8
    assert 1 <= len(people) <= 3
    for p in people:
        assert p.keypoints.shape == (17, 3) and p.mpii_joints.shape == (16, 3)


def test_coco_names_match_skeletons():
    assert COCO_POINTS == COCO17.keypoints
    from okdhp_edge.data.synthetic.render import MPII_POINTS

    assert MPII_POINTS == MPII16.keypoints


def test_dataset_layout_is_valid_coco(small_set):
    from pycocotools.coco import COCO

    path = coco_annotation_path(small_set, "train")
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 12
    assert coco.getCatIds(catNms=["person"]) == [1]
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 12  # at least one person per image
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(str(small_set / "images" / "train" / img["file_name"]))
        assert pixels.shape[:2] == (img["height"], img["width"])
    for ann in anns:
        img = coco.loadImgs(ann["image_id"])[0]
        kps = np.asarray(ann["keypoints"]).reshape(17, 3)
        assert ann["iscrowd"] == 0 and ann["num_keypoints"] == int((kps[:, 2] > 0).sum()) >= 1
        assert np.all(kps[kps[:, 2] == 0, :2] == 0)  # unlabelled -> (0, 0), as in COCO
        lab = kps[kps[:, 2] > 0]
        assert (lab[:, 0] >= -0.5).all() and (lab[:, 0] < img["width"]).all()
        assert (lab[:, 1] >= -0.5).all() and (lab[:, 1] < img["height"]).all()
        x, y, w, h = ann["bbox"]
        assert w > 4 and h > 4 and x >= -0.5 and y >= -0.5
        assert x + w <= img["width"] + 0.5 and y + h <= img["height"] + 0.5
        assert 0 < ann["area"] <= w * h + 1
        # labelled visible keypoints lie in (or within a limb's thickness of) the box
        vis = kps[kps[:, 2] == 2]
        assert ((vis[:, 0] >= x - 1) & (vis[:, 0] <= x + w + 1) & (vis[:, 1] >= y - 1) & (vis[:, 1] <= y + h + 1)).all()


def test_mpii_json_written_alongside(small_set):
    entries = json.loads(mpii_annotation_path(small_set, "val").read_text())
    assert entries and all(set(e) >= {"image", "center", "scale", "joints", "joints_vis", "head_box"} for e in entries)
    for e in entries:
        assert (small_set / "images" / e["image"]).is_file()
        assert len(e["joints"]) == 16 and e["scale"] > 0
        x1, y1, x2, y2 = e["head_box"]
        assert x2 > x1 and y2 > y1


def test_images_do_not_depend_on_set_size(tmp_path):
    generate_dataset(tmp_path / "a", 3, 1, seed=2, progress=False)
    generate_dataset(tmp_path / "b", 5, 1, seed=2, progress=False)
    for i in range(3):
        name = f"images/train/{i:06d}.jpg"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # train and val streams differ for the same index
    a = render_scene(image_rng(2, "train", 0))[0]
    b = render_scene(image_rng(2, "val", 0))[0]
    assert a.shape != b.shape or not np.array_equal(a, b)


def _people(n: int, config: SceneConfig | None = None):
    for i in range(n):
        yield from render_scene(np.random.default_rng([99, i]), config)[1]


def test_left_right_follow_coco_convention():
    """Facing the camera, the person's left is on the image's right; facing away, on its left."""
    cfg = SceneConfig(big_roll_prob=0.0, roll_std=5.0)
    front = back = 0
    for p in _people(60, cfg):
        if p.info["family"] == "random":
            continue
        k = {n: p.keypoints[i] for i, n in enumerate(COCO_POINTS)}
        if min(k["left_hip"][2], k["right_hip"][2]) == 0:
            continue
        yaw = abs(p.info["yaw"])
        if yaw <= 25:
            assert k["left_hip"][0] > k["right_hip"][0]
            front += 1
        elif yaw >= 155:
            assert k["left_hip"][0] < k["right_hip"][0]
            back += 1
    assert front >= 5 and back >= 1


def test_visibility_flags():
    """All three flags occur; back-facing faces are never 'visible'; outside-frame points are 0."""
    flags = []
    for p in _people(40):
        flags.append(p.keypoints[:, 2])
        if abs(p.info["yaw"]) >= 165 and p.info["family"] != "random":
            assert (p.keypoints[1:3, 2] != 2).all(), "eyes of a person facing away cannot be visible"
    flags = np.concatenate(flags)
    share = {v: float((flags == v).mean()) for v in (0, 1, 2)}
    assert share[2] > 0.5, share
    assert 0.03 < share[1] < 0.4, share
    assert share[0] > 0.0, share


def test_occluder_hides_keypoints():
    """With an object over someone in every scene, more keypoints are occluded than without."""

    def occluded(prob):
        cfg = SceneConfig(occluder_prob=prob, people_weights=(1.0,), truncation_prob=0.0)
        return np.mean([(p.keypoints[:, 2] == 1).mean() for p in _people(25, cfg)])

    assert occluded(1.0) > occluded(0.0) + 0.02


def test_generate_refuses_non_empty_dir(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_dataset(tmp_path, 1, 1, progress=False)


def test_cli_writes_dataset(tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "okdhp_edge.data.synthetic",
        "--out",
        str(out),
        "--train",
        "3",
        "--val",
        "2",
        "--seed",
        "4",
        "--max-size",
        "240",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 5 images" in proc.stdout
    meta = json.loads((out / "synthetic.json").read_text())
    assert meta["seed"] == 4 and meta["config"]["max_size"] == 240
    assert len(json.loads(coco_annotation_path(out, "val").read_text())["images"]) == 2
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_worker_processes_give_identical_output(tmp_path):
    generate_dataset(tmp_path / "one", 4, 1, seed=9, progress=False, workers=1)
    generate_dataset(tmp_path / "two", 4, 1, seed=9, progress=False, workers=2)
    for name in ("annotations/person_keypoints_train.json", "images/train/000003.jpg", "annot/train.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_people_are_drawn_on_background_photos(tmp_path):
    from okdhp_edge.data import build_dataset
    from okdhp_edge.data.synthetic import background_photos
    from okdhp_edge.spec import InputSpec

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = np.zeros((300, 400, 3), np.uint8)
    photo[:] = (10, 200, 30)
    cv2.imwrite(str(folder / "plain.png"), photo)
    (folder / "notes.txt").write_text("not an image")
    assert background_photos(folder) == (str((folder / "plain.png").resolve()),)
    config = SceneConfig(
        backgrounds=background_photos(folder), noise_std=0.0, blur_prob=0.0, distractors=(0, 0), occluder_prob=0.0
    )
    image, people = render_scene(np.random.default_rng(0), config=config)
    outside = np.ones(image.shape[:2], bool)
    for person in people:
        x, y, w, h = (int(round(v)) for v in person.bbox)
        outside[max(y - 2, 0) : y + h + 3, max(x - 2, 0) : x + w + 3] = False
    assert outside.mean() > 0.2 and (image[outside] == (10, 200, 30)).all()
    with pytest.raises(ValueError, match="no .*images"):
        background_photos(tmp_path / "photos" / ".." / "photos" / "..")
    # the training data option, and a cache of its own
    spec = InputSpec(width=96, height=128)
    data = build_dataset(
        "synthetic", "val", spec, COCO17, synthetic_images=3, cache_dir=tmp_path / "cache", backgrounds=folder
    )
    plain = build_dataset("synthetic", "val", spec, COCO17, synthetic_images=3, cache_dir=tmp_path / "cache")
    assert data.samples[0].image_path.parent != plain.samples[0].image_path.parent
    from okdhp_edge.data import DatasetError

    with pytest.raises(DatasetError, match="data.backgrounds"):
        build_dataset(
            "synthetic",
            "val",
            spec,
            COCO17,
            synthetic_images=3,
            cache_dir=tmp_path / "cache",
            backgrounds=tmp_path / "none",
        )


def test_cli_backgrounds_option(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.full((200, 300, 3), 90, np.uint8))
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "okdhp_edge.data.synthetic",
        "--out",
        str(out),
        "--train",
        "2",
        "--val",
        "1",
        "--backgrounds",
        str(folder),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "synthetic.json").read_text())["config"]["backgrounds"] == [
        str((folder / "a.jpg").resolve())
    ]
    bad = subprocess.run(
        cmd[:-1] + [str(tmp_path / "missing")] + ["--overwrite"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "not a folder" in bad.stderr


def test_jpeg_knob_compresses_and_leaves_older_data_alone():
    """jpeg_prob 0 draws nothing from the generator's stream, so data sets made before the knob
    are the same images; at 1 the image carries JPEG's 8x8 blocks and loses detail."""
    from dataclasses import replace

    plain = SceneConfig(blur_prob=0.0)
    before, people = render_scene(np.random.default_rng(3), plain, size=(160, 128))
    zero, _ = render_scene(np.random.default_rng(3), replace(plain, jpeg_prob=0.0), size=(160, 128))
    np.testing.assert_array_equal(before, zero)
    compressed, people_after = render_scene(np.random.default_rng(3), replace(plain, jpeg_prob=1.0), size=(160, 128))
    assert [p.bbox for p in people_after] == [p.bbox for p in people]
    difference = np.abs(compressed.astype(int) - before.astype(int))
    assert 0 < difference.mean() < 25


def test_scene_fields_from_the_training_config(tmp_path):
    from okdhp_edge.data import DatasetError, build_dataset
    from okdhp_edge.spec import InputSpec
    from okdhp_edge.train.config import load_config, parse_override

    config = load_config("tiny", overrides=parse_override("data.scene.jpeg_prob=0.5"))
    assert config.data.scene == {"jpeg_prob": 0.5}
    spec = InputSpec(width=96, height=128)
    jpeg = build_dataset(
        "synthetic", "val", spec, COCO17, synthetic_images=2, cache_dir=tmp_path, scene=config.data.scene
    )
    plain = build_dataset("synthetic", "val", spec, COCO17, synthetic_images=2, cache_dir=tmp_path)
    assert jpeg.samples[0].image_path.parent != plain.samples[0].image_path.parent
    with pytest.raises(DatasetError, match="data.scene / data.backgrounds: unknown field.*jpeg_prob"):
        build_dataset("synthetic", "val", spec, COCO17, synthetic_images=2, cache_dir=tmp_path, scene={"jpeg": 0.5})
