"""The detectors a user gets without bringing one, on real footage (Debian's opencv-doc media):
the project's own detectors (okdhp-person and okdhp-any, shipped in the package), MediaPipe's pose
detector (fetched from the package index), the default (okdhp-any, ONNX Runtime alone) and the
former default that merges okdhp-person and MediaPipe's.
Skipped, with the reason, where the footage or MediaPipe's file cannot be had."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from okdhp_edge.boxes import iou_matrix
from okdhp_edge.runtime import BackendUnavailableError, Detector, FetchError
from okdhp_edge.runtime.detectors.blazepose import ssd_anchors, tile_grid

REPO = Path(__file__).resolve().parents[1]


def test_anchor_layout_and_tiles():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    np.testing.assert_allclose(anchors[:2], [[0.5 / 28, 0.5 / 28]] * 2)  # 2 anchors per cell, stride 8 first
    np.testing.assert_allclose(anchors[1568:1570], [[0.5 / 14, 0.5 / 14]] * 2)  # then stride 16
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])  # three stride-32 layers merged: 6 per cell
    assert tile_grid(768, 576, 1) == []
    tiles = tile_grid(768, 576, 4)
    assert len(tiles) == 12
    covered = np.zeros((576, 768), bool)
    for x, y, w, h in tiles:
        covered[y : y + h, x : x + w] = True
    assert covered.all()


def mediapipe(**kwargs) -> Detector:
    try:
        return Detector("mediapipe", num_threads=2, **kwargs)
    except (FetchError, BackendUnavailableError) as err:  # not cached and no package index, or no LiteRT: say why
        pytest.skip(f"MediaPipe's detector not available: {err}")


def frame_615(media: Path) -> tuple[np.ndarray, np.ndarray]:
    """vtest frame 615 (after the frames the shipped detector trained on) and its hand-checked boxes."""
    labels = json.loads((REPO / "benchmarks" / "data" / "vtest_people.json").read_text())["frames"]
    capture = cv2.VideoCapture(str(media / "vtest.avi"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 615)
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (576, 768, 3)
    return frame, np.array(labels["615"], np.float32)


def found_people(truth: np.ndarray, boxes: np.ndarray) -> int:
    return int((iou_matrix(truth, boxes[:, :4]).max(axis=1, initial=0) >= 0.5).sum())


def test_mediapipe_finds_a_near_person(media):
    detector = mediapipe()
    found = detector.detect(cv2.imread(str(media / "messi5.jpg")))
    assert len(found) == 1 and found[0, 4] >= 0.5
    x1, y1, x2, y2 = found[0, :4]
    # Messi (boxed by eye) spans x 150-460, y 60-335; the box sits on his body, head to feet
    assert 180 <= (x1 + x2) / 2 <= 340 and y1 < 120 and y2 > 300
    assert detector.family.tiles == 1


def test_mediapipe_tiles_find_small_far_people_on_vtest(media):
    frame, truth = frame_615(media)
    recall = {
        "whole": found_people(truth, mediapipe().detect(frame)),
        "tiled": found_people(truth, mediapipe(tiles=6).detect(frame)),
    }
    assert recall["whole"] <= 1 and recall["tiled"] >= 4, recall  # of 7 people about 70-150 px tall


def test_shipped_detector_finds_small_far_people_on_vtest(media):
    detector = Detector("okdhp-person", num_threads=2)
    assert detector.family.layout == "v8"
    frame, truth = frame_615(media)
    assert found_people(truth, detector.detect(frame)) >= 5  # of 7, on the whole frame in one pass


def test_any_scene_detector_finds_far_walkers_and_near_players_on_onnx_alone(media):
    # okdhp-any (shipped, ONNX Runtime only): vtest frame 615 lies past the frames it trained on; in
    # basketball1.png (two players near the camera) okdhp-person finds nobody
    detector = Detector("okdhp-any", num_threads=2)
    frame, truth = frame_615(media)
    assert found_people(truth, detector.detect(frame)) >= 6  # of 7
    players = detector.detect(cv2.imread(str(media / "basketball1.png")))
    assert len(Detector("okdhp-person", num_threads=2).detect(cv2.imread(str(media / "basketball1.png")))) == 0
    assert len(players) >= 2 and (players[:2, 3] - players[:2, 1]).min() > 250  # two near, tall people


def test_the_default_is_okdhp_any_and_needs_nothing_fetched(media, monkeypatch):
    # no LiteRT and no package index (Python 3.8 on JetPack 5, an offline device): the default still runs
    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setenv("OKDHP_EDGE_CACHE", str(Path("/nonexistent-okdhp-cache")))
    detector = Detector(num_threads=2)
    assert [p.path.name for p in detector.parts] == ["okdhp-any.onnx"] and detector.config.iou_threshold == 0.5
    frame, truth = frame_615(media)
    assert found_people(truth, detector.detect(frame)) >= 6  # of 7
    assert len(detector.detect(cv2.imread(str(media / "basketball1.png")))) >= 2  # two near players


def test_okdhp_person_and_mediapipe_merge_as_one_detector(media):
    mediapipe()  # skips when MediaPipe's file cannot be fetched
    detector = Detector(["okdhp-person", "mediapipe"], num_threads=2)
    assert [p.path.name for p in detector.parts] == ["okdhp-person.onnx", "mediapipe-pose_detection.tflite"]
    frame, truth = frame_615(media)
    assert found_people(truth, detector.detect(frame)) >= 5
    messi = detector.detect(cv2.imread(str(media / "messi5.jpg")))
    assert len(messi) >= 1 and messi[0, 4] >= 0.5
