"""The one pipeline object apps use: bundled pose students by name (inside the wheel), `PoseTracker()`
with no arguments on real frames, its people (detector score, track state, `to_dict`), drawing at
the tracker's threshold, and tracker settings from a dict or a YAML file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_tracker import FRAMES, H, ScriptedDetector, ScriptedPoseNet, W, scene

from okdhp_edge.runtime import (
    ModelFileError,
    PoseTracker,
    Predictor,
    TrackerConfig,
    bundled_models,
    draw_pose,
    draw_tracks,
    tracks_result,
)
from okdhp_edge.runtime.tracker import AUTO_PRIOR, TRACK_STATES

REPO = Path(__file__).resolve().parents[1]
BLANK = np.zeros((H, W, 3), np.uint8)


def vtest_frames(media: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(media / "vtest.avi"))
    frames = [capture.read()[1] for _ in range(count)]
    capture.release()
    assert all(f is not None for f in frames)
    return frames


def default_tracker(**kwargs) -> PoseTracker:
    """PoseTracker() as an app makes it: the bundled student and the default detector, both in the package."""
    return PoseTracker(**kwargs)


# -- bundled students by name ---------------------------------------------------------------------


def test_bundled_students_open_by_name_and_unknown_names_list_them():
    models = bundled_models()
    assert "real-tiny" in models
    for name, path in models.items():
        assert path.is_file() and Path(f"{path}.json").is_file(), name
        assert path.stat().st_size < 2 * 2**20, "package data stays small"
        predictor = Predictor(name, num_threads=1)
        assert predictor.model_path == path and predictor.skeleton.num_keypoints == 17
    assert Predictor(num_threads=1).model_path == models["real-tiny"]  # the default student
    # each ships as .tflite (preferred where LiteRT is installed: faster on the CPU) and .onnx
    assert {p.suffix for p in bundled_models("litert").values()} == {".tflite"}
    assert {p.suffix for p in bundled_models("onnx").values()} == {".onnx"}
    assert models == bundled_models("litert")  # LiteRT is installed here
    assert Predictor("real-tiny", backend="ort", num_threads=1).model_path == bundled_models("onnx")["real-tiny"]
    with pytest.raises(ModelFileError, match=r"'real-tiny' ships as .tflite and .onnx files, which backend 'tensorrt'"):
        Predictor("real-tiny", backend="tensorrt")
    assert Predictor(Path("real-tiny"), num_threads=1).model_path == models["real-tiny"]
    with pytest.raises(
        ModelFileError,
        match=r"unknown pose model name 'real-tinny': bundled models are 'real-tiny', 'real-tiny-1x32'; a path is also",
    ):
        Predictor("real-tinny")
    with pytest.raises(ModelFileError, match="nope.onnx: model file not found"):
        Predictor("nope.onnx")  # a file name is a path, not a name


def test_the_wheel_carries_the_bundled_models_and_runs_them_without_a_checkout(tmp_path):
    """Build the wheel from a copy of the sources (no network: --no-deps, the venv's build backend),
    check that the pose students and the shipped detectors are inside it, then install it on its own
    and run a bundled student and each shipped detector from it, outside the repository, with LiteRT
    unimportable (ONNX Runtime alone)."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "okdhp_edge", src / "okdhp_edge", ignore=ignore)
    for name in ("pyproject.toml", "README.md", *(p.name for p in REPO.glob("LICEN[CS]E*"))):
        shutil.copy(REPO / name, src / name)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(
        [*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next((tmp_path / "dist").glob("okdhp_edge-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    for path in [*bundled_models("litert").values(), *bundled_models("onnx").values()]:
        member = path.relative_to(REPO).as_posix()
        assert sizes.get(member) == path.stat().st_size and f"{member}.json" in sizes, member
    assert {f"okdhp_edge/runtime/detectors/{name}.onnx" for name in ("okdhp-person", "okdhp-any")} <= set(sizes)
    assert "okdhp_edge/runtime/configs/tracker.yaml" in sizes  # the default tracker settings, to copy
    assert wheel.stat().st_size < 4 * 2**20, "the wheel stays small"

    site = tmp_path / "site"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    script = (
        "import sys\n"
        "sys.modules['ai_edge_litert'] = sys.modules['tflite_runtime'] = None  # ONNX Runtime only, as on JetPack 5\n"
        "import numpy as np, okdhp_edge\n"
        "from okdhp_edge.runtime import PoseTracker, Predictor, bundled_models\n"
        f"assert okdhp_edge.__file__.startswith({str(site)!r}), okdhp_edge.__file__\n"
        "for name, path in bundled_models().items():\n"
        "    assert path.suffix == '.onnx', path  # without LiteRT a name opens the ONNX file\n"
        "    assert Predictor(name, num_threads=1).predict(np.zeros((240, 320, 3), np.uint8)).keypoints.shape == (1, "
        "17, 2)\n"
        "for name in ('default', 'okdhp-person', 'okdhp-any'):  # PoseTracker() as the README's Run section has it\n"
        "    tracker = PoseTracker() if name == 'default' else PoseTracker(detector=name)\n"
        "    print('PEOPLE', len(tracker(np.zeros((240, 320, 3), np.uint8))))\n"
    )
    # -S: no .pth files, so the repository's editable install cannot answer `import okdhp_edge`
    path = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    ran = subprocess.run(
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": path, "OKDHP_EDGE_CACHE": str(tmp_path / "empty-cache")},  # nothing fetched
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.count("PEOPLE 0") == 3, ran.stdout
    assert not (tmp_path / "empty-cache").exists()


# -- PoseTracker() on real frames -----------------------------------------------------------------


def test_the_default_tracker_follows_real_walkers_called_on_each_frame(media):
    """PoseTracker() runs the bundled student and the default detector; tracker(frame) and
    tracker.update(frame) give the same people, with detector scores on detection frames only."""
    frames = vtest_frames(media, 6)
    called, updated = default_tracker(), default_tracker()
    assert called.predictor.model_path == bundled_models()["real-tiny"]
    assert [Path(p.path).name for p in called.detector.parts] == ["okdhp-any.onnx"]
    for index, frame in enumerate(frames):
        people = called(frame)
        same = updated.update(frame)
        assert [p.track_id for p in people] == [p.track_id for p in same]
        for mine, theirs in zip(people, same):
            np.testing.assert_array_equal(mine.keypoints, theirs.keypoints)
        assert len(people) >= 3, "vtest's first frames hold several walkers"
        for person in people:
            assert person.state == "confirmed" and person.keypoints.shape == (17, 2)
            reach = 0.25 * (person.box[3] - person.box[1])  # smoothed keypoints lag a swinging arm a little
            grown = person.box + [-reach, -reach, reach, reach]
            inside = (person.keypoints >= grown[:2]) & (person.keypoints <= grown[2:])
            assert inside.all(axis=1)[person.scores >= person.keypoint_threshold].all()
            if index % called.config.detect_every == 0:  # frames 0 and 5: each pose came from a detector box
                assert person.detection_score is not None and 0.3 <= person.detection_score <= 1.0
            else:
                assert person.detection_score is None
    assert called.detections == 2


def test_people_to_dict_round_trip_through_json(media):
    frame = vtest_frames(media, 1)[0]
    tracker = default_tracker()
    people = tracker(frame)
    as_dicts = [p.to_dict() for p in people]
    assert json.loads(json.dumps(as_dicts, allow_nan=False)) == as_dicts
    first = as_dicts[0]
    assert set(first) == {"track_id", "state", "age", "box", "detection_score", "keypoint_threshold", "keypoints"}
    assert list(first["keypoints"]) == list(tracker.skeleton.keypoints) and set(first["keypoints"]["nose"]) == {
        "x",
        "y",
        "score",
    }
    assert first["track_id"] == people[0].track_id and first["keypoint_threshold"] == round(
        tracker.scoring.keypoint_score, 4
    )
    assert isinstance(first["detection_score"], float) and first["state"] == "confirmed"


class UnsureWrists(ScriptedPoseNet):
    """The scripted pose network, with both wrists at 0.4: above draw_pose's fixed 0.3, below the
    tracker's threshold."""

    def predict(self, image, boxes=None, rgb=False, flip_test=False):
        result = super().predict(image, boxes, rgb, flip_test)
        result.scores[result.scores[:, 0] > 0.5, 9:11] = 0.4  # people, not lost crops
        return result


def test_drawing_the_trackers_people_uses_its_automatic_threshold():
    net, detector = UnsureWrists(), ScriptedDetector()
    tracker = PoseTracker(net, detector, detect_every=1)
    for f in range(6):
        net.frame = detector.frame = f
        people = tracker(BLANK)
    threshold = people[0].keypoint_threshold
    assert threshold == tracker.scoring.draw_score and threshold != AUTO_PRIOR, "settled on the student's scores"
    frame = np.full((H, W, 3), 90, np.uint8)
    drawn = draw_pose(frame.copy(), people)
    assert np.array_equal(drawn, draw_pose(frame.copy(), tracks_result(people), min_score=threshold))
    assert not np.array_equal(drawn, draw_pose(frame.copy(), tracks_result(people), min_score=0.3)), (
        "the unsure wrists stay hidden"
    )
    assert np.array_equal(
        draw_tracks(frame.copy(), people), draw_tracks(frame.copy(), people, tracker.skeleton, threshold)
    )
    assert np.array_equal(draw_pose(frame.copy(), []), frame) and np.array_equal(
        draw_tracks(frame.copy(), []), frame
    )  # nobody found


# -- track states ---------------------------------------------------------------------------------


def scripted(report: str = "all", **kwargs) -> tuple[list[list], ScriptedPoseNet, ScriptedDetector]:
    net, detector = ScriptedPoseNet(), ScriptedDetector()
    tracker = PoseTracker(net, detector, {"report": report, "max_age": 10, **kwargs})
    history = []
    for f in range(FRAMES):
        net.frame = detector.frame = f
        history.append(tracker(BLANK))
    return history, net, detector


def test_track_states_tentative_confirmed_coasting():
    """With report "all": C is tentative (ID 0) on the frame it is first detected, confirmed on the
    next; A, who walks out, coasts on its velocity for max_age frames; by default only confirmed
    people are reported."""
    history, _, _ = scripted(detect_every=1)
    assert {p.state for h in history for p in h} == set(TRACK_STATES)
    enters = min(f for f in range(FRAMES) if "C" in scene(f))
    newcomer = [p for p in history[enters] if p.state == "tentative"]
    assert len(newcomer) == 1 and newcomer[0].track_id == 0 and newcomer[0].detection_score is not None
    assert history[enters][-1] is newcomer[0], "tentative tracks come last"
    confirmed = [p for p in history[enters + 1] if p.age == 1]
    assert len(confirmed) == 1 and confirmed[0].state == "confirmed" and confirmed[0].track_id > 0

    gone = max(f for f in range(FRAMES) if "A" in scene(f)) + 1
    a_id = next(p.track_id for p in history[gone - 1] if p.box[2] >= W - 30)
    coasting = [next((p for p in history[f] if p.track_id == a_id), None) for f in range(gone, min(gone + 12, FRAMES))]
    assert all(p is not None and p.state == "coasting" and p.detection_score is None for p in coasting[:10])
    assert all(later.box[0] > earlier.box[0] for earlier, later in zip(coasting[:9], coasting[1:10])), (
        "moves on its velocity"
    )
    assert all(p is None for p in coasting[11:]), "dropped after max_age"

    default, _, _ = scripted(report="confirmed", detect_every=1)
    assert {p.state for h in default for p in h} == {"confirmed"}
    assert [[p.track_id for p in h] for h in default] == [
        [p.track_id for p in h if p.state == "confirmed"] for h in history
    ]


def test_detection_scores_come_from_the_detector_box_of_the_pose():
    history, _, detector = scripted(report="confirmed", detect_every=5)
    for f, people in enumerate(history[:20]):
        scores = [p.detection_score for p in people]
        if f % 5 == 0:  # detection frames: the scripted detector scores its boxes 0.9 down to 0.6
            assert all(s is not None and 0.6 <= s <= 0.9 for s in scores), (f, scores)
        else:
            assert scores == [None] * len(people), (f, scores)
    no_scores = PoseTracker(ScriptedPoseNet(), lambda image: ScriptedDetector()(image)[:, :4])
    assert [p.detection_score for p in no_scores(BLANK)] == [None, None]  # a detector without scores


# -- settings from a dict or a YAML file ----------------------------------------------------------


def test_tracker_settings_from_a_dict_or_a_yaml_file(tmp_path):
    settings = tmp_path / "tracker.yaml"
    settings.write_text(
        "detect_every: 3\nmax_people: 4\nkeypoint_score: 0.4\nreport: all\nsmoothing:\n  min_cutoff: 1.0\n  beta: "
        "0.05\n"
    )
    config = TrackerConfig.from_yaml(settings)
    assert (config.detect_every, config.max_people, config.keypoint_score, config.report) == (3, 4, 0.4, "all")
    assert (config.smoothing.min_cutoff, config.smoothing.beta, config.smoothing.d_cutoff) == (1.0, 0.05, 1.0)
    tracker = PoseTracker(ScriptedPoseNet(), None, str(settings), max_people=2)
    assert tracker.config.detect_every == 3 and tracker.config.max_people == 2  # keyword arguments override the file
    assert PoseTracker(ScriptedPoseNet(), None, settings).config == config
    assert PoseTracker(ScriptedPoseNet(), None, {"smoothing": False}).config.smoothing is None
    assert TrackerConfig.from_dict({"smoothing": True}) == TrackerConfig()
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert TrackerConfig.from_yaml(empty) == TrackerConfig()


@pytest.mark.parametrize(
    "settings, match",
    [
        (
            {"detect_evry": 3},
            r"tracker settings: unknown TrackerConfig field 'detect_evry' \(did you mean 'detect_every'\?\); the "
            r"fields are detect_every, ",
        ),
        ({"max_people": 0}, r"tracker settings: TrackerConfig\.max_people must be a whole number >= 1, got 0"),
        ({"match_colour": "high"}, r"TrackerConfig\.match_colour must be a finite number in \[0, 1\], got 'high'"),
        ({"report": "everyone"}, r"TrackerConfig\.report must be one of 'confirmed', 'all', got 'everyone'"),
        ({"smoothing": "on"}, r"TrackerConfig\.smoothing must be true, false, null or a mapping"),
        ({"smoothing": {"beta": "fast"}}, r"TrackerConfig\.smoothing\.beta must be a finite number, got 'fast'"),
        (
            {"smoothing": {"cutoff": 1.0}},
            r"unknown TrackerConfig\.smoothing field 'cutoff'; the fields are min_cutoff, beta, d_cutoff",
        ),
        ({"smoothing": {"min_cutoff": -1.0}}, r"OneEuroConfig needs min_cutoff > 0"),
        (["detect_every", 3], r"expected a mapping of TrackerConfig fields to values, got list"),
    ],
)
def test_bad_tracker_settings_name_the_field(settings, match):
    with pytest.raises(ValueError, match=match):
        TrackerConfig.from_dict(settings)


def test_bad_yaml_settings_name_the_file_and_the_field(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("max_age: 10\nconfirn: 2\n")
    with pytest.raises(
        ValueError, match=rf"{typo}: unknown TrackerConfig field 'confirn' \(did you mean 'confirm'\?\)"
    ):
        PoseTracker(ScriptedPoseNet(), None, typo)
    bad = tmp_path / "bad.yaml"
    bad.write_text("coast: -1\n")
    with pytest.raises(ValueError, match=rf"{bad}: TrackerConfig\.coast must be a whole number >= 0, got -1"):
        TrackerConfig.from_yaml(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("detect_every: [3\n")
    with pytest.raises(ValueError, match=rf"{broken}: not valid YAML"):
        TrackerConfig.from_yaml(broken)
    with pytest.raises(FileNotFoundError):
        TrackerConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(TypeError, match="config must be a TrackerConfig, a dict of its fields or a YAML file's path"):
        PoseTracker(ScriptedPoseNet(), None, 5)


def test_the_runtime_needs_pyyaml_only_to_read_yaml(tmp_path):
    """A runtime-only install has no PyYAML: importing the runtime and dict settings work without
    it, and reading a YAML file says how to install it."""
    settings = tmp_path / "tracker.yaml"
    settings.write_text("detect_every: 3\n")
    script = (
        "import sys\n"
        "sys.modules['yaml'] = None  # as if PyYAML were not installed\n"
        "from okdhp_edge.runtime import TrackerConfig\n"
        "assert TrackerConfig.from_dict({'detect_every': 3}).detect_every == 3\n"
        f"TrackerConfig.from_yaml({str(settings)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1
    assert "ModuleNotFoundError: reading tracker settings from" in proc.stderr and "pip install pyyaml" in proc.stderr
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, okdhp_edge.runtime; print('yaml' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert imported.stdout.strip() == "False", imported.stderr
