"""`PoseTracker`: several people on video, each with a stable ID and steady keypoints.

Per frame: each track's crop is its last box moved on by its velocity (measured on the joints
seen on both frames), also for `coast` frames after its pose was lost, so the pose network follows
people without a detector. Every `detect_every` frames, and whenever nobody is tracked, the
detector runs too: a detection that overlaps a tracked crop replaces it (a fresh box fixes a crop
that drifted), the others are newcomers; only poses found in a detection's crop may start tracks.
A new track is tentative until its pose is found again on the next `confirm` - 1 frames: only
then does it get an ID and appear in the output, so a one-frame false find costs no ID (on the
stream's first frame, tracks are confirmed at once). Poses that are lost (too few confident
keypoints) are dropped, duplicates (two crops on one person)
are merged by OKS-NMS, and poses are matched to tracks in two rounds, on box IoU + OKS and then on
nearness, each gated by the colours of the person's clothes (appearance.py), so that a passer-by
does not take the ID of someone hidden. A pose that lost its legs or head keeps the track's
whole-body box. A track that finds no pose is kept, moving on its velocity, for `max_age` frames,
so an ID survives a crossing or a short occlusion. Keypoints are smoothed by a One-Euro filter.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import numpy as np

from ..skeleton import Skeleton
from .appearance import colour_signature, colour_similarity
from .boxes import box_areas, clip_boxes, iou_matrix, oks_matrix
from .errors import InputError
from .one_euro import OneEuroConfig, OneEuroFilter
from .predictor import check_image
from .result import PoseResult

__all__ = ["PoseTracker", "TrackedPose", "TrackerConfig", "keypoint_box"]

DetectorFn = Callable[[np.ndarray], np.ndarray]
AUTO_POSES = 8  # auto thresholds: poses in detections' crops seen before the student's scores are trusted
AUTO_PRIOR = 0.5  # the thresholds until then
# TrackerConfig's whole-number fields and their least values; its other numbers (finite) and their rules
COUNTS = {"detect_every": 0, "max_people": 1, "max_age": 0, "coast": 0, "confirm": 1, "min_keypoints": 1}
SHARE: tuple[Callable[[float], bool], str] = (lambda v: 0 <= v <= 1, "in [0, 1]")
AT_LEAST_0: tuple[Callable[[float], bool], str] = (lambda v: v >= 0, ">= 0")
OR_AUTO: tuple[Callable[[float], bool], str] = (lambda v: True, "or None (auto)")
NUMBERS = {
    "fps": (lambda v: v > 0, "> 0"), "match_threshold": SHARE, "near_distance": AT_LEAST_0, "match_colour": SHARE,
    "near_colour": SHARE, "colour_update": SHARE, "duplicate_oks": SHARE, "replace_iou": SHARE, "keypoint_score": OR_AUTO,
    "lost_score": OR_AUTO, "auto_score": (lambda v: 0 < v <= 1, "in (0, 1]"), "margin": AT_LEAST_0, "min_box_size": AT_LEAST_0,
    "partial_height": SHARE,
}


class PosePredictor(Protocol):
    """What the tracker needs from a Predictor."""

    skeleton: Skeleton

    def predict(self, image: np.ndarray, boxes: np.ndarray | None = None, rgb: bool = False, flip_test: bool = False) -> PoseResult: ...


@dataclass
class TrackerConfig:
    """Thresholds on keypoints are on heatmap peak scores (as in PoseResult.scores), whose scale
    depends on the student: left at None, keypoint_score and lost_score follow the student's own
    scores, `auto_score` times the median mean score of the poses found in detections' crops (0.5
    until AUTO_POSES of them are seen; docs/runtime.md: how the share was chosen)."""

    detect_every: int = 5  # with a detector: run it every this many frames (1: every frame; 0: only when nobody is tracked)
    max_people: int = 8  # the most tracks followed at once
    max_age: int = 15  # frames a track is kept without a pose before its ID is dropped
    coast: int = 2  # a track that lost its pose still gets a crop, where its velocity takes it, for this many frames
    confirm: int = 2  # frames in a row a new track must be seen on before it gets an ID and is reported (1: at once)
    smoothing: OneEuroConfig | None = field(default_factory=OneEuroConfig)  # None: raw keypoints
    fps: float = 30.0  # frame rate assumed for smoothing when update() gets no timestamp
    match_threshold: float = 0.2  # least (IoU + OKS) / 2 for a pose to continue a track
    near_distance: float = 0.5  # then: a pose this near a track's predicted box (centre distance / box height) continues it
    match_colour: float = 0.5  # least colour similarity (appearance.py) for a pose to continue a track on IoU + OKS
    near_colour: float = 0.7  # and on nearness
    colour_update: float = 0.1  # weight of each new whole-body pose in a track's colours
    duplicate_oks: float = 0.5  # poses more similar than this are one person (OKS-NMS)
    replace_iou: float = 0.3  # a detection overlapping a tracked crop this much replaces the crop
    keypoint_score: float | None = None  # keypoints at least this confident place the next crop; None: auto
    min_keypoints: int = 4  # fewer confident keypoints than this: the pose is lost
    lost_score: float | None = None  # mean score below this: the pose is lost; None: auto
    auto_score: float = 0.6  # auto thresholds: this share of the median mean score of poses in detections' crops
    margin: float = 0.15  # grow the keypoint box by this fraction of its size on each side
    min_box_size: float = 16.0  # pixels; a box never shrinks below this
    partial_height: float = 0.7  # a pose whose box is under this share of its track's body height is partial: the body's box is kept
    flip_test: bool = False

    def __post_init__(self) -> None:
        """Every field checked here, so a bad setting (say, from a settings file) is named at once
        instead of surfacing frames later as an odd error or silently odd tracking."""
        for name, least in COUNTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"TrackerConfig.{name} must be a whole number >= {least}, got {value!r}")
        for name, (allowed, rule) in NUMBERS.items():
            value = getattr(self, name)
            if value is None and rule == OR_AUTO[1]:
                continue
            number = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
            if not (number and math.isfinite(value) and allowed(value)):
                raise ValueError(f"TrackerConfig.{name} must be a finite number {rule}, got {value!r}")
        if self.smoothing is not None and not isinstance(self.smoothing, OneEuroConfig):
            raise ValueError(f"TrackerConfig.smoothing must be a OneEuroConfig or None (raw keypoints), got {self.smoothing!r}")
        if not isinstance(self.flip_test, (bool, np.bool_)):
            raise ValueError(f"TrackerConfig.flip_test must be True or False, got {self.flip_test!r}")


@dataclass
class TrackedPose:
    """One person on one frame. age: frames since the track started (0 on its first frame)."""

    track_id: int
    box: np.ndarray  # (4,) xyxy around the confident keypoints
    keypoints: np.ndarray  # (K, 2) image pixels, smoothed unless smoothing is off
    scores: np.ndarray  # (K,) heatmap peak values
    age: int


@dataclass
class _Pose:
    box: np.ndarray  # around the confident keypoints
    keypoints: np.ndarray
    scores: np.ndarray
    colour: np.ndarray  # colour_signature of the box
    fresh: bool  # from a detection (or the whole frame): may start a track


@dataclass
class _Track:
    track_id: int  # 0 while tentative
    box: np.ndarray
    keypoints: np.ndarray  # raw, for matching and crop placement
    scores: np.ndarray
    colour: np.ndarray  # running mean of the whole-body poses' colour signatures
    size: np.ndarray  # (2,) running width and height of the whole-body poses' boxes
    body: np.ndarray  # the whole body's box, not clipped to the frame (box is, so a cut body's centre would creep)
    smoothed: np.ndarray
    smoother: OneEuroFilter | None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # pixels per frame
    age: int = 0
    missed: int = 0

    def predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """Box and keypoints moved on by the velocity for the frames since the last pose."""
        shift = self.velocity * (self.missed + 1)
        return self.box + np.tile(shift, 2), self.keypoints + shift


def _nearness(tracks: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """1 - centre distance / track box height for each track x pose; -1 where the heights differ by over 2x."""
    centre = lambda b: (b[:, :2] + b[:, 2:]) / 2
    height_t = np.clip(tracks[:, 3] - tracks[:, 1], 1, None)[:, None]
    height_p = np.clip(poses[:, 3] - poses[:, 1], 1, None)[None]
    distance = np.linalg.norm(centre(tracks)[:, None] - centre(poses)[None], axis=-1) / height_t
    ratio = np.maximum(height_t / height_p, height_p / height_t)
    return np.where(ratio <= 2.0, 1.0 - distance, -1.0)


def keypoint_box(keypoints: np.ndarray, scores: np.ndarray, config: TrackerConfig, width: int, height: int) -> np.ndarray | None:
    """xyxy box around one person's confident keypoints, grown and clipped; None when lost.
    Thresholds left at None (auto) count as AUTO_PRIOR here: PoseTracker.scoring has the settled ones."""
    keypoint_score = AUTO_PRIOR if config.keypoint_score is None else config.keypoint_score
    lost_score = AUTO_PRIOR if config.lost_score is None else config.lost_score
    confident = scores >= keypoint_score
    if confident.sum() < config.min_keypoints or scores.mean() < lost_score:
        return None
    pts = keypoints[confident]
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    bw = max((x2 - x1) * (1 + 2 * config.margin), config.min_box_size)
    bh = max((y2 - y1) * (1 + 2 * config.margin), config.min_box_size)
    box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], np.float32)
    box[[0, 2]] = box[[0, 2]].clip(0, width - 1)
    box[[1, 3]] = box[[1, 3]].clip(0, height - 1)
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return None
    return box


class PoseTracker:
    """Feed frames in order with `update(frame, timestamp)`; returns the people on that frame.

    detector: a `Detector` or any callable frame -> (N, 4+) xyxy boxes (extra columns ignored).
    Without one, a frame where nobody is tracked is taken as one person filling the frame.
    detect_every / max_people / max_age / smoothing override the config's fields; smoothing is
    True (the default One-Euro settings), False (off) or a OneEuroConfig.
    """

    def __init__(
        self,
        predictor: PosePredictor,
        detector: DetectorFn | None = None,
        config: TrackerConfig | None = None,
        *,
        detect_every: int | None = None,
        max_people: int | None = None,
        max_age: int | None = None,
        smoothing: bool | OneEuroConfig | None = None,
    ) -> None:
        config = config or TrackerConfig()
        overrides: dict = {k: v for k, v in (("detect_every", detect_every), ("max_people", max_people), ("max_age", max_age)) if v is not None}
        if smoothing is not None:
            overrides["smoothing"] = (OneEuroConfig() if smoothing is True else None) if isinstance(smoothing, bool) else smoothing
        self.config = TrackerConfig(**{**config.__dict__, **overrides})
        self.predictor = predictor
        self.detector = detector
        sigmas = predictor.skeleton.sigmas
        self._sigmas = np.asarray(sigmas, np.float64) if sigmas else None
        self.tracks: list[_Track] = []
        self.detections = 0  # detector calls so far
        self._found_scores: deque[float] = deque(maxlen=256)  # mean scores of poses in detections' crops
        self.scoring = self._resolved()  # the config with its keypoint thresholds settled
        self._next_id = 1
        self._since_detect = 0
        self._frames = 0  # frames since the start or the last reset
        self._size: tuple[int, int] | None = None
        self._time: float | None = None

    def reset(self) -> None:
        """Forget every track and the last timestamp (e.g. after a scene cut, or before another
        video, whose timestamps may start again at 0); IDs keep counting up."""
        self.tracks = []
        self._since_detect = 0
        self._frames = 0
        self._time = None

    def update(self, frame: np.ndarray, timestamp: float | None = None, rgb: bool = False) -> list[TrackedPose]:
        """The people on `frame`, sorted by track ID. timestamp: seconds (e.g. the capture's
        CAP_PROP_POS_MSEC / 1000), increasing; None assumes `config.fps`."""
        frame = check_image(frame)
        height, width = frame.shape[:2]
        if self._size != (width, height):
            self.reset()  # boxes from another frame size mean nothing here
            self._size = (width, height)
        now = self._clock(timestamp)
        self._since_detect += 1
        self._frames += 1
        live = sorted((t for t in self.tracks if t.missed <= self.config.coast), key=lambda t: t.missed)[:self.config.max_people]
        crops = clip_boxes(np.array([t.predicted()[0] for t in live], np.float32).reshape(-1, 4), width, height)
        every = self.config.detect_every
        looked = not len(crops) or (self.detector is not None and every > 0 and self._since_detect >= every)
        fresh = np.zeros(len(crops), bool)
        if looked:
            crops, fresh = self._initial_crops(frame, crops)
        poses = self._poses(frame, crops, fresh, rgb)
        if not poses and not looked:
            poses = self._poses(frame, *self._initial_crops(frame, crops[:0]), rgb)  # every pose lost: look again now
        self._assign(frame, poses, now)
        return [
            TrackedPose(t.track_id, t.box.copy(), t.smoothed.copy(), t.scores.copy(), t.age)
            for t in sorted(self.tracks, key=lambda t: t.track_id) if t.missed == 0 and t.track_id
        ]

    # -- steps ---------------------------------------------------------------------------------

    def _resolved(self) -> TrackerConfig:
        """The config with keypoint_score / lost_score set: as given, or from the student's scores."""
        config = self.config
        if config.keypoint_score is not None and config.lost_score is not None:
            return config
        auto = AUTO_PRIOR
        if len(self._found_scores) >= AUTO_POSES:
            auto = config.auto_score * float(np.median(self._found_scores))
        return replace(config, keypoint_score=auto if config.keypoint_score is None else config.keypoint_score,
                       lost_score=auto if config.lost_score is None else config.lost_score)

    def _clock(self, timestamp: float | None) -> float:
        if timestamp is None:
            now = 0.0 if self._time is None else self._time + 1.0 / self.config.fps
        else:
            now = float(timestamp)
            if not math.isfinite(now) or (self._time is not None and now <= self._time):
                raise InputError(
                    f"timestamp {timestamp!r} must be finite and increase from frame to frame (last: {self._time}); "
                    "pass seconds, e.g. capture.get(cv2.CAP_PROP_POS_MSEC) / 1000, or None to assume config.fps"
                )
        self._time = now
        return now

    def _initial_crops(self, frame: np.ndarray, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tracked crops with detections merged in: overlapping ones replace crops, others are added.
        Without a detector: the crops, or the whole frame when there are none. Also which crops are
        fresh (a detection's, or the whole frame): only their poses may start new tracks."""
        if self.detector is None:
            height, width = frame.shape[:2]
            if len(crops):
                return crops, np.zeros(len(crops), bool)
            return np.array([[0, 0, width - 1, height - 1]], np.float32), np.ones(1, bool)
        self.detections += 1
        self._since_detect = 0
        found = np.asarray(self.detector(frame), np.float32)
        if found.size and (found.ndim == 0 or found.shape[-1] < 4):
            raise InputError(f"the detector returned an array of shape {found.shape}; PoseTracker expects (N, 4+) boxes, "
                             "x1, y1, x2, y2 in pixels first (extra columns such as a score are ignored)")
        found = found.reshape(-1, found.shape[-1] if found.size else 4)[:, :4]
        found = clip_boxes(found[np.isfinite(found).all(axis=1)], frame.shape[1], frame.shape[0])
        crops = crops.copy()
        fresh = np.zeros(len(crops), bool)
        extra = []
        overlap = iou_matrix(found, crops)
        for i in range(len(found)):
            j = int(overlap[i].argmax()) if overlap.shape[1] else -1
            if j >= 0 and overlap[i, j] >= self.config.replace_iou:
                crops[j], fresh[j] = found[i], True
                overlap[:, j] = -1  # one detection per crop
            else:
                extra.append(found[i])
        extra = np.array(extra[:max(self.config.max_people - len(crops), 0)], np.float32).reshape(-1, 4)
        return np.concatenate([crops, extra]), np.concatenate([fresh, np.ones(len(extra), bool)])

    def _poses(self, frame: np.ndarray, crops: np.ndarray, fresh: np.ndarray, rgb: bool) -> list[_Pose]:
        """The poses found in `crops`, lost ones dropped, duplicates merged (fresh if any of them
        was), each with its colours."""
        if not len(crops):
            return []
        result = self.predictor.predict(frame, crops, rgb, self.config.flip_test)
        height, width = frame.shape[:2]
        means = [float(s.mean()) for s, is_fresh in zip(result.scores, fresh) if is_fresh]
        self._found_scores.extend(m for m in means if math.isfinite(m))
        self.scoring = self._resolved()
        poses = []
        for kpts, scores, is_fresh in zip(result.keypoints, result.scores, fresh):
            box = keypoint_box(kpts, scores, self.scoring, width, height)
            if box is not None:
                poses.append(_Pose(box, kpts, scores, colour_signature(frame, box), bool(is_fresh)))
        if len(poses) < 2:
            return poses
        poses.sort(key=lambda p: -float(p.scores.mean()))
        kpts = np.stack([p.keypoints for p in poses])
        areas = box_areas(np.stack([p.box for p in poses]))
        visible = np.stack([p.scores >= self.scoring.keypoint_score for p in poses])
        oks = oks_matrix(kpts, kpts, areas, self._sigmas, visible)
        kept: list[int] = []
        for i in range(len(poses)):
            twin = next((k for k in kept if oks[k, i] > self.config.duplicate_oks), None)
            if twin is None:
                kept.append(i)
            else:
                poses[twin].fresh |= poses[i].fresh
        return [poses[i] for i in kept]

    def _assign(self, frame: np.ndarray, poses: list[_Pose], now: float) -> None:
        """Poses to tracks, greedily, in two rounds: on (IoU + OKS) / 2 against each track's
        predicted box and keypoints, then, for what is left, on nearness (which finds a track whose
        box jumped); both gated by colour. A pose that is part of a track's body is compared with
        the bands of the track's colours that it covers, on the body's box. Then new tracks,
        ageing, dropping."""
        matched_tracks: set[int] = set()
        matched_poses: set[int] = set()
        if self.tracks and poses:
            config = self.config
            predicted = [t.predicted() for t in self.tracks]
            track_boxes = np.stack([p[0] for p in predicted])
            track_kpts = np.stack([p[1] for p in predicted])
            areas = box_areas(track_boxes)
            visible = np.stack([t.scores >= self.scoring.keypoint_score for t in self.tracks])
            pose_boxes = np.stack([p.box for p in poses])
            similarity = 0.5 * iou_matrix(track_boxes, pose_boxes) + 0.5 * oks_matrix(
                track_kpts, np.stack([p.keypoints for p in poses]), areas, self._sigmas, visible)
            colour = colour_similarity(np.stack([t.colour for t in self.tracks]), np.stack([p.colour for p in poses]))
            for ti, track in enumerate(self.tracks):
                for pi, pose in enumerate(poses):
                    if self._partial(track, pose):
                        part = colour_signature(frame, self._body_box(track, self._shift(track, pose)), seen=pose.box)
                        if part.any():
                            colour[ti, pi] = colour_similarity(track.colour[None], part[None])[0, 0]
            nearness = _nearness(track_boxes, pose_boxes)
            rounds = (
                (similarity, similarity >= config.match_threshold, config.match_colour),
                (nearness, nearness >= 1.0 - config.near_distance, config.near_colour),
            )
            for motion, close, least_colour in rounds:
                allowed = close & (colour >= least_colour)
                score = np.where(allowed, motion + colour, -np.inf)
                for flat in np.argsort(-score, axis=None):
                    ti, pi = np.unravel_index(flat, score.shape)
                    if not allowed[ti, pi]:
                        break
                    if ti in matched_tracks or pi in matched_poses:
                        continue
                    matched_tracks.add(int(ti))
                    matched_poses.add(int(pi))
                    self._continue(self.tracks[ti], poses[pi], now)
        for i, track in enumerate(self.tracks):
            track.age += 1
            if i not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= (self.config.max_age if t.track_id else 0)]  # a tentative miss ends it
        for i, pose in enumerate(poses):
            if pose.fresh and i not in matched_poses and sum(t.missed == 0 for t in self.tracks) < self.config.max_people:
                self.tracks.append(self._start(pose, now))

    def _start(self, pose: _Pose, now: float) -> _Track:
        smoother = OneEuroFilter(self.config.smoothing) if self.config.smoothing is not None else None
        smoothed = smoother(pose.keypoints, now) if smoother is not None else pose.keypoints
        track = _Track(0, pose.box, pose.keypoints, pose.scores, pose.colour, pose.box[2:] - pose.box[:2], pose.box, smoothed, smoother)
        if self.config.confirm <= 1 or self._frames == 1:
            self._confirm(track)
        return track

    def _confirm(self, track: _Track) -> None:
        track.track_id = self._next_id
        self._next_id += 1

    def _shift(self, track: _Track, pose: _Pose) -> np.ndarray:
        """How the person moved from the track's last pose to `pose`: the median move of the joints
        seen on both (box centres also move when limbs drop out), else of the box centres."""
        threshold = self.scoring.keypoint_score
        both = (pose.scores >= threshold) & (track.scores >= threshold)
        if both.sum() >= 2:
            return np.median(pose.keypoints[both] - track.keypoints[both], axis=0)
        return ((pose.box[:2] + pose.box[2:]) - (track.box[:2] + track.box[2:])) / 2

    def _partial(self, track: _Track, pose: _Pose) -> bool:
        """Whether `pose` shows only part of the track's body (legs or head lost, or cut by the frame)."""
        return bool(pose.box[3] - pose.box[1] < self.config.partial_height * track.size[1])

    @staticmethod
    def _body_box(track: _Track, shift: np.ndarray) -> np.ndarray:
        """The track's whole-body box moved by `shift`, not clipped to the frame."""
        centre = (track.body[:2] + track.body[2:]) / 2 + shift
        return np.concatenate([centre - track.size / 2, centre + track.size / 2]).astype(np.float32)

    def _continue(self, track: _Track, pose: _Pose, now: float) -> None:
        frames = track.missed + 1
        box, keypoints, scores = pose.box, pose.keypoints, pose.scores
        shift = self._shift(track, pose)
        track.velocity = (0.5 * track.velocity + 0.5 * shift / frames).astype(np.float32)
        size = box[2:] - box[:2]
        if self._partial(track, pose):  # legs or head lost: the whole body's box, moved
            track.size = 0.95 * track.size + 0.05 * size  # (a size that was too big shrinks slowly)
            track.body = self._body_box(track, shift)
            inside = clip_boxes(track.body[None], *self._size)
            box = inside[0] if len(inside) else box  # a body box moved wholly out of the frame: the pose's own
        else:  # a whole body: its size and colours update the track's
            track.body = box
            track.size = 0.5 * track.size + 0.5 * size
            colour = (1 - self.config.colour_update) * track.colour + self.config.colour_update * pose.colour
            track.colour = colour / max(float(np.linalg.norm(colour)), 1e-6)
        # a tentative track has had a pose on every frame since its start (one miss ends it), so this
        # frame is its (age + 2)-th: age is 0 on its first frame and counts up after this call
        if not track.track_id and track.age + 2 >= self.config.confirm:
            self._confirm(track)
        track.box, track.keypoints, track.scores, track.missed = box, keypoints, scores, 0
        track.smoothed = track.smoother(keypoints, now) if track.smoother is not None else keypoints
