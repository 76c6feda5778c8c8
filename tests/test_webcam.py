"""Demos: the webcam example runs headless on a video file; bad sources are messages, not tracebacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_artifacts import export_onnx, make_student, person_frame, write_video

REPO = Path(__file__).resolve().parents[1]
WEBCAM = REPO / "examples" / "webcam.py"
PREDICT_IMAGE = REPO / "examples" / "predict_image.py"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("webcam-model")
    return export_onnx(make_student(out), out)


def run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    ok, frame = capture.read()
    while ok:
        frames.append(frame)
        ok, frame = capture.read()
    capture.release()
    return frames


def test_webcam_runs_headless_on_a_video_and_writes_annotations(model, tmp_path):
    video = write_video(tmp_path / "walk.mp4", frames=10)
    out = tmp_path / "out" / "annotated.mp4"
    proc = run(
        WEBCAM,
        "--model",
        str(model),
        "--detector",
        "none",
        "--source",
        str(video),
        "--save",
        str(out),
        "--no-show",
        "--threads",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "10 frames" in proc.stdout and str(out) in proc.stdout
    original, annotated = read_frames(video), read_frames(out)
    assert len(annotated) == len(original) == 10
    assert annotated[0].shape == original[0].shape
    # the FPS overlay is drawn in the top-left corner of every frame
    for before, after in zip(original, annotated):
        corner = np.abs(after[:30, :120].astype(int) - before[:30, :120].astype(int))
        assert corner.mean() > 10


def test_webcam_with_a_detector_tracks_people(model, tmp_path):
    from test_detector import export_tiny_yolo

    detector = export_tiny_yolo(tmp_path / "tiny-yolo.onnx")
    video = write_video(tmp_path / "walk.mp4", frames=6)
    out = tmp_path / "tracked.avi"
    for extra in ([], ["--no-smooth", "--detect-every", "1", "--max-people", "2"]):
        proc = run(
            WEBCAM,
            "--model",
            str(model),
            "--detector",
            str(detector),
            "--source",
            str(video),
            "--save",
            str(out),
            "--no-show",
            "--threads",
            "1",
            "--min-score",
            "-1",
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("6 frames") and len(read_frames(out)) == 6
    missing = run(
        WEBCAM, "--model", str(model), "--detector", str(tmp_path / "nope.onnx"), "--source", str(video), "--no-show"
    )
    assert missing.returncode == 2
    assert "nope.onnx: model file not found" in missing.stderr and "Traceback" not in missing.stderr


def test_webcam_zoom_out_searches_near_people_too(model, media):
    clip, common = media / "vtest.avi", ["--detector", "okdhp-person", "--max-frames", "3", "--no-show"]
    near = run(WEBCAM, "--model", str(model), *common, "--zoom-out", "4", "--source", str(clip))
    assert near.returncode == 0 and near.stdout.startswith("3 frames"), near.stderr
    bad = run(WEBCAM, "--model", str(model), *common, "--zoom-out", "0.5", "--source", str(clip))
    assert bad.returncode == 2 and "zoom_out=0.5: needs a number > 1" in bad.stderr, bad.stderr


def test_webcam_default_detector_on_real_footage(model, media, tmp_path):
    clip = media / "vtest.avi"
    out = tmp_path / "vtest-out.avi"
    proc = run(
        WEBCAM,
        "--model",
        str(model),
        "--source",
        str(clip),
        "--max-frames",
        "4",
        "--save",
        str(out),
        "--no-show",
        "--threads",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("4 frames") and len(read_frames(out)) == 4
    bad = run(
        WEBCAM, "--model", str(model), "--tiles", "3", "--source", str(clip), "--no-show"
    )  # the default: okdhp-any
    assert bad.returncode == 2 and "tiling is for MediaPipe's pose detector; okdhp-any.onnx" in bad.stderr


def test_webcam_max_frames(model, tmp_path):
    video = write_video(tmp_path / "walk.mp4", frames=8)
    snapshot = tmp_path / "last.jpg"
    proc = run(
        WEBCAM,
        "--model",
        str(model),
        "--detector",
        "none",
        "--source",
        str(video),
        "--no-show",
        "--max-frames",
        "3",
        "--snapshot",
        str(snapshot),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("3 frames")
    saved = cv2.imread(str(snapshot))
    assert saved is not None and saved.shape[:2] == cv2.VideoCapture(str(video)).read()[1].shape[:2]
    bad = run(
        WEBCAM,
        "--model",
        str(model),
        "--detector",
        "none",
        "--source",
        str(video),
        "--no-show",
        "--max-frames",
        "1",
        "--snapshot",
        str(tmp_path / "last.gif"),
    )
    assert bad.returncode == 2 and "--snapshot" in bad.stderr


def test_webcam_runs_the_shipped_student_by_default(tmp_path):
    video = write_video(tmp_path / "walk.mp4", frames=4)
    proc = run(WEBCAM, "--detector", "none", "--source", str(video), "--no-show", "--max-frames", "2", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("2 frames") and "with real-tiny-int8.tflite on ai-edge-litert" in proc.stdout
    args = ("--detector", "none", "--source", str(video), "--no-show", "--max-frames", "2")
    onnx = run(WEBCAM, *args, "--backend", "onnx")
    assert onnx.returncode == 0 and "with real-tiny-int8.onnx on onnxruntime" in onnx.stdout, onnx.stderr


@pytest.mark.parametrize(
    "source, match",
    [
        ("missing.mp4", "video file not found: missing.mp4"),
        ("missing.jpg", "image file not found: missing.jpg"),
        ("missing", "file not found: missing (--source takes a camera index, a video file or an image)"),
        ("7", "cannot open camera 7"),
    ],
)
def test_webcam_bad_source_is_a_message(model, source, match):
    proc = run(WEBCAM, "--model", str(model), "--detector", "none", "--source", source, "--no-show")
    assert proc.returncode == 2
    assert match in proc.stderr and "Traceback" not in proc.stderr


def test_webcam_unreadable_video_is_a_message(model, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_text("this is not a video\n" * 50)
    proc = run(WEBCAM, "--model", str(model), "--detector", "none", "--source", str(junk), "--no-show")
    assert proc.returncode == 2
    assert "junk.mp4" in proc.stderr and "Traceback" not in proc.stderr


def test_webcam_bad_model_is_a_message(tmp_path):
    video = write_video(tmp_path / "walk.mp4", frames=2)
    proc = run(
        WEBCAM, "--model", str(tmp_path / "nope.onnx"), "--detector", "none", "--source", str(video), "--no-show"
    )
    assert proc.returncode == 2
    assert "nope.onnx: model file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_webcam_bad_model_name_and_tracker_settings_are_messages(tmp_path):
    video = write_video(tmp_path / "walk.mp4", frames=2)
    proc = run(WEBCAM, "--model", "real-tinny", "--detector", "none", "--source", str(video), "--no-show")
    assert (
        proc.returncode == 2 and "unknown pose model name 'real-tinny': bundled models are 'real-tiny'" in proc.stderr
    )
    settings = tmp_path / "tracker.yaml"
    settings.write_text("max_people: 2\nconfirn: 2\n")
    proc = run(WEBCAM, "--config", str(settings), "--detector", "none", "--source", str(video), "--no-show")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{settings}: unknown TrackerConfig field 'confirn' (did you mean 'confirm'?)" in proc.stderr
    settings.write_text("max_people: 2\nsmoothing: false\n")
    proc = run(
        WEBCAM, "--config", str(settings), "--detector", "none", "--source", str(video), "--no-show", "--threads", "1"
    )
    assert proc.returncode == 0, proc.stderr


def gui_available() -> bool:
    found = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(found) and found.group(1) != "NONE"


@pytest.mark.skipif(
    gui_available(), reason="this OpenCV has a GUI; the missing-GUI message needs opencv-python-headless"
)
def test_webcam_without_gui_suggests_the_demo_extra(model, tmp_path):
    video = write_video(tmp_path / "walk.mp4", frames=2)
    proc = run(WEBCAM, "--model", str(model), "--detector", "none", "--source", str(video))
    assert proc.returncode == 2
    assert "okdhp-edge[demo]" in proc.stderr and "--no-show" in proc.stderr and "Traceback" not in proc.stderr


def test_predict_image_example(model, tmp_path):
    image = tmp_path / "person.png"
    cv2.imwrite(str(image), person_frame())
    out, js = tmp_path / "pose.jpg", tmp_path / "pose.json"
    proc = run(
        PREDICT_IMAGE,
        "--model",
        str(model),
        "--image",
        str(image),
        "--box",
        "110,20,210,230",
        "--box",
        "10,40,100,200",
        "--out",
        str(out),
        "--json",
        str(js),
        "--min-score",
        "-1",
    )
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(out)).shape == (240, 320, 3)
    people = json.loads(js.read_text())["people"]
    assert len(people) == 2 and len(people[0]["keypoints"]) == 17
    missing = run(PREDICT_IMAGE, "--model", str(model), "--image", str(tmp_path / "none.jpg"))
    assert missing.returncode == 2 and "none.jpg: not found" in missing.stderr and "Traceback" not in missing.stderr
    bad_box = run(PREDICT_IMAGE, "--model", str(model), "--image", str(image), "--box", "500,500,600,600")
    assert bad_box.returncode == 2 and "outside" in bad_box.stderr and "Traceback" not in bad_box.stderr
