"""The real multi-scene dev set's pieces that can fail without the media: labelme boxes, the scene
bookkeeping of the committed definition, and the errors for missing or corrupt media."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from real_scenes import (  # noqa: E402
    DEFINITION,
    SceneSetError,
    check_media,
    labelme_boxes,
    load_definition,
    read_frame,
    score_on_detections,
)


def test_labelme_person_polygons_become_clipped_boxes(tmp_path: Path) -> None:
    shapes = [
        {"label": "person", "shape_type": "polygon", "points": [[10, 20], [40, 15], [35, 90]]},
        {"label": "sofa", "shape_type": "polygon", "points": [[0, 0], [5, 5], [3, 9]]},
        {"label": "person", "shape_type": "rectangle", "points": [[90, 50], [130, 120]]},
    ]
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"imageWidth": 100, "imageHeight": 100, "shapes": shapes}))
    np.testing.assert_allclose(labelme_boxes(path), [[10, 15, 40, 90], [90, 50, 99, 99]])


def test_labelme_parts_of_one_person_make_one_box(tmp_path: Path) -> None:
    """labelme-examples' 2011_000003 draws a man's hand apart from his body, with one group_id."""
    shapes = [
        {"label": "person", "group_id": 1, "points": [[10, 10], [30, 60]]},
        {"label": "person", "group_id": 1, "points": [[35, 40], [40, 45]]},
        {"label": "person", "group_id": None, "points": [[60, 10], [80, 60]]},
    ]
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"imageWidth": 100, "imageHeight": 100, "shapes": shapes}))
    np.testing.assert_allclose(labelme_boxes(path), [[10, 10, 40, 60], [60, 10, 80, 60]])


def test_labelme_file_without_shapes_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"imageWidth": 10}')
    with pytest.raises(SceneSetError, match="broken.json"):
        labelme_boxes(path)


def test_committed_definition_splits_by_scene() -> None:
    sources, frames = load_definition(DEFINITION)
    uses = {f.scene: f.use for f in frames}
    with_people = {f.scene for f in frames if f.boxes != []}
    held_out = {s for s, u in uses.items() if u == "held-out"}
    assert held_out & with_people >= {"car-close-up", "outdoor-field"}  # near the camera, and outdoors
    assert uses["street-far"] == "clip-val"  # vtest.avi's own held-out frames are never trained on
    for f in frames:  # only trainable scenes reach the train split
        assert f.split == ("train" if f.use == "trainable" else "val")
        assert f.source in sources and len(f.sha256) == 16
        assert f.teacher_boxes is None or len(f.teacher_boxes) == len(f.boxes)


def _definition(tmp_path: Path, scenes: dict) -> Path:
    path = tmp_path / "def.json"
    path.write_text(
        json.dumps({"sources": {"pkg": {"kind": "deb", "package": "p", "root": "r", "licence": "x"}}, "scenes": scenes})
    )
    return path


@pytest.mark.parametrize(
    ("scenes", "message"),
    [
        (
            {"a": {"use": "sometimes", "frames": [{"source": "pkg", "file": "f.jpg", "sha256": "0", "boxes": []}]}},
            "use 'sometimes'",
        ),
        ({"a": {"use": "held-out", "frames": []}}, "scene 'a' has no frames"),
        (
            {"a": {"use": "held-out", "frames": [{"source": "nope", "file": "f.jpg", "sha256": "0", "boxes": []}]}},
            "unknown source 'nope'",
        ),
        (
            {"a": {"use": "held-out", "frames": [{"source": "pkg", "file": "f.jpg", "sha256": "0", "boxes": []}] * 2}},
            "listed twice",
        ),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(tmp_path: Path, scenes: dict, message: str) -> None:
    with pytest.raises(SceneSetError, match=message):
        load_definition(_definition(tmp_path, scenes))


def test_missing_and_corrupt_media_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SceneSetError, match=r"gone\.jpg: missing .*delete"):
        check_media(tmp_path / "gone.jpg", "0123456789abcdef")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(SceneSetError, match=r"bad\.jpg: sha256 .* \(corrupt, or a new package version\)"):
        check_media(bad, "0123456789abcdef")
    check_media(bad, hashlib.sha256(bad.read_bytes()).hexdigest()[:16])  # the right digest passes
    with pytest.raises(SceneSetError, match=r"bad\.jpg: OpenCV cannot decode"):
        read_frame(bad, None)
    with pytest.raises(SceneSetError, match=r"bad\.jpg: frame 3 cannot be read"):
        read_frame(bad, 3)


def test_video_frames_come_with_their_neighbours(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    if not writer.isOpened():
        pytest.skip("OpenCV here has no MJPG writer to make a test clip")
    for i in range(5):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    image, neighbours = read_frame(path, 2)
    assert abs(int(image.mean()) - 80) <= 3 and len(neighbours) == 2
    assert len(read_frame(path, 4)[1]) == 1  # the last frame has only the one before it


class _Oracle:
    """A pose model that answers each image's labelled keypoints for any box (the image's first pixel
    holds its id): scoring then depends on the boxes alone."""

    def __init__(self, keypoints: dict[int, np.ndarray]) -> None:
        self.keypoints = keypoints

    def predict(self, image: np.ndarray, boxes: np.ndarray):
        from types import SimpleNamespace

        kps = np.repeat(self.keypoints[int(image[0, 0, 0]) // 10][None], len(boxes), axis=0)
        return SimpleNamespace(keypoints=kps, scores=np.ones(kps.shape[:2], np.float32))


class _Boxes:
    def __init__(self, boxes: dict[int, list]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.boxes.get(int(image[0, 0, 0]) // 10, []), np.float32).reshape(-1, 5)


def test_detector_boxes_score_every_held_out_frame_so_a_missed_person_is_a_miss(tmp_path: Path) -> None:
    """Two held-out frames, one person each: boxes on both give AP 100; a detector that finds only
    the first gives AP 50 (COCO's 101-point recall grid), not 100 on the frame it boxed."""
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "annotations").mkdir()
    rng = np.random.default_rng(0)
    images, annotations, truth = [], [], {}
    for image_id in (1, 2):
        name = f"scene-{image_id}"
        cv2.imwrite(str(tmp_path / "images" / "val" / f"{name}.png"), np.full((200, 160, 3), image_id * 10, np.uint8))
        truth[image_id] = rng.uniform([40, 40], [120, 160], (17, 2)).astype(np.float32)
        flat = np.concatenate([truth[image_id], np.full((17, 1), 2)], axis=1).reshape(-1)
        images.append({"id": image_id, "file_name": f"{name}.png", "width": 160, "height": 200})
        annotations.append(
            {
                "id": image_id,
                "image_id": image_id,
                "category_id": 1,
                "bbox": [30, 30, 100, 140],
                "area": 14000,
                "keypoints": flat.tolist(),
                "num_keypoints": 17,
                "iscrowd": 0,
            }
        )
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "annotations" / "person_keypoints_val.json").write_text(json.dumps(coco))
    frames = [{"name": "scene-1"}, {"name": "scene-2"}]
    (tmp_path / "scenes.json").write_text(json.dumps({"scenes": {"scene": {"use": "held-out", "frames": frames}}}))
    box = [30, 30, 130, 170, 0.9]
    rows = score_on_detections(
        {"oracle": _Oracle(truth)}, {"both": _Boxes({1: [box], 2: [box]}), "first": _Boxes({1: [box]})}, tmp_path
    )
    assert rows["oracle"]["both"]["ap"] == 100.0 and rows["oracle"]["both"]["boxes"] == 2
    assert rows["oracle"]["first"]["ap"] == pytest.approx(50.5, abs=0.1) and rows["oracle"]["first"]["boxes"] == 1
