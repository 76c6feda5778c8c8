"""The background bank, the cut-out bank and the `pasted` source: keypoints follow the paste, covered
ones turn invisible, sets are reproducible, held-out media are refused, bad input is named."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from okdhp_edge.data import build_dataset
from okdhp_edge.data.backgrounds import build_bank, load_definition
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.cutouts import _scene_frames, load_cutouts
from okdhp_edge.data.held_out import check_trainable, held_out_media
from okdhp_edge.data.paste import OBJECT, Layer, PasteConfig, _annotate, _composite, generate_pasted, paste_person
from okdhp_edge.skeleton import COCO17, MPII16
from okdhp_edge.spec import InputSpec

REPO = Path(__file__).resolve().parents[1]


def _figure(width: int = 40, height: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """An opaque RGBA cut-out, black, with one white pixel at each of 17 known keypoints."""
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 3] = 255
    rows = np.linspace(6, height - 7, 17).round().astype(int)
    cols = np.where(np.arange(17) % 2 == 0, 8, width - 9)
    rgba[rows, cols, :3] = 255
    return rgba, np.stack([cols, rows, np.full(17, 2)], 1).astype(np.float64)


def _centroid(image: np.ndarray, x: float, y: float, half: int = 3) -> np.ndarray:
    r0, c0 = int(round(y)) - half, int(round(x)) - half
    window = image[r0 : r0 + 2 * half + 1, c0 : c0 + 2 * half + 1, 0].astype(np.float64)
    rows, cols = np.mgrid[r0 : r0 + 2 * half + 1, c0 : c0 + 2 * half + 1]
    return np.array([(window * cols).sum(), (window * rows).sum()]) / window.sum()


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("flip", [False, True])
def test_keypoints_follow_the_paste_transform(scale: float, flip: bool):
    rgba, points = _figure()
    size = (int(40 * scale), int(90 * scale))
    layer, moved = paste_person(rgba, points, size, (23, 11), flip)
    image = np.zeros((240, 160, 3), np.uint8)
    _composite(image, np.zeros((240, 160), np.uint8), layer, 1)
    expected = points[list(COCO17.flip_index)] if flip else points  # mirrored: left and right swap names
    for k in range(17):
        found = _centroid(image, *moved[k, :2])
        assert np.abs(found - moved[k, :2]).max() <= 0.5, (k, found, moved[k])
        x = (40 - 1 - expected[k, 0]) if flip else expected[k, 0]
        assert moved[k, 0] == pytest.approx((x + 0.5) * size[0] / 40 - 0.5 + 23)
        assert moved[k, 1] == pytest.approx((expected[k, 1] + 0.5) * size[1] / 90 - 0.5 + 11)


def test_covered_keypoints_become_invisible_and_outside_ones_unlabelled():
    rgba, points = _figure()
    points[3, 2] = 0  # the teacher gave none: stays unlabelled
    image, owner = np.zeros((100, 100, 3), np.uint8), np.zeros((100, 100), np.uint8)
    layer, moved = paste_person(rgba, points, (40, 90), (70, 5), False)  # right side leaves the image
    footprint = _composite(image, owner, layer, 1)
    cover = Layer(np.full((12, 12, 3), 128, np.float32), np.ones((12, 12), np.float32), 0, 0)
    cover.x, cover.y = int(moved[0, 0]) - 6, int(moved[0, 1]) - 6
    _composite(image, owner, cover, OBJECT)
    person = _annotate({"points": moved, "footprint": footprint, "file": "f"}, 1, owner)
    v = person["keypoints"][:, 2]
    outside = moved[:, 0] >= 99.5
    assert v[0] == 1 and outside.any() and (v[outside] == 0).all()
    assert (person["keypoints"][outside, :2] == 0).all() and v[3] == 0
    rest = ~outside & (np.arange(17) != 0) & (np.arange(17) != 3)
    assert (v[rest] == 2).all()
    assert person["bbox"] == [70.0, 5.0, 30.0, 90.0]


def _banks(tmp: Path) -> PasteConfig:
    """A two-person cut-out bank and three background photos, made here."""
    rng = np.random.default_rng(0)
    bank = tmp / "cutouts"
    (bank / "cutouts").mkdir(parents=True)
    records = []
    for i, split in enumerate(["train", "train", "val"]):
        rgba, points = _figure()
        rgba[..., :3] = np.maximum(rgba[..., :3], rng.integers(0, 200, 3, dtype=np.uint8))
        cv2.imwrite(str(bank / "cutouts" / f"p{i}.png"), rgba)
        records.append(
            {
                "file": f"cutouts/p{i}.png",
                "keypoints": points.ravel().tolist(),
                "box": [0, 0, 39, 89],
                "cut": [False, False, False, i == 1],
                "mask": "labelme",
                "split": split,
                "source": {"kind": "test"},
            }
        )
    (bank / "cutouts.json").write_text(json.dumps({"cutouts": records}))
    photos = tmp / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"b{i}.jpg"), rng.integers(0, 255, (300 + 40 * i, 400, 3), dtype=np.uint8))
    return PasteConfig(cutouts=str(bank), backgrounds=str(photos), min_size=96, max_size=160, occluder_prob=0.5)


def test_sets_are_deterministic_resumable_and_valid_coco(tmp_path):
    cfg = _banks(tmp_path)
    a = generate_pasted(tmp_path / "a", "train", 6, 3, cfg)
    b = generate_pasted(tmp_path / "b", "train", 4, 3, cfg)  # a smaller set: the same first images
    for i in range(4):
        assert (tmp_path / "a/images/train" / f"{i:06d}.jpg").read_bytes() == (
            tmp_path / "b/images/train" / f"{i:06d}.jpg"
        ).read_bytes()
    assert [x for x in a["annotations"] if x["image_id"] <= 4] == b["annotations"]
    other = generate_pasted(tmp_path / "c", "train", 4, 4, cfg)
    assert other["annotations"] != b["annotations"]
    stamp = (tmp_path / "a/images/train/000000.jpg").stat().st_mtime_ns
    assert generate_pasted(tmp_path / "a", "train", 6, 3, cfg) == a  # resumed: nothing redrawn
    assert (tmp_path / "a/images/train/000000.jpg").stat().st_mtime_ns == stamp
    for ann in a["annotations"]:
        kp = np.asarray(ann["keypoints"]).reshape(17, 3)
        assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and ann["area"] > 0
    assert {a_["cutout"] for a_ in a["annotations"]} <= {"cutouts/p0.png", "cutouts/p1.png"}  # train split only


def test_pasted_source_in_a_mixture(tmp_path):
    cfg = _banks(tmp_path)
    spec = InputSpec(height=64, width=48)
    opts = dict(synthetic_images=3, cache_dir=tmp_path / "cache", backgrounds=cfg.backgrounds)
    data = build_dataset(f"synthetic+pasted:{cfg.cutouts}", "train", spec, COCO17, train=True, **opts)
    assert len(data.parts) == 2 and len(data.parts[1]) > 0
    item = data.parts[1][0]
    assert item["image"].shape == (3, 64, 48) and item["joints"].shape == (17, 3)
    again = build_dataset(f"pasted:{cfg.cutouts}", "train", spec, COCO17, **opts)
    assert again.annotation_file == data.parts[1].annotation_file  # cached by its parameters
    with pytest.raises(DatasetError, match="COCO-17"):
        build_dataset(f"pasted:{cfg.cutouts}", "train", spec, MPII16, **opts)
    with pytest.raises(DatasetError, match="no cut-out bank"):
        build_dataset(f"pasted:{tmp_path / 'nothing'}", "train", spec, COCO17, **opts)


def test_bad_banks_are_named(tmp_path):
    cfg = _banks(tmp_path)
    (Path(cfg.cutouts) / "cutouts" / "p0.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError, match="p0.png"):
        generate_pasted(tmp_path / "x", "train", 8, 0, cfg)
    manifest = Path(cfg.cutouts) / "cutouts.json"
    manifest.write_text(json.dumps({"cutouts": [{"file": "a.png", "keypoints": [0, 0, 2] * 16}]}))
    with pytest.raises(DatasetError, match="16 keypoints"):
        load_cutouts(cfg.cutouts)
    with pytest.raises(DatasetError, match="no .* images"):
        generate_pasted(
            tmp_path / "y",
            "train",
            1,
            0,
            PasteConfig(cutouts=str(_banks(tmp_path / "z").cutouts), backgrounds=str(tmp_path)),
        )


def test_held_out_list_covers_the_dev_sets_held_out_media():
    spec = json.loads((REPO / "benchmarks/data/real_scenes.json").read_text())
    held = held_out_media()
    for scene in spec["scenes"].values():
        for frame in scene["frames"]:
            if scene["use"] != "trainable":
                assert frame["sha256"] in held, frame["file"]
                assert frame.get("frame", 0) >= held[frame["sha256"]][1], frame
            else:
                assert frame["sha256"] not in held, frame["file"]


def test_held_out_media_are_refused(media, tmp_path):
    clip = media / "vtest.avi"
    check_trainable(clip, stop=606)
    with pytest.raises(DatasetError, match="from 606 on are held out"):
        check_trainable(clip, stop=700)
    with pytest.raises(DatasetError, match="held-out evaluation file"):
        check_trainable(media / "tree.avi")
    # as a background plate
    definition = json.loads(load_definition_text())
    definition["photos"] = []
    definition["plates"] = [
        {"source": "opencv-doc", "file": "tree.avi", "sha256": "4666099d0f704e31", "start": 0, "stop": 60, "every": 10}
    ]
    path = tmp_path / "def.json"
    path.write_text(json.dumps(definition))
    with pytest.raises(DatasetError, match="tree.avi"):
        build_bank(tmp_path / "bank", path)
    # as a cut-out source: a held-out file marked trainable in a scene set is refused, held-out scenes skipped
    scenes = tmp_path / "scenes"
    (scenes / "annotations").mkdir(parents=True)
    (scenes / "annotations/person_keypoints_train.json").write_text(json.dumps({"images": [], "annotations": []}))
    frame = {
        "name": "x",
        "image": "images/train/x.jpg",
        "split": "train",
        "people": 1,
        "package": "opencv-doc",
        "version": "1",
        "path": "vtest.avi",
        "frame": 0,
        "licence": "l",
        "sha256": "4666099d0f704e31",
    }
    manifest = {"scenes": {"a": {"use": "held-out", "frames": [frame]}}}
    (scenes / "scenes.json").write_text(json.dumps(manifest))
    assert _scene_frames(scenes) == []
    manifest["scenes"]["a"]["use"] = "trainable"
    (scenes / "scenes.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="held-out media"):
        _scene_frames(scenes)


def load_definition_text() -> str:
    from okdhp_edge.data.backgrounds import DEFINITION

    return DEFINITION.read_text()


def test_background_bank_build_resumes_and_records_sources(media, tmp_path):
    definition = json.loads(load_definition_text())
    definition["sources"] = {"opencv-doc": definition["sources"]["opencv-doc"]}
    definition["photos"] = [p for p in definition["photos"] if p["file"] == "building.jpg"]
    definition["plates"] = [{**definition["plates"][0], "stop": 60}]
    path = tmp_path / "def.json"
    path.write_text(json.dumps(definition))
    load_definition(path)
    manifest = build_bank(tmp_path / "bank", path)
    files = {e["file"]: e for e in manifest["files"]}
    assert set(files) == {"opencv-doc-building.jpg", "opencv-doc-vtest-plate.jpg"}
    entry = files["opencv-doc-building.jpg"]
    assert entry["package"] == "opencv-doc" and entry["version"] and "Files:" in entry["licence"]
    image = cv2.imread(str(tmp_path / "bank" / "opencv-doc-building.jpg"))
    assert max(image.shape[:2]) <= 1024
    stamp = (tmp_path / "bank" / "opencv-doc-building.jpg").stat().st_mtime_ns
    build_bank(tmp_path / "bank", path)
    assert (tmp_path / "bank" / "opencv-doc-building.jpg").stat().st_mtime_ns == stamp
    definition["photos"][0]["sha256"] = "0000000000000000"
    path.write_text(json.dumps(definition))
    (tmp_path / "bank" / "opencv-doc-building.jpg").unlink()
    with pytest.raises(DatasetError, match="building.jpg: sha256 .* is not the reviewed"):
        build_bank(tmp_path / "bank", path)
    definition["sources"]["opencv-doc"]["package"] = "okdhp-no-such-package"
    path.write_text(json.dumps(definition))
    with pytest.raises(DatasetError, match="okdhp-no-such-package: (not in bookworm.s index|download failed)"):
        build_bank(tmp_path / "bank", path)


def test_blazepose_segmentation_is_a_person_mask(media):
    from okdhp_edge.runtime.errors import FetchError
    from okdhp_edge.runtime.landmarker import BlazePoseLandmarker

    try:
        teacher = BlazePoseLandmarker.fetch("full", 1)
    except FetchError as err:
        pytest.skip(f"BlazePose Full not available: {err}")
    image = cv2.imread(str(media / "basketball1.png"))
    boxes = np.array([[30, 75, 195, 475], [432, 22, 639, 479]], np.float32)
    masks = teacher.segment(image, boxes) >= 0.5
    assert masks.shape == (2, *image.shape[:2])
    for (x1, y1, x2, y2), mask in zip(boxes.astype(int), masks):
        inside = mask[y1 : y2 + 1, x1 : x2 + 1]
        assert 0.2 < inside.mean() < 0.8  # a silhouette, not the whole box nor nothing
        assert inside.sum() > 0.95 * mask.sum()  # and it stays on that person
    assert not teacher.segment(np.zeros((200, 200, 3), np.uint8), np.array([[50, 20, 150, 180]])).any()
