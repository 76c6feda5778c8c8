"""The BlazePose landmark teacher: its 33 -> COCO-17 mapping and crop geometry on synthetic
inputs, and the real model (fetched from the mediapipe wheel) on a real photo (Debian's
opencv-doc media). The real-model tests skip, with the reason, where either cannot be had."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from okdhp_edge.runtime.errors import BackendUnavailableError, FetchError, ModelFileError
from okdhp_edge.runtime.landmarker import (
    BlazePoseLandmarker,
    LandmarkerConfig,
    refine_from_heatmap,
    roi_affine,
    roi_from_auxiliary,
    roi_to_image,
    square_roi,
    to_coco17,
)
from okdhp_edge.skeleton import COCO17

REPO = Path(__file__).resolve().parents[1]

# BlazePose's published 33-landmark topology, in model output order
BLAZEPOSE_NAMES = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)


def test_mapping_picks_the_coco_keypoints_by_name():
    points = np.stack([np.arange(33), 100 + np.arange(33)], 1).astype(np.float32)[None]  # point i = (i, 100 + i)
    scores = np.linspace(0, 1, 33)[None]
    coco_points, coco_scores = to_coco17(points, scores)
    assert coco_points.shape == (1, 17, 2) and coco_scores.shape == (1, 17)
    picked = [BLAZEPOSE_NAMES[int(i)] for i in coco_points[0, :, 0]]
    assert picked == list(COCO17.keypoints)
    np.testing.assert_allclose(coco_points[0, :, 1], coco_points[0, :, 0] + 100)
    np.testing.assert_allclose(coco_scores[0], scores[0, coco_points[0, :, 0].astype(int)])


def test_square_roi_and_auxiliary_roi():
    roi = square_roi(np.array([[10, 20, 50, 120]]), 1.25)
    np.testing.assert_allclose(roi, [[30, 70, 125]])  # centred, 1.25 x the long side, square
    np.testing.assert_allclose(roi_from_auxiliary(np.array([[100, 200], [100, 120]]), 1.25), [100, 200, 200])


@pytest.mark.parametrize("roi", [(160.0, 90.0, 120.0), (30.0, 200.0, 300.0), (250.3, 60.7, 77.0)])
def test_crop_and_back_are_inverse(roi):
    """A dot drawn in the image is found in the 256x256 crop, and mapping the crop position back
    (model outputs are continuous: crop pixel j covers [j, j + 1]) lands on the dot."""
    image = np.zeros((240, 320, 3), np.uint8)
    dot = np.array([roi[0] + 0.2 * roi[2], roi[1] - 0.15 * roi[2]])
    cv2.circle(image, tuple(np.round(dot * 16).astype(int)), 3 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    assert image.any()
    crop = cv2.warpAffine(image, roi_affine(np.array(roi)), (256, 256), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    weight = crop[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:256, :256]
    found = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    back = roi_to_image(found + 0.5, np.array(roi))
    assert np.abs(back - dot).max() < 0.1 * max(1.0, roi[2] / 256)
    if roi[0] - roi[2] / 2 < 0:  # outside the image is black, like MediaPipe's zero border
        assert crop[:, 0].max() == 0


def test_heatmap_refinement_moves_confident_landmarks_to_the_local_mean():
    """Heatmap cell (row, col) is input pixels [4 col, 4 col + 4) on a 64x64 map; landmark 0 sits
    a cell from a sharp symmetric confident blob and moves onto its centre cell index; landmark 1's
    heatmap never reaches the confidence bar and stays; landmark 2 is off the map and stays."""
    logits = np.full((64, 64, 3), -20.0)
    rows, cols = np.mgrid[:64, :64]
    logits[..., 0] = np.maximum(6.0 - 4.0 * ((rows - 20) ** 2 + (cols - 30) ** 2), -20.0)
    logits[..., 1] = -1.0  # sigmoid 0.27 everywhere
    points = np.array([[31 * 4 + 1.0, 21 * 4 + 1.0], [50.0, 60.0], [-9.0, 100.0]])
    refined = refine_from_heatmap(points, logits)
    np.testing.assert_allclose(refined[0], [30 * 4, 20 * 4], atol=0.05)
    np.testing.assert_allclose(refined[1:], points[1:])


@pytest.fixture(scope="module")
def teacher() -> BlazePoseLandmarker:
    try:
        return BlazePoseLandmarker.fetch("full", num_threads=2)
    except (FetchError, BackendUnavailableError) as err:  # not cached and no package index, or no LiteRT: say why
        pytest.skip(f"BlazePose Full not available: {err}")


def test_other_tflite_models_are_refused_with_the_fix(teacher):
    from okdhp_edge.runtime.detectors.fetch import fetch_pose_detector

    with pytest.raises(ModelFileError, match="not a MediaPipe BlazePose landmark model.*fetch"):
        BlazePoseLandmarker(fetch_pose_detector())


def test_lite_and_heavy_come_from_the_npm_package_and_find_the_person(media):
    """The mediapipe wheel lacks them; `npm pack @mediapipe/pose` has both (digests checked)."""
    from okdhp_edge.runtime.detectors.fetch import NPM_MODELS, model_path

    image = cv2.imread(str(media / "basketball1.png"))
    box = np.array([35, 80, 160, 475], np.float32)
    for variant in ("lite", "heavy"):
        try:
            model = BlazePoseLandmarker.fetch(variant, num_threads=2)
        except (FetchError, BackendUnavailableError) as err:  # no npm, no registry, or no LiteRT: say which
            pytest.skip(f"BlazePose {variant} not available: {err}")
        key = f"pose_landmark_{variant}"
        assert model.model_path == model_path(key) and NPM_MODELS[key].member.endswith(f"{key}.tflite")
        result = model.predict(image, box)
        assert result.scores.mean() > 0.6
        assert ((result.keypoints[0] >= box[:2] - 15) & (result.keypoints[0] <= box[2:] + 15)).all(), variant


def test_keypoints_land_on_a_real_person(teacher, media):
    """basketball1.png: the man on the left, facing the camera, boxed by eye (x 35-160, y 80-475)."""
    image = cv2.imread(str(media / "basketball1.png"))
    box = np.array([35, 80, 160, 475], np.float32)
    result = teacher.predict(image, box)
    assert result.keypoints.shape == (1, 17, 2) and result.keypoint_names == COCO17.keypoints
    k = dict(zip(COCO17.keypoints, result.keypoints[0]))
    assert result.scores.mean() > 0.7
    x1, y1, x2, y2 = box
    assert ((result.keypoints[0] >= [x1 - 15, y1 - 15]) & (result.keypoints[0] <= [x2 + 15, y2 + 15])).all()
    for top, below in [
        ("nose", "left_shoulder"),
        ("left_shoulder", "left_hip"),
        ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"),
        ("right_hip", "right_knee"),
        ("right_knee", "right_ankle"),
    ]:
        assert k[top][1] < k[below][1], (top, below)
    for part in ("shoulder", "hip"):  # facing the camera: his left is on the image's right
        assert k[f"left_{part}"][0] > k[f"right_{part}"][0], part
    # the same call with the image given as RGB is the same answer
    again = teacher.predict(np.ascontiguousarray(image[..., ::-1]), box, rgb=True)
    np.testing.assert_allclose(again.keypoints, result.keypoints, atol=1e-3)


def test_refinement_and_presence_gate(teacher, media):
    image = cv2.imread(str(media / "basketball1.png"))
    box = np.array([35, 80, 160, 475], np.float32)
    plain = BlazePoseLandmarker(teacher.model_path, 1, LandmarkerConfig(refine_roi=False)).predict(image, box)
    refined = teacher.predict(image, box)
    # both passes find the same person: keypoints within a few percent of the box height
    assert np.median(np.linalg.norm(plain.keypoints - refined.keypoints, axis=-1)) < 0.05 * (box[3] - box[1])
    blank = np.full((256, 256, 3), 127, np.uint8)  # no person: the pose-presence score gates every keypoint
    assert (teacher.predict(blank).scores == 0).all()
    assert (teacher.predict(image, box).scores > 0).all()


def test_a_person_the_frame_cuts_gets_his_shoulders_from_a_region_past_the_edge(teacher, media):
    """basketball1.png's left man cut just below his shoulders, as a webcam frames a person near
    it. Given only the visible box, BlazePose squeezes a whole body into it and puts the shoulders
    on the jaw (about 40 px off); given the labeller's region reaching past the frame (kept
    unclipped: the warp pads it), they stay where the whole-body view has them."""
    from okdhp_edge.data.label import LabelConfig, teacher_regions

    image = cv2.imread(str(media / "basketball1.png"))
    whole = teacher.predict(image, np.array([35, 80, 160, 475], np.float32)).keypoints[0, 5:7]
    cut = int(whole[:, 1].max()) + 25
    box = np.array([[35, 80, 160, cut - 1]], np.float32)
    region = teacher_regions(box, cut, LabelConfig().cut_body_widths)
    assert region[0, 3] > 2 * cut  # 3 box widths tall, past the frame
    result = teacher.predict(np.ascontiguousarray(image[:cut]), region)
    assert np.linalg.norm(result.keypoints[0, 5:7] - whole, axis=1).max() < 20
    np.testing.assert_array_equal(result.boxes, box)  # the answer's box is clipped to the frame
    visible = teacher.predict(np.ascontiguousarray(image[:cut]), box).keypoints[0, 5:7]
    assert np.linalg.norm(visible - whole, axis=1).max() > 25


def test_landmarker_drives_the_tracker_like_a_predictor(teacher, media):
    """PoseTracker calls predict(frame, boxes, rgb, flip_test), as on a Predictor."""
    from okdhp_edge.runtime import PoseTracker

    image = cv2.imread(str(media / "basketball1.png"))
    tracker = PoseTracker(teacher, lambda frame: np.array([[35, 80, 160, 475, 0.9]], np.float32))
    for timestamp in (0.0, 0.1):
        (person,) = tracker.update(image, timestamp)
        assert person.track_id == 1 and ((person.box[:2] >= [15, 40]) & (person.box[2:] <= [180, 500])).all(), (
            person.box
        )
    with pytest.raises(ValueError, match="no flip test"):
        teacher.predict(image, np.array([35, 80, 160, 475], np.float32), False, True)


def test_landmarker_imports_no_torch_and_no_training_code():
    script = (
        "import sys\nfrom okdhp_edge.runtime import BlazePoseLandmarker\n"
        "print('LEAKED', sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'okdhp_edge.models', "
        "'okdhp_edge.train', 'okdhp_edge.data'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "LEAKED []" in proc.stdout, proc.stdout
