"""PoseTracker on a scripted video of three people who cross, enter and leave; One-Euro smoothing.

The people are known poses moving on known paths. A scripted detector returns their boxes (and
misses the one behind during the crossing, as real detectors do), and a scripted pose network
returns, for each crop, the noisy pose of the person the crop covers most: the tracker's own logic
(crop placement, detection schedule, OKS-NMS, matching, ageing, smoothing) runs for real. The last
tests wire the real ONNX Predictor and Detector through the tracker.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_artifacts import POSE

from okdhp_edge.boxes import iou_matrix
from okdhp_edge.runtime import InputError, OneEuroConfig, OneEuroFilter, PoseTracker, TrackerConfig, draw_tracks
from okdhp_edge.runtime.appearance import colour_signature, colour_similarity
from okdhp_edge.runtime.result import PoseResult
from okdhp_edge.runtime.tracker import keypoint_box
from okdhp_edge.skeleton import COCO17

REPO = Path(__file__).resolve().parents[1]
W, H, FRAMES = 640, 480, 90


def person(box: tuple[float, float, float, float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    return (POSE * [x2 - x1, y2 - y1] + [x1, y1]).astype(np.float32)


def scene(frame: int) -> dict[str, tuple[float, float, float, float]]:
    """Visible people's boxes: A (near, tall) walks right, B (far, short) walks left and crosses A
    around frame 30, C walks in from the right at frame 40, A walks out on the right at frame ~75."""
    people = {}
    ax = 60 + 8 * frame
    people["A"] = (ax, 100, ax + 90, 420)
    bx = 480 - 6 * frame
    people["B"] = (bx, 150, bx + 60, 350)
    if frame >= 40:
        cx = W - 4 * (frame - 40)
        people["C"] = (cx, 120, cx + 80, 400)
    return {k: b for k, b in people.items() if b[0] < W - 20 and b[2] > 20}


class ScriptedDetector:
    """Boxes of the visible people; the smaller of two overlapping people is hidden (occluded)."""

    def __init__(self) -> None:
        self.frame = 0
        self.extra: list[list[float]] = []
        self.calls: list[int] = []

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.calls.append(self.frame)
        people = scene(self.frame)
        boxes = np.array(list(people.values()), np.float32)
        overlap = iou_matrix(boxes, boxes) - np.eye(len(boxes))
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        hidden = [
            i for i in range(len(boxes)) if any(overlap[i, j] > 0.1 and areas[j] > areas[i] for j in range(len(boxes)))
        ]
        keep = np.delete(boxes, hidden, axis=0)
        scores = np.linspace(0.9, 0.6, len(keep))[:, None]
        return np.concatenate([np.concatenate([keep, scores], 1), np.array(self.extra, np.float32).reshape(-1, 5)])


class ScriptedPoseNet:
    """Stands in for Predictor: each crop gets the pose of the visible person it covers most
    (plus noise), or a lost pose (score 0.05) when it covers nobody."""

    skeleton = COCO17

    def __init__(self, noise: float = 1.0, seed: int = 0) -> None:
        self.frame = 0
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.crops: list[np.ndarray] = []

    def predict(self, image, boxes=None, rgb=False, flip_test=False) -> PoseResult:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.crops.append(boxes)
        people = scene(self.frame)
        names = list(people)
        truth = np.array([people[n] for n in names], np.float32).reshape(-1, 4)
        cover = iou_matrix(boxes, truth)
        keypoints = np.zeros((len(boxes), 17, 2), np.float32)
        scores = np.full((len(boxes), 17), 0.05, np.float32)
        for i in range(len(boxes)):
            if cover.shape[1] and cover[i].max() > 0.1:
                keypoints[i] = person(tuple(truth[cover[i].argmax()])) + self.rng.normal(0, self.noise, (17, 2))
                scores[i] = 0.9
        return PoseResult(keypoints, scores, boxes, COCO17.keypoints, COCO17.limbs)


def run_scene(detect_every: int = 5, frames: int = FRAMES, **kwargs):
    net, detector = ScriptedPoseNet(), ScriptedDetector()
    tracker = PoseTracker(net, detector, detect_every=detect_every, max_age=10, **kwargs)
    history = []
    for f in range(frames):
        net.frame = detector.frame = f
        tracks = tracker.update(np.zeros((H, W, 3), np.uint8))
        history.append(tracks)
    return history, tracker, detector


def identities(tracks, frame: int) -> dict[str, int]:
    """Ground-truth person -> track ID (IoU > 0.5 with the person's box clipped to the frame),
    for people not overlapping anyone (who is who inside an occlusion is not defined)."""
    people = scene(frame)
    names = list(people)
    truth = np.array([people[n] for n in names], np.float32).reshape(-1, 4).clip(0, [W - 1, H - 1, W - 1, H - 1])
    apart = (iou_matrix(truth, truth) - np.eye(len(truth))).max(axis=1, initial=0) == 0
    boxes = np.array([t.box for t in tracks], np.float32).reshape(-1, 4)
    overlap = iou_matrix(truth, boxes)
    return {
        names[i]: tracks[int(overlap[i].argmax())].track_id
        for i in range(len(names))
        if apart[i] and len(tracks) and overlap[i].max() > 0.5
    }


def on(track, box) -> bool:
    """The track's box centre lies inside `box` (a person only partly in the frame has a small box)."""
    cx, cy = (track.box[:2] + track.box[2:]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def test_ids_survive_the_crossing_and_newcomers_are_picked_up():
    history, tracker, detector = run_scene(detect_every=5)
    seen: dict[str, set[int]] = {}
    first_seen: dict[str, int] = {}
    for f, tracks in enumerate(history):
        for name, tid in identities(tracks, f).items():
            seen.setdefault(name, set()).add(tid)
            first_seen.setdefault(name, f)
    assert {k: len(v) for k, v in seen.items()} == {"A": 1, "B": 1, "C": 1}, seen  # one ID each, all along
    assert len(set.union(*seen.values())) == 3  # and three different IDs
    # A and B overlap on frames 24-34; both are back on their own IDs after it
    for f in range(38, 54):
        assert {"A", "B"} <= set(identities(history[f], f)), f
    # C walks in and gets a new ID at the next detection, within detect_every frames, reported from
    # the frame after it (a new track is confirmed on its second frame)
    enters = min(f for f in range(FRAMES) if "C" in scene(f))
    found = min(f for f in range(FRAMES) if "C" in scene(f) and any(on(t, scene(f)["C"]) for t in history[f]))
    assert enters + 1 <= found < enters + 5 + 1, (enters, found)
    assert first_seen["C"] >= found
    assert len(detector.calls) < FRAMES / 2  # the detector did not run on every frame


def test_a_person_who_leaves_is_dropped_after_max_age():
    history, tracker, _ = run_scene(detect_every=5)
    gone = max(f for f in range(FRAMES) if "A" in scene(f)) + 1
    a_id = identities(history[45], 45)["A"]
    assert all(t.track_id != a_id for t in history[gone + 1])  # not reported once it has no pose
    assert all(t.track_id != a_id for t in tracker.tracks) == (FRAMES - gone > 10)  # forgotten after max_age


@pytest.mark.parametrize("confirm", [1, 2])
def test_newcomer_is_reported_once_seen_on_confirm_frames_with_detect_every_1(confirm):
    history, _, detector = run_scene(detect_every=1, frames=50, config=TrackerConfig(confirm=confirm))
    assert len(detector.calls) == 50
    enters = min(f for f in range(50) if "C" in scene(f))
    reported = min(f for f in range(50) if "C" in scene(f) and any(on(t, scene(f)["C"]) for t in history[f]))
    assert reported == enters + confirm - 1
    assert [t.age for t in history[reported] if on(t, scene(reported)["C"])] == [confirm - 1]


def test_duplicate_crops_are_merged():
    net, detector = ScriptedPoseNet(), ScriptedDetector()
    tracker = PoseTracker(net, detector, detect_every=1)
    # a second, looser box around A: its crop finds the same person, OKS-NMS keeps one pose
    net.frame = detector.frame = 0
    a = scene(0)["A"]
    detector.extra = [[a[0] - 40, a[1] - 40, a[2] + 40, a[3] + 40, 0.5]]
    tracks = tracker.update(np.zeros((H, W, 3), np.uint8))
    assert len(net.crops[-1]) == 3  # A, B and the duplicate were all cropped
    assert len(tracks) == 2 and set(identities(tracks, 0)) == {"A", "B"}


def test_tracks_age_and_max_people():
    history, _, _ = run_scene(detect_every=5, frames=20)
    a_id = identities(history[0], 0)["A"]
    assert [next(t.age for t in h if t.track_id == a_id) for h in history[:4]] == [0, 1, 2, 3]
    history, _, _ = run_scene(detect_every=1, frames=5, max_people=1)
    assert all(len(h) == 1 for h in history)


def test_the_default_follows_a_street_of_twelve_people():
    """vtest.avi shows 9-12 people at once: with the former cap of 8 tracks, walkers in view went
    untracked (frame 720 lost three). Twelve people in a row, all found and reported."""

    def walker(k: int):
        return lambda f: ((5 + 52 * k + f, 150 + 10 * (k % 3), 45 + 52 * k + f, 330 + 10 * (k % 3)), (20 * k, 90, 200))

    scene = PaintedScene({f"p{k}": walker(k) for k in range(12)}, {f"p{k}" for k in range(12)})
    ids = run_painted(scene, 8)
    assert len(ids[-1]) == 12 and len(set(ids[-1].values())) == 12, ids[-1]
    assert len(run_painted(PaintedScene(scene.paths, scene.detectable), 8, max_people=8)[-1]) == 8


class PaintedScene:
    """People drawn as coloured boxes on a grey frame, for the tests where colour matters.
    paths: name -> function frame -> (box, BGR colour). The detector reports the names in
    `detectable` (the others are things a pose network mistakes for a person, such as a sign);
    the pose network returns the pose of whatever its crop covers most (the front one: later in
    `paths` is in front), with `scores_of` to make some keypoints unsure."""

    skeleton = COCO17

    def __init__(self, paths: dict, detectable: set[str], scores_of=None) -> None:
        self.paths, self.detectable, self.frame = paths, detectable, 0
        self.scores_of = scores_of or (lambda name, frame: np.full(17, 0.9, np.float32))
        self.crops_on_sign: list[int] = []  # frames where a crop found the 'sign'

    def people(self) -> dict[str, tuple[tuple[float, ...], tuple[int, int, int]]]:
        """The people in view: name -> (box, colour); a path returns None where its person is hidden."""
        return {name: seen for name, path in self.paths.items() if (seen := path(self.frame)) is not None}

    def image(self) -> np.ndarray:
        """Each person a box of one colour, or dressed, colour (shirt, trousers): a SKIN head (the
        middle 40 % of the width) to 0.15 of the height, the shirt to the waist (0.5), then trousers
        whose legs part from 0.55 down (the background shows in the middle 30 %)."""
        frame = np.full((H, W, 3), 128, np.uint8)
        for box, colour in self.people().values():
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            if not isinstance(colour[0], tuple):
                frame[max(y1, 0) : max(y2, 0), max(x1, 0) : x2] = colour
                continue

            def y(f: float, y1: int = y1, y2: int = y2) -> int:
                return max(int(round(y1 + f * (y2 - y1))), 0)

            def x(f: float, x1: int = x1, x2: int = x2) -> int:
                return max(int(round(x1 + f * (x2 - x1))), 0)

            frame[y(0) : y(0.15), x(0.3) : x(0.7)] = SKIN
            frame[y(0.15) : y(0.5), x(0) : x(1)] = colour[0]
            frame[y(0.5) : y(1), x(0) : x(1)] = colour[1]
            frame[y(0.55) : y(1), x(0.35) : x(0.65)] = 128
        return frame

    def __call__(self, image: np.ndarray) -> np.ndarray:  # the detector
        boxes = [box for name, (box, _) in self.people().items() if name in self.detectable]
        return np.array([[*b, 0.9] for b in boxes], np.float32).reshape(-1, 5)

    def predict(self, image, boxes=None, rgb=False, flip_test=False) -> PoseResult:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        names = list(self.people())
        truth = np.array([self.people()[n][0] for n in names], np.float32).reshape(-1, 4)
        keypoints = np.zeros((len(boxes), 17, 2), np.float32)
        scores = np.full((len(boxes), 17), 0.05, np.float32)
        for i, box in enumerate(boxes):
            x1, y1, x2, y2 = box
            cover = [max(0, min(x2, t[2]) - max(x1, t[0])) * max(0, min(y2, t[3]) - max(y1, t[1])) for t in truth]
            if not names:
                continue
            front = max(range(len(names)), key=lambda j: (cover[j] > 0.3 * (truth[j, 2:] - truth[j, :2]).prod(), j))
            if cover[front] > 0.1 * (box[2:] - box[:2]).prod():
                keypoints[i] = person(tuple(truth[front]))
                scores[i] = self.scores_of(names[front], self.frame)
                if names[front] == "sign":
                    self.crops_on_sign.append(self.frame)
        return PoseResult(keypoints, scores, boxes, COCO17.keypoints, COCO17.limbs)


def run_painted(
    scene: PaintedScene, frames: int, config: TrackerConfig | None = None, **kwargs
) -> list[dict[str, int]]:
    """Per frame: person name -> the ID of the track whose box centre lies in their box."""
    tracker = PoseTracker(scene, scene, config, **kwargs)
    ids = []
    for f in range(frames):
        scene.frame = f
        tracks = tracker.update(scene.image())
        ids.append({name: t.track_id for name, (box, _) in scene.people().items() for t in tracks if on(t, box)})
    return ids


RED, BLUE, SKIN = (30, 30, 220), (220, 60, 30), (140, 170, 230)


def test_colour_keeps_a_stranger_off_a_hidden_walkers_id():
    """Red walks behind a pillar (frames 10-16); meanwhile a stranger in blue steps out where she
    would be. Boxes and motion alone hand him her ID; colour keeps it for her, and she gets it
    back when she comes out."""

    def red(f):
        return None if 10 <= f < 17 else ((100 + 8 * f, 80, 180 + 8 * f, 400), RED)

    def blue(f):
        return None if f < 13 else ((214 - 10 * (f - 13), 80, 294 - 10 * (f - 13), 400), BLUE)

    def scene():
        return PaintedScene({"red": red, "blue": blue}, {"red", "blue"})

    ids = run_painted(scene(), 26, detect_every=1)
    assert "blue" not in ids[13] and ids[14]["blue"] != ids[9]["red"]  # a new track: reported from its second frame
    assert all(i["red"] == ids[9]["red"] for i in ids[17:]), ids
    blind = run_painted(scene(), 26, TrackerConfig(match_colour=0.0, near_colour=0.0), detect_every=1)
    assert blind[13]["blue"] == blind[9]["red"]  # the swap colour prevents


@pytest.mark.parametrize("confirm", [1, 2])
def test_a_one_frame_false_find_costs_no_id(confirm):
    """A flash the detector and the pose network take for a person on frame 5 only: with confirm=2
    its track stays tentative and ends when frame 6 finds nobody there, so it is never reported
    and the walker who comes in later gets ID 2; with confirm=1 the flash spends ID 2."""

    def walker(f):
        return ((60 + 6 * f, 80, 140 + 6 * f, 400), RED)

    def flash(f):
        return ((500, 100, 580, 420), BLUE) if f == 5 else None

    def newcomer(f):
        return ((560, 90, 640, 410), (40, 200, 40)) if f >= 10 else None

    scene = PaintedScene({"walker": walker, "flash": flash, "newcomer": newcomer}, {"walker", "flash", "newcomer"})
    ids = run_painted(scene, 16, TrackerConfig(confirm=confirm), detect_every=1)
    assert ids[0] == {"walker": 1}  # the stream's first frame reports at once
    assert ("flash" in ids[5]) == (confirm == 1)
    assert ids[15]["newcomer"] == (2 if confirm == 2 else 3)


def test_a_partial_pose_keeps_its_box_and_id():
    """Legs unsure for 10 frames (say, behind a car): the box keeps the body's size and follows it."""

    def unsure_legs(name, frame):
        scores = np.full(17, 0.9, np.float32)
        if 10 <= frame < 20:
            scores[11:] = 0.1
        return scores

    scene = PaintedScene({"A": lambda f: ((100 + 4 * f, 80, 180 + 4 * f, 400), RED)}, {"A"}, unsure_legs)
    tracker = PoseTracker(scene, scene, detect_every=0)
    heights, ids = [], set()
    for f in range(30):
        scene.frame = f
        (track,) = tracker.update(scene.image())
        heights.append(track.box[3] - track.box[1])
        ids.add(track.track_id)
        assert on(track, scene.people()["A"][0]), f
    assert ids == {1} and tracker.detections == 1
    assert min(heights[10:20]) > 0.6 * heights[9], heights  # the upper body alone is under half the height


def test_a_two_coloured_person_whose_legs_drop_out_keeps_their_id():
    """Red shirt, blue trousers; for 12 frames all below the waist (wrists, hips, legs) drops out of
    the pose, as behind a car. The pose's own box is the upper body, whose two colour bands are both
    mostly red: against the whole body's red-over-blue colours it scores 0.47, under both colour
    gates. Compared on the body's box, in the band the pose covers (the shirt), it matches."""

    def legs_lost(name, frame):
        scores = np.full(17, 0.9, np.float32)
        if 10 <= frame < 22:
            scores[9:] = 0.1
        return scores

    scene = PaintedScene({"A": lambda f: ((100 + 4 * f, 60, 180 + 4 * f, 420), (RED, BLUE))}, {"A"}, legs_lost)
    ids = run_painted(scene, 30, detect_every=5)
    assert [i.get("A") for i in ids] == [1] * 30, ids


def test_a_two_coloured_person_cut_by_the_frame_edge_is_compared_on_the_part_in_view():
    """Red shirt, blue trousers, cut at the waist by the frame's bottom edge. Her in-view pose's own
    box against her whole-body colours scores under the colour gate; on her body's box, in the
    band in view (the trousers' band is mostly outside the frame), she matches."""
    cfg = TrackerConfig(keypoint_score=0.5, lost_score=0.5)
    whole_box, cut_box = (200, 40, 290, 400), (200, 300, 290, 660)
    images = {}
    for name, box in (("whole", whole_box), ("cut", cut_box)):
        painted = PaintedScene({"A": lambda f, box=box: (box, (RED, BLUE))}, {"A"})
        images[name] = painted.image()
    whole = keypoint_box(person(whole_box), np.full(17, 0.9), cfg, W, H)
    in_view = np.where(person(cut_box)[:, 1] < H - 1, 0.9, 0.05)
    seen = keypoint_box(person(cut_box), in_view, cfg, W, H)
    body = whole + np.array([0, 260, 0, 260], np.float32)  # the body's box, moved as far as she walked
    reference = colour_signature(images["whole"], whole)[None]
    assert (
        colour_similarity(reference, colour_signature(images["cut"], seen)[None])[0, 0] < TrackerConfig().match_colour
    )
    assert colour_similarity(reference, colour_signature(images["cut"], body, seen=seen)[None])[0, 0] > 0.9


def test_a_person_reappearing_cut_by_the_frame_edge_keeps_their_id():
    """A stream stalls while a dressed walker goes down: on frame 10 she is 190 px lower, cut by
    the bottom edge, and stays there. Her track keeps the body's box unclipped, so the body's box
    that her partial poses are compared on does not creep up frame after frame."""

    def path(f):
        return (200, 40 + 190 * (f >= 10) + 2 * f, 290, 400 + 190 * (f >= 10) + 2 * f)

    def in_view(name, frame):
        y1, y2 = path(frame)[1], path(frame)[3]
        return np.where(y1 + POSE[:, 1] * (y2 - y1) < H - 1, 0.9, 0.05).astype(np.float32)

    scene = PaintedScene({"A": lambda f: (path(f), (RED, BLUE))}, {"A"}, in_view)
    ids = run_painted(scene, 20, detect_every=1)
    assert [i.get("A") for i in ids] == [1] * 20, ids


def test_a_partial_pose_whose_body_box_moves_out_of_the_frame():
    """Most joints of a partial pose jump far outside the frame (a bad network output): the body's
    box, moved by them, lies wholly outside; the track keeps the pose's own box instead of failing."""
    body = person((560, 60, 630, 420))

    class JumpingNet(ScriptedPoseNet):
        def predict(self, image, boxes=None, rgb=False, flip_test=False):
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            keypoints = np.repeat(body[None], len(boxes), 0)
            scores = np.full((len(boxes), 17), 0.9, np.float32)
            if self.frame == 1:
                keypoints[:, 3:11, 0] += 400  # 8 of the 11 upper-body joints leave; the legs are unsure
                scores[:, 11:] = 0.1
            return PoseResult(keypoints, scores, boxes, COCO17.keypoints, COCO17.limbs)

    net = JumpingNet()
    tracker = PoseTracker(net, None, TrackerConfig(keypoint_score=0.5, lost_score=0.5))
    for f in range(2):
        net.frame = f
        (track,) = tracker.update(np.zeros((H, W, 3), np.uint8))
        assert (
            track.track_id == 1
            and (track.box[2:] <= [W - 1, H - 1]).all()
            and (track.box[2:] - track.box[:2] >= 1).all()
        )


def test_reset_lets_a_second_video_start_its_timestamps_at_zero():
    net, detector = ScriptedPoseNet(), ScriptedDetector()
    tracker = PoseTracker(net, detector, detect_every=5)
    for _video in range(2):
        for f in range(5):
            net.frame = detector.frame = f
            assert len(tracker.update(np.zeros((H, W, 3), np.uint8), timestamp=f / 10)) == 2
        tracker.reset()


@pytest.mark.parametrize("found", [np.zeros((2, 3), np.float32), np.zeros(3, np.float32), np.float32(1.0)])
def test_a_detector_with_too_few_box_columns_is_a_clear_error(found):
    tracker = PoseTracker(ScriptedPoseNet(), lambda image: found)
    with pytest.raises(InputError, match=r"detector returned an array of shape .*expects \(N, 4\+\) boxes"):
        tracker.update(np.zeros((H, W, 3), np.uint8))


BAD_SETTINGS = {
    "smoothing": True,
    "flip_test": "yes",
    "keypoint_score": float("nan"),
    "lost_score": "0.5",
    "fps": 0.0,
    "max_people": 2.5,
    "auto_score": 1.5,
    "partial_height": 1.2,
    "report": "everyone",
}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrackerConfig)])
def test_every_tracker_setting_is_checked_and_named(name):
    """A bad value in any of its fields is refused at once, with the field's name."""
    bad = BAD_SETTINGS.get(name, -1 if isinstance(getattr(TrackerConfig(), name), int) else float("inf"))
    with pytest.raises(ValueError, match=rf"TrackerConfig\.{name} must be"):
        TrackerConfig(**{name: bad})


