"""PoseTracker's parts on their own (runtime/tracking/): the matching's gates, a track's states,
the detection schedule, smoothing and its reset; and the default settings file the package ships.

Poses here are built by hand, with colour signatures chosen so that their similarity is a known
number (`signature(a)` against `signature(1.0)` is a), so each gate can be put just either side of
its threshold. test_tracker.py runs the parts together on scripted and painted videos.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from runtime_artifacts import POSE

from okdhp_edge.runtime import InputError, OneEuroConfig, PoseTracker, TrackerConfig
from okdhp_edge.runtime.appearance import BANDS, BINS, colour_similarity
from okdhp_edge.runtime.result import PoseResult
from okdhp_edge.runtime.tracker_config import TRACKER_YAML
from okdhp_edge.runtime.tracking.matching import greedy_pairs, match, nearness
from okdhp_edge.runtime.tracking.poses import Pose
from okdhp_edge.runtime.tracking.schedule import Crops, DetectionSchedule, detections, merge_detections
from okdhp_edge.runtime.tracking.smoothing import Clock, KeypointSmoother
from okdhp_edge.runtime.tracking.track import Track
from okdhp_edge.skeleton import COCO17

REPO = Path(__file__).resolve().parents[1]
SIGMAS = np.asarray(COCO17.sigmas, np.float64)
FRAME = np.zeros((480, 640, 3), np.uint8)
LEGS = slice(13, 17)  # knees and ankles


def signature(a: float) -> np.ndarray:
    """A colour signature whose similarity with signature(1.0) is `a`: in every band, weight a on
    one bin and the rest on another (signatures are square roots of histograms)."""
    sig = np.zeros((len(BANDS), BINS**3), np.float32)
    sig[:, 0], sig[:, 1] = a, math.sqrt(1 - a * a)
    return (sig / math.sqrt(len(BANDS))).reshape(-1)


def pose(box: tuple[float, float, float, float], colour: float = 1.0, legs: bool = True, fresh: bool = True) -> Pose:
    """The POSE stick figure filling `box`; without legs, its box is the confident keypoints' only."""
    x1, y1, x2, y2 = box
    keypoints = (POSE * [x2 - x1, y2 - y1] + [x1, y1]).astype(np.float32)
    scores = np.full(17, 0.9, np.float32)
    if not legs:
        scores[LEGS] = 0.1
    seen = keypoints[scores >= 0.5]
    tight = np.concatenate([seen.min(0), seen.max(0)]).astype(np.float32)
    return Pose(np.array(box, np.float32) if legs else tight, keypoints, scores, signature(colour), fresh, None)


def track(box: tuple[float, float, float, float], track_id: int = 1) -> Track:
    started = Track.start(pose(box), KeypointSmoother(None), 0.0)
    started.track_id = track_id
    return started


def test_signatures_here_have_the_similarity_asked_for():
    assert colour_similarity(signature(1.0)[None], signature(0.6)[None])[0, 0] == pytest.approx(0.6, abs=1e-6)


# -- matching: each gate on its own --------------------------------------------------------------


def test_nearness_is_centre_distance_in_track_heights_and_refuses_other_sizes():
    tracks = np.array([[100, 100, 150, 300]], np.float32)  # 200 high
    poses = np.array([[160, 100, 210, 300], [100, 150, 150, 250], [100, 100, 150, 510]], np.float32)
    assert nearness(tracks, poses)[0].tolist() == pytest.approx([0.7, 1.0, -1.0])  # 60 px right; 0.5x; 2.05x high


@pytest.mark.parametrize("colour, matched", [(1.0, True), (0.55, True), (0.45, False)])
def test_a_pose_on_the_track_is_matched_only_when_its_colours_agree(colour, matched):
    config = TrackerConfig()  # match_colour 0.5
    found = match(FRAME, [track((100, 100, 150, 300))], [pose((102, 101, 152, 301), colour)], config, 0.5, SIGMAS)
    assert found.pairs == ([(0, 0)] if matched else [])


