"""`python -m okdhp_edge.data.rebox`: a labelled set whose people also carry a detector's boxes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from okdhp_edge.boxes import iou_matrix
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.rebox import main, rebox
from okdhp_edge.runtime import Detector

MESSI = [68, 60, 460, 335]  # the footballer in opencv-doc's messi5.jpg, checked by eye (real_scenes.json)


def labelled_set(root: Path, media: Path) -> Path:
    """The labeller's layout with one person on messi5.jpg: a keypoint-extent box and 5 keypoints."""
    (root / "images" / "train").mkdir(parents=True)
    shutil.copy(media / "messi5.jpg", root / "images" / "train" / "messi.jpg")
    keypoints = np.zeros((17, 3))
    keypoints[:5] = [[300, 110, 2], [305, 105, 2], [295, 105, 2], [312, 108, 2], [290, 108, 2]]  # his head
    annotation = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [285, 100, 30, 15], "area": 450}
    annotation |= {"keypoints": keypoints.ravel().tolist(), "num_keypoints": 5}
    image = {"id": 1, "file_name": "messi.jpg", "width": 548, "height": 342}
    (root / "annotations").mkdir()
    for split, anns in (("train", [annotation]), ("val", [])):
        coco = {"images": [image] if anns else [], "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(coco))
    return root


def test_the_detector_s_box_joins_the_labelled_one(media, tmp_path):
    src = labelled_set(tmp_path / "src", media)
    main([str(src), "--out", str(tmp_path / "out"), "--threads", "1"])
    train = json.loads((tmp_path / "out" / "annotations" / "person_keypoints_train.json").read_text())
    first, second = train["annotations"]
    assert first["bbox"] == [285, 100, 30, 15]  # the labelled box stays
    x, y, w, h = second["bbox"]
    found = Detector("okdhp-any", num_threads=1).detect(cv2.imread(str(media / "messi5.jpg")))
    assert np.abs(found[:, :4] - [x, y, x + w, y + h]).max(1).min() < 0.01  # its box, on him (his head in it)
    assert iou_matrix(np.array([[x, y, x + w, y + h]], np.float32), np.array([MESSI], np.float32))[0, 0] >= 0.3
    assert second["keypoints"] == first["keypoints"] and second["id"] == 2 and second["image_id"] == 1
    assert (tmp_path / "out" / "images" / "train" / "messi.jpg").is_file()  # linked, not copied
    assert json.loads((tmp_path / "out" / "annotations" / "person_keypoints_val.json").read_text())["images"] == []
    assert json.loads((tmp_path / "out" / "rebox.json").read_text())["added"] == 1
    main([str(src), "--out", str(tmp_path / "out"), "--threads", "1"])  # a rerun rewrites its own output
    assert json.loads((tmp_path / "out" / "annotations" / "person_keypoints_train.json").read_text()) == train
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="other: holds other files"):
        rebox(src, tmp_path / "other", Boxes())


class Boxes:
    """A detector that finds the given boxes: the matching rule is checked, not a model."""

    def __init__(self, *boxes: list[float]) -> None:
        self.boxes = np.array([[*b, 0.9] for b in boxes], np.float32).reshape(-1, 5)

    def detect(self, image: np.ndarray) -> np.ndarray:
        return self.boxes


def test_a_box_holding_under_half_of_the_keypoints_is_someone_else(media, tmp_path):
    src = labelled_set(tmp_path / "src", media)
    # two boxes: one holds 2 of the 5 head keypoints (x >= 303), the other none: nobody is added
    assert rebox(src, tmp_path / "a", Boxes([303, 90, 340, 130], [0, 0, 50, 50])) == {"people": 1, "added": 0}
    # one holds all 5: it is added even where another box holds 3 of them
    found = rebox(src, tmp_path / "b", Boxes([297, 90, 340, 130], [280, 95, 320, 115]))
    train = json.loads((tmp_path / "b" / "annotations" / "person_keypoints_train.json").read_text())
    assert found == {"people": 1, "added": 1} and train["annotations"][1]["bbox"] == [280.0, 95.0, 40.0, 20.0]


def test_a_folder_without_labels_is_refused_by_name(tmp_path):
    missing = r"frames: no annotations/person_keypoints_train\.json.*okdhp_edge\.data\.label"
    with pytest.raises(DatasetError, match=missing):
        rebox(tmp_path / "frames", tmp_path / "out", Boxes())
    assert not (tmp_path / "out").exists()