def test_only_detections_start_tracks():
    """A walker goes out of sight just before a sign that the pose network takes for a person but
    the detector does not. Her track's crop, carried on by her velocity, lands on the sign and
    finds its 'pose': that must not become a track, or the sign would keep it for good."""
    scene = PaintedScene(
        {
            "sign": lambda f: ((230, 150, 290, 390), (40, 200, 200)),
            "A": lambda f: None if f >= 10 else ((100 + 10 * f, 100, 180 + 10 * f, 420), RED),
        },
        {"A"},
    )
    tracker = PoseTracker(scene, scene, detect_every=20)
    ids = set()
    for f in range(30):
        scene.frame = f
        ids |= {t.track_id for t in tracker.update(scene.image())}
    assert len(scene.crops_on_sign) > 0  # the crop did find the sign
    assert ids == {1}


def test_keypoint_thresholds_follow_the_students_scores():
    """A student whose peaks sit near 0.4 (as a short training run's do): fixed thresholds of 0.5
    lose every pose; the automatic ones settle at auto_score x its median and follow everyone."""

    class LowScores(ScriptedPoseNet):
        def predict(self, image, boxes=None, rgb=False, flip_test=False):
            result = super().predict(image, boxes, rgb, flip_test)
            return PoseResult(
                result.keypoints, result.scores * (0.4 / 0.9), result.boxes, COCO17.keypoints, COCO17.limbs
            )

    def people_seen(config):
        net, detector = LowScores(), ScriptedDetector()
        tracker = PoseTracker(net, detector, config, detect_every=5)
        seen = []
        for f in range(40):
            net.frame = detector.frame = f
            seen.append(len(tracker.update(np.zeros((H, W, 3), np.uint8))))
        return seen, tracker

    fixed, _ = people_seen(TrackerConfig(keypoint_score=0.5, lost_score=0.5))
    assert sum(fixed) == 0
    auto, tracker = people_seen(TrackerConfig())
    assert tracker.scoring.keypoint_score == pytest.approx(0.6 * 0.4, abs=1e-3) == tracker.scoring.lost_score
    assert all(n >= 2 for n in auto[5:]), auto  # A and B (and C from frame 40 on) followed once calibrated
    with pytest.raises(ValueError, match=r"auto_score must be a finite number in \(0, 1\]"):
        TrackerConfig(auto_score=0)