@pytest.mark.parametrize("colour, matched", [(0.8, True), (0.6, False)])
def test_a_pose_that_jumped_is_matched_on_nearness_under_the_stricter_colour_gate(colour, matched):
    """60 px to the right of a 50 px wide track: no overlap, OKS ~0, but 0.3 heights away. Colour
    0.6 passes round one's gate (0.5) but not round two's (0.7)."""
    config = TrackerConfig()
    found = match(FRAME, [track((100, 100, 150, 300))], [pose((160, 100, 210, 300), colour)], config, 0.5, SIGMAS)
    assert found.pairs == ([(0, 0)] if matched else [])
    closer = dataclasses.replace(config, near_distance=0.25)
    assert match(FRAME, [track((100, 100, 150, 300))], [pose((160, 100, 210, 300))], closer, 0.5, SIGMAS).pairs == []


@pytest.mark.parametrize("height, matched", [(190, True), (210, False)])
def test_nearness_refuses_a_pose_over_twice_the_track_height(height, matched):
    config = TrackerConfig(match_threshold=1.0)  # round one off: only nearness can match
    tracked = track((100, 200, 150, 300))  # 100 high, centred at y = 250
    found = match(FRAME, [tracked], [pose((100, 250 - height / 2, 150, 250 + height / 2))], config, 0.5, SIGMAS)
    assert found.pairs == ([(0, 0)] if matched else [])


def test_greedy_pairs_take_the_best_first_each_once_and_round_two_only_for_the_rest():
    motion = np.array([[0.9, 0.8], [0.85, 0.1]])
    colour = np.ones((2, 2))
    both = np.ones((2, 2), bool)
    # track 0 takes pose 0 (best); track 1 cannot have pose 0 again, and pose 1 is below round one's gate
    assert greedy_pairs([(motion, motion >= 0.5)], colour, [0.5]) == [(0, 0)]
    assert greedy_pairs([(motion, motion >= 0.5), (motion, both)], colour, [0.5, 0.5]) == [(0, 0), (1, 1)]
    assert greedy_pairs([(motion, both)], np.array([[0.4, 1.0], [1.0, 1.0]]), [0.5]) == [(1, 0), (0, 1)]


def test_a_partial_pose_is_gated_on_the_body_box_and_its_motion_is_measured_once(monkeypatch):
    """The legs dropped out: the pose's box is the upper body only. The pair's motion, measured for
    its colour gate, is the one the tracker then moves the track by: Track.shift_to runs once."""
    calls = []
    shift_to = Track.shift_to
    monkeypatch.setattr(Track, "shift_to", lambda self, *a: calls.append(1) or shift_to(self, *a))
    tracked = track((100, 100, 150, 300))
    partial = pose((104, 100, 154, 300), colour=0.2, legs=False)  # its own box's colours do not agree...
    assert tracked.is_partial(partial, 0.7)
    found = match(FRAME, [tracked], [partial], TrackerConfig(), 0.5, SIGMAS)
    # ...but the body's box on the (black) frame has the track's colours: the gate measured them there
    assert found.pairs == [(0, 0)] and len(calls) == 1
    assert found.shifts[0, 0] == pytest.approx([4.0, 0.0])
    assert found.shift([tracked], [partial], (0, 0), 0.5) is found.shifts[0, 0] and len(calls) == 1

    calls.clear()
    net = StillPerson()
    tracker = PoseTracker(net, None, TrackerConfig(keypoint_score=0.5, lost_score=0.3, smoothing=None))
    assert len(tracker(FRAME)) == 1
    net.legs, net.dx = False, 4.0
    (person,) = tracker(FRAME)
    assert len(calls) == 1, "the partial pose's motion was measured more than once"
    assert person.box[3] - person.box[1] > 400  # the whole body's box (the pose's own is 268 px high)
    assert tracker.tracks[0].velocity == pytest.approx([2.0, 0.0])  # half the 4 px move (velocity is averaged)


# -- a track's states ---------------------------------------------------------------------------


