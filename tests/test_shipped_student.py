"""The shipped real-image students (their runtime files bundled as `real-tiny` and `real-tiny-1x32` in
okdhp_edge/runtime/models/, their training-side files in weights/NAME): their files say how they were
made, and they pose real people held out from their training, close to the teacher that labelled their data (the
teacher's answers on those frames are stored in tests/data, so the check runs without it)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from okdhp_edge.boxes import oks_matrix
from okdhp_edge.runtime import Predictor, bundled_models
from okdhp_edge.runtime.result import PoseResult
from okdhp_edge.skeleton import COCO17

REPO = Path(__file__).resolve().parents[1]
STUDENTS = ("real-tiny", "real-tiny-1x32")
HAND_BOXES = REPO / "benchmarks" / "data" / "vtest_people.json"
TEACHER_ANSWERS = Path(__file__).parent / "data" / "real_tiny_teacher.json"
DEV_FRAMES = ("689", "726", "763")  # the clip's held-out part, frames 636-794 (frames 0-605 trained it)


@pytest.mark.parametrize("name", STUDENTS)
def test_weights_are_small_and_say_how_they_were_made(name):
    total = sum(p.stat().st_size for p in (REPO / "weights").rglob("*") if p.is_file())
    assert total <= 20 * 2**20
    spec = json.loads((REPO / "weights" / name / f"{name}.json").read_text())
    weights = REPO / "weights" / name / f"{name}.safetensors"
    prov = spec["provenance"]
    assert re.search(r"\(([0-9a-f]{40})\)$", prov["code"]), "a clean commit, not +dirty"
    assert (REPO / prov["recipe"]).is_file() and "vtest" in prov["data"] and "blazepose-full" in prov["labelling"]
    assert "dev set" in prov["metrics_on"]
    for backend in ("litert", "onnx"):  # the same student in both bundled files
        sidecar = json.loads(Path(f"{bundled_models(backend)[name]}.json").read_text())
        assert sidecar["provenance"] == prov and sidecar["name"] == spec["name"]
        assert sidecar["export"]["precision"] == "int8" and sidecar["export"]["calibration"]["split"] == "train"
        assert sidecar["export"]["source_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


def _hand_boxed(media: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    frames = json.loads(HAND_BOXES.read_text())["frames"]
    capture = cv2.VideoCapture(str(media / "vtest.avi"))
    out, index = [], 0
    wanted = {int(f) for f in DEV_FRAMES}
    while len(out) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            out.append((frame, np.array(frames[str(index)], np.float32)))
        index += 1
    capture.release()
    return out


def _stored_teacher(frames: list[tuple[np.ndarray, np.ndarray]]) -> list[PoseResult]:
    """The teacher's stored answers on the DEV_FRAMES, checked to be for the same boxes."""
    stored = json.loads(TEACHER_ANSWERS.read_text())["frames"]
    answers = []
    for name, (_, boxes) in zip(DEV_FRAMES, frames):
        people = stored[name]
        np.testing.assert_allclose([p["box"] for p in people], boxes, atol=0.06)
        answers.append(
            PoseResult(
                np.array([p["keypoints"] for p in people], np.float32),
                np.array([p["scores"] for p in people], np.float32),
                boxes,
                COCO17.keypoints,
                COCO17.limbs,
            )
        )
    return answers


@pytest.mark.parametrize("name", STUDENTS)
@pytest.mark.parametrize("backend", ["litert", "onnx"])
@pytest.mark.parametrize("teacher_source", ["stored", "live"])
def test_shipped_student_poses_held_out_real_people_like_its_teacher(media, teacher_source, backend, name):
    """The int8 student (each bundled file) through the runtime on 22 held-out people: OKS against
    the teacher >= 0.6 and keypoints on the boxed person. Broken weights, a broken export or a
    broken runtime fail it."""
    frames = _hand_boxed(media)
    if teacher_source == "stored":
        answers = _stored_teacher(frames)
    else:
        from okdhp_edge.runtime import BackendUnavailableError, BlazePoseLandmarker, FetchError

        try:
            teacher = BlazePoseLandmarker.fetch("full", num_threads=2)
        except (FetchError, BackendUnavailableError) as err:  # not cached and no package index, or no LiteRT
            pytest.skip(f"BlazePose Full (the teacher) not available: {err}")
        answers = [teacher.predict(frame, boxes) for frame, boxes in frames]
    student = Predictor(name, backend=backend, num_threads=2)
    similarities = []
    for (frame, boxes), truth in zip(frames, answers):
        mine = student.predict(frame, boxes)
        sure = truth.scores >= 0.5  # the teacher's confident keypoints, as the labeller keeps them
        areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        for i in range(len(boxes)):
            if sure[i].sum() >= 8:
                similarities.append(
                    oks_matrix(
                        mine.keypoints[i : i + 1],
                        truth.keypoints[i : i + 1],
                        areas[i : i + 1],
                        np.asarray(COCO17.sigmas),
                        sure[i : i + 1],
                    )[0, 0]
                )
        grown = boxes + np.array([-0.2, -0.2, 0.2, 0.2]) * np.tile(boxes[:, 2:] - boxes[:, :2], 2)
        inside = (mine.keypoints >= grown[:, None, :2]) & (mine.keypoints <= grown[:, None, 2:])
        assert inside.all(axis=-1).mean() > 0.95, "keypoints stay on the boxed person"
    assert len(similarities) >= 10
    assert float(np.mean(similarities)) >= 0.6, similarities