def test_joints_out_of_view_are_not_drawn_on_a_close_up():
    """Head-and-shoulders people (as before a webcam): 7 joints in view at 0.85, the 10 the frame cuts
    off at 0.35. Tracking keeps its thresholds on the mean score, but what is reported as confident
    (and drawn) follows the best third of each pose's scores: a threshold on the mean (0.6 x 0.56 =
    0.33) would draw every cut-off joint somewhere on the person."""

    class CloseUps(ScriptedPoseNet):
        def predict(self, image, boxes=None, rgb=False, flip_test=False):
            result = super().predict(image, boxes, rgb, flip_test)
            scores = np.where(result.scores > 0.5, np.where(np.arange(17) < 7, 0.85, 0.35), result.scores)
            return PoseResult(result.keypoints, scores.astype(np.float32), result.boxes, COCO17.keypoints, COCO17.limbs)

    net, detector = CloseUps(), ScriptedDetector()
    tracker = PoseTracker(net, detector, detect_every=5)
    for f in range(20):
        net.frame = detector.frame = f
        people = tracker.update(np.zeros((H, W, 3), np.uint8))
    mean = (7 * 0.85 + 10 * 0.35) / 17
    assert tracker.scoring.keypoint_score == pytest.approx(0.6 * mean, abs=1e-3)  # tracking: unchanged
    assert len(people) == 2 and {p.track_id for p in people} == {1, 2}
    for p in people:
        assert p.keypoint_threshold == pytest.approx(0.6 * 0.85, abs=1e-3)
        assert (p.scores >= p.keypoint_threshold).sum() == 7  # the cut-off joints stay hidden