def test_a_track_is_tentative_until_confirmed_and_one_miss_ends_it():
    new = Track.start(pose((100, 100, 150, 300)), KeypointSmoother(None), 0.0)
    assert new.state == "tentative" and new.track_id == 0
    assert new.due_confirm(2) and not new.due_confirm(3)  # its pose is found again on its 2nd frame
    new.end_frame(matched=True)
    assert new.due_confirm(3) and new.alive(15)
    new.end_frame(matched=False)
    assert not new.alive(15), "a tentative track ends at its first miss"


def test_a_confirmed_track_coasts_on_its_velocity_until_max_age_and_a_pose_brings_it_back():
    tracked = track((100, 100, 150, 300))
    tracked.velocity = np.array([5.0, 0.0], np.float32)
    tracked.end_frame(matched=True)
    for missed in range(1, 4):
        tracked.end_frame(matched=False)
        assert tracked.state == "coasting" and tracked.alive(3)
        assert tracked.predicted()[0] == pytest.approx([100 + 5 * (missed + 1), 100, 150 + 5 * (missed + 1), 300])
    report = tracked.report(0.5, COCO17)
    assert report.state == "coasting" and report.detection_score is None and report.age == 4
    assert report.box == pytest.approx([115, 100, 165, 300])  # where 3 missed frames at 5 px take it
    tracked.end_frame(matched=False)
    assert not tracked.alive(3)
    again = track((100, 100, 150, 300))
    again.end_frame(matched=False)
    again.follow(pose((110, 100, 160, 300)), np.array([10.0, 0.0]), 0.1, TrackerConfig(), 640, 480)
    assert again.state == "confirmed" and again.missed == 0 and again.velocity == pytest.approx([2.5, 0.0])


# -- the detection schedule ---------------------------------------------------------------------


def test_the_detector_is_due_every_n_frames_or_when_nobody_is_tracked():
    schedule = DetectionSchedule()
    due = []
    for _ in range(7):
        schedule.tick()
        due.append(schedule.due(tracked=2, every=3, has_detector=True))
        if due[-1]:
            schedule.ran()
    assert due == [False, False, True, False, False, True, False] and schedule.runs == 2
    assert schedule.due(tracked=0, every=0, has_detector=False)  # nobody tracked: always look
    assert not schedule.due(tracked=2, every=0, has_detector=True)  # 0: only when nobody is tracked


def test_a_detection_replaces_the_crop_it_overlaps_and_newcomers_fill_up_to_max_people():
    crops = Crops.tracked(np.array([[100, 100, 150, 300], [400, 100, 450, 300]], np.float32))
    found = detections(
        np.array([[105, 100, 155, 300, 0.9], [200, 100, 250, 300, 0.8], [300, 100, 350, 300, 0.7]]), 640, 480
    )
    merged = merge_detections(crops, found, replace_iou=0.3, max_people=3, replace_inside=0.8)
    assert merged.boxes.tolist() == [[105, 100, 155, 300], [400, 100, 450, 300], [200, 100, 250, 300]]
    assert merged.fresh.tolist() == [True, False, True]
    assert merged.scores[[0, 2]].tolist() == pytest.approx([0.9, 0.8]) and np.isnan(merged.scores[1])
    # a near person's crop drifted onto the face: inside the next detection, overlapping it too little
    face = Crops.tracked(np.array([[190, 130, 265, 270]], np.float32))
    body = detections(np.array([[20, 140, 385, 299, 0.8]]), 400, 300)
    assert merge_detections(face, body, replace_iou=0.3, max_people=3, replace_inside=0.8).boxes.tolist() == [
        [20, 140, 385, 299]
    ]
    assert len(merge_detections(face, body, replace_iou=0.3, max_people=3, replace_inside=1.0).boxes) == 2
    beside = Crops.tracked(np.array([[300, 130, 420, 299]], np.float32))  # half outside the detection: another person
    assert len(merge_detections(beside, body, replace_iou=0.3, max_people=3, replace_inside=0.8).boxes) == 2
    assert np.isnan(detections(np.array([[0, 0, 700, 500]]), 640, 480)[0, 4])  # no score column: NaN
    assert detections(np.array([[0, 0, 700, 500]]), 640, 480)[0, :4].tolist() == [0, 0, 639, 479]
    with pytest.raises(InputError, match=r"expects \(N, 4\+\) boxes"):
        detections(np.zeros((2, 3)), 640, 480)