def test_nan_scores_do_not_poison_the_automatic_thresholds():
    class NaNFirst(ScriptedPoseNet):
        def predict(self, image, boxes=None, rgb=False, flip_test=False):
            result = super().predict(image, boxes, rgb, flip_test)
            scores = np.full_like(result.scores, np.nan) if self.frame < 3 else result.scores
            return PoseResult(result.keypoints, scores, result.boxes, COCO17.keypoints, COCO17.limbs)

    net, detector = NaNFirst(), ScriptedDetector()
    tracker = PoseTracker(net, detector, detect_every=5)
    for f in range(20):
        net.frame = detector.frame = f
        people = tracker.update(np.zeros((H, W, 3), np.uint8))
    assert tracker.scoring.keypoint_score == pytest.approx(0.6 * 0.9) and len(people) == 2


def jitter(sequence: np.ndarray) -> float:
    """Mean frame-to-frame keypoint displacement (pixels)."""
    return float(np.linalg.norm(np.diff(sequence, axis=0), axis=-1).mean())


def still_noisy_pose(frames: int = 120, noise: float = 2.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return person((200, 100, 290, 420))[None] + rng.normal(0, noise, (frames, 17, 2)).astype(np.float32)


def test_one_euro_cuts_jitter_of_a_still_pose():
    raw = still_noisy_pose()
    smooth = OneEuroFilter()
    out = np.stack([smooth(p, i / 30) for i, p in enumerate(raw)])
    factor = jitter(raw) / jitter(out[10:])
    assert factor > 3.5, factor  # measured figure: docs/runtime.md
    assert np.abs(out[10:].mean(axis=0) - raw.mean(axis=0)).max() < 1.0  # no drift


def test_one_euro_follows_motion_and_honours_timestamps():
    # a keypoint moving at 300 px/s: the filter's lag stays a few pixels
    t = np.arange(60) / 30
    moving = np.stack([np.stack([100 + 300 * t, 50 + 0 * t], 1)] * 1, 1)  # (60, 1, 2)
    f = OneEuroFilter()
    out = np.stack([f(p, ti) for p, ti in zip(moving, t)])
    assert np.abs(out[-1] - moving[-1]).max() < 15
    # the same noisy samples at 5 FPS are smoothed less per frame than at 30 FPS (no over-smoothing
    # of a slow camera), and a still filter with no time passing returns its last value
    raw = still_noisy_pose(frames=60)
    lag = {}
    for fps in (30, 5):
        f = OneEuroFilter()
        lag[fps] = jitter(np.stack([f(p, i / fps) for i, p in enumerate(raw)])[10:])
    assert lag[5] > 1.5 * lag[30]
    f = OneEuroFilter()
    first = f(raw[0], 1.0)
    np.testing.assert_array_equal(f(raw[1], 1.0), first)
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroConfig(min_cutoff=0)


def test_tracker_smoothing_switch_and_timestamps():
    raw = still_noisy_pose(frames=40)

    class StillNet(ScriptedPoseNet):
        def predict(self, image, boxes=None, rgb=False, flip_test=False):
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            return PoseResult(
                raw[self.frame][None].copy(),
                np.full((1, 17), 0.9, np.float32),
                boxes[:1],
                COCO17.keypoints,
                COCO17.limbs,
            )

    outputs = {}
    for smoothing in (True, False):
        net = StillNet()
        tracker = PoseTracker(net, None, smoothing=smoothing)
        seq = []
        for f in range(40):
            net.frame = f
            (track,) = tracker.update(np.zeros((H, W, 3), np.uint8), timestamp=f / 30)
            seq.append(track.keypoints)
            assert track.track_id == 1
        outputs[smoothing] = np.stack(seq)
    np.testing.assert_allclose(outputs[False], raw)  # off: the network's keypoints as they are
    assert jitter(outputs[True][10:]) < jitter(raw) / 3
    tracker = PoseTracker(StillNet(), None)
    tracker.update(np.zeros((H, W, 3), np.uint8), timestamp=2.0)
    with pytest.raises(InputError, match="timestamp 1.0 must be finite and increase"):
        tracker.update(np.zeros((H, W, 3), np.uint8), timestamp=1.0)
    with pytest.raises(InputError, match="timestamp nan"):
        tracker.update(np.zeros((H, W, 3), np.uint8), timestamp=float("nan"))


def test_frames_of_changing_size_restart_the_tracks():
    net, detector = ScriptedPoseNet(), ScriptedDetector()
    tracker = PoseTracker(net, detector, detect_every=5)
    assert len(tracker.update(np.zeros((H, W, 3), np.uint8))) == 2
    small = tracker.update(np.zeros((240, 320, 3), np.uint8))  # boxes of the old size are forgotten
    assert tracker.detections == 2 and all(t.age == 0 for t in small)
    with pytest.raises(InputError, match="empty"):
        tracker.update(np.zeros((0, 0, 3), np.uint8))


def test_real_predictor_and_detector_through_the_tracker(tmp_path):
    """The real ONNX student and a tiny ONNX YOLO-layout detector, end to end (untrained weights:
    keypoint thresholds are opened up so every pose counts)."""
    import cv2
    from runtime_artifacts import export_onnx, make_student
    from test_detector import export_tiny_yolo

    from okdhp_edge.runtime import Detector, Predictor, tracks_result

    predictor = Predictor(export_onnx(make_student(tmp_path), tmp_path), num_threads=1)
    detector = Detector(export_tiny_yolo(tmp_path / "tiny.onnx"), num_threads=1, score_threshold=0.5)
    config = TrackerConfig(keypoint_score=-1.0, lost_score=-1.0)
    tracker = PoseTracker(predictor, detector, config, detect_every=3)
    for f in range(6):
        frame = np.zeros((128, 128, 3), np.uint8)
        frame[16:80, 16 + 2 * f : 48 + 2 * f] = (0, 0, 255)  # one red 'person' the tiny detector finds
        tracks = tracker.update(frame)
        assert len(tracks) >= 1 and tracks[0].keypoints.shape == (17, 2) and tracks[0].scores.shape == (17,)
        drawn = draw_tracks(frame.copy(), tracks, predictor.skeleton, min_score=-1)
        assert np.abs(drawn.astype(int) - frame).sum() > 0
    assert tracker.detections == 2  # frames 0 and 3
    assert tracks_result(tracks, predictor.skeleton).keypoints.shape == (len(tracks), 17, 2)
    assert cv2.imencode(".png", drawn)[0]


def test_tracker_and_detector_stay_torch_free():
    script = (
        "import sys, numpy as np\n"
        "from okdhp_edge.runtime import Detector, PoseTracker, OneEuroFilter, draw_tracks\n"
        "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'okdhp_edge.models', "
        "'okdhp_edge.train', 'okdhp_edge.data')))\n"
        "print('LEAKED', leaked)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "LEAKED []" in proc.stdout, proc.stdout


def test_benchmark_identity_errors_against_teacher_tracklets(tmp_path):
    """benchmarks/tracking.py's yardstick: teacher boxes linked into tracklets that end where two
    people cross, then a tracker's ID changes along a tracklet and IDs on two people at once."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from tracking import identity_errors, teacher_tracklets

    def a(f):  # walks right
        return np.array([10.0 + 5 * f, 50, 50 + 5 * f, 150])

    def b(f):  # walks left, crossing A around frame 20
        return np.array([210.0 - 5 * f, 60, 250 - 5 * f, 160])

    (tmp_path / "annotations").mkdir()
    for split, frames in (("train", range(0, 30)), ("val", range(30, 40))):
        images = [{"id": f + 1, "file_name": f"vtest-0000-{f:06d}.jpg"} for f in frames]
        annotations = [
            {"image_id": f + 1, "bbox": [*box[:2], *(box[2:] - box[:2])], "num_keypoints": 17}
            for f in frames
            for box in (a(f), b(f))
        ]
        (tmp_path / "annotations" / f"person_keypoints_{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations})
        )
    tracklets = teacher_tracklets(tmp_path, min_frames=5)
    assert len(tracklets) == 4  # each person before and after the crossing, across the two splits
    for t in tracklets:  # each holds one person: it moves one way only
        xs = [t[f][0] for f in sorted(t)]
        assert xs == sorted(xs) or xs == sorted(xs, reverse=True)
    assert sum(len(t) for t in tracklets) < 80  # the frames around the crossing are left out

    follows = {1: [(f, a(f)) for f in range(40)], 2: [(f, b(f)) for f in range(40)]}
    assert identity_errors(follows, tracklets) == {"fragmented": 0, "takeovers": 0}
    renamed = {1: [(f, a(f)) for f in range(10)], 3: [(f, a(f)) for f in range(10, 40)], 2: follows[2]}
    assert identity_errors(renamed, tracklets) == {"fragmented": 1, "takeovers": 0}
    swapped = {
        1: [(f, a(f)) for f in range(10)] + [(f, b(f)) for f in range(10, 40)],
        2: [(f, b(f)) for f in range(10)],
    }
    assert identity_errors(swapped, tracklets)["takeovers"] >= 1