# -- smoothing and its reset --------------------------------------------------------------------


def test_each_track_smoother_starts_at_its_first_pose_and_off_passes_through():
    first = POSE * 100
    smoother = KeypointSmoother(OneEuroConfig())
    assert np.array_equal(smoother(first, 0.0), first.astype(np.float32))
    moved = smoother(first + 10, 1 / 30)
    assert np.all((moved > first) & (moved < first + 10)), "blended between the two"
    assert np.array_equal(KeypointSmoother(OneEuroConfig())(first + 10, 1 / 30), first + 10), "no state shared"
    assert KeypointSmoother(None)(first, 0.0) is first


def test_the_clock_refuses_time_going_back_until_reset():
    clock = Clock()
    assert [clock(None, 30.0), clock(None, 30.0)] == pytest.approx([0.0, 1 / 30])
    with pytest.raises(InputError, match="must be finite and increase"):
        clock(0.0, 30.0)
    clock.reset()
    assert clock(0.0, 30.0) == 0.0


class StillPerson:
    """A pose network that sees one person, 420 px high, `dx` px right of the first place, legs optional."""

    skeleton = COCO17

    def __init__(self) -> None:
        self.dx, self.legs = 0.0, True

    def predict(self, image, boxes=None, rgb=False, flip_test=False) -> PoseResult:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        keypoints = np.repeat((POSE * [140, 420] + [200 + self.dx, 30])[None], len(boxes), 0).astype(np.float32)
        scores = np.full((len(boxes), 17), 0.9, np.float32)
        if not self.legs:
            scores[:, LEGS] = 0.1
        return PoseResult(keypoints, scores, boxes, COCO17.keypoints, COCO17.limbs)


def test_reset_starts_smoothing_afresh():
    net = StillPerson()
    tracker = PoseTracker(net, None, TrackerConfig(keypoint_score=0.5, lost_score=0.3))
    for t in range(3):
        (first,) = tracker(FRAME, t / 30)
    net.dx = 6.0
    raw = POSE * [140, 420] + [206, 30]
    (carried,) = tracker(FRAME, 3 / 30)
    assert carried.track_id == first.track_id and not np.allclose(carried.keypoints, raw, atol=0.5), "smoothed"
    tracker.reset()
    (fresh,) = tracker(FRAME, 0.0)  # timestamps may start again after a reset
    assert fresh.track_id > first.track_id, "IDs keep counting"
    assert np.allclose(fresh.keypoints, raw, atol=1e-4), "the new track's filter starts at its first pose"


# -- the default settings file ------------------------------------------------------------------


def test_the_shipped_yaml_holds_every_field_at_the_dataclass_default():
    settings = yaml.safe_load(TRACKER_YAML.read_text(encoding="utf-8"))
    assert list(settings) == [f.name for f in dataclasses.fields(TrackerConfig)], "every field, in order"
    assert list(settings["smoothing"]) == [f.name for f in dataclasses.fields(OneEuroConfig)]
    assert TrackerConfig.from_yaml(TRACKER_YAML) == TrackerConfig()
    assert PoseTracker(StillPerson(), None, TRACKER_YAML).config == TrackerConfig()


def test_the_shipped_yaml_goes_into_the_wheel():
    """package-data names it (the wheel test in test_pose_pipeline.py builds a wheel and looks)."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    member = TRACKER_YAML.relative_to(REPO / "okdhp_edge").as_posix()
    assert any(fnmatch.fnmatch(member, p) for p in patterns["okdhp_edge"]), member
