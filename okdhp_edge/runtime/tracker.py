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
import os
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from ..boxes import box_areas, clip_boxes, iou_matrix, oks_matrix
from ..skeleton import Skeleton
from .appearance import colour_signature, colour_similarity
from .bundled import DEFAULT_POSE_MODEL
from .detector import Detector
from .errors import InputError
from .one_euro import OneEuroConfig, OneEuroFilter
from .predictor import Predictor, check_image
from .result import TRACK_STATES, PoseResult, TrackedPose
from .tracker_config import TrackerConfig

__all__ = ["TRACK_STATES", "PoseTracker", "TrackedPose", "TrackerConfig", "keypoint_box"]

DetectorFn = Callable[[np.ndarray], np.ndarray]
AUTO_POSES = 8  # auto thresholds: poses in detections' crops seen before the student's scores are trusted
AUTO_PRIOR = 0.5  # the thresholds until then


class PosePredictor(Protocol):
    """What the tracker needs from a Predictor."""

    skeleton: Skeleton

    def predict(
        self, image: np.ndarray, boxes: np.ndarray | None = None, rgb: bool = False, flip_test: bool = False
    ) -> PoseResult: ...


@dataclass
class _Pose:
    box: np.ndarray  # around the confident keypoints
    keypoints: np.ndarray
    scores: np.ndarray
    colour: np.ndarray  # colour_signature of the box
    fresh: bool  # from a detection (or the whole frame): may start a track
    detection_score: float | None  # the detector's score for the crop's box; None: not a scored detection


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
    detection_score: float | None = None  # of this frame's pose (_Pose.detection_score)

    @property
    def state(self) -> str:
        return "tentative" if not self.track_id else "coasting" if self.missed else "confirmed"

    def predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """Box and keypoints moved on by the velocity for the frames since the last pose."""
        shift = self.velocity * (self.missed + 1)
        return self.box + np.tile(shift, 2), self.keypoints + shift


def _nearness(tracks: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """1 - centre distance / track box height for each track x pose; -1 where the heights differ by over 2x."""

    def centre(b: np.ndarray) -> np.ndarray:
        return (b[:, :2] + b[:, 2:]) / 2

    height_t = np.clip(tracks[:, 3] - tracks[:, 1], 1, None)[:, None]
    height_p = np.clip(poses[:, 3] - poses[:, 1], 1, None)[None]
    distance = np.linalg.norm(centre(tracks)[:, None] - centre(poses)[None], axis=-1) / height_t
    ratio = np.maximum(height_t / height_p, height_p / height_t)
    return np.where(ratio <= 2.0, 1.0 - distance, -1.0)


def keypoint_box(
    keypoints: np.ndarray, scores: np.ndarray, config: TrackerConfig, width: int, height: int
) -> np.ndarray | None:
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
    box = clip_boxes(np.array([[cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]], np.float32), width, height)
    return box[0] if len(box) else None


class PoseTracker:
    """Feed frames in order with `tracker(frame, timestamp)` (or `update`); returns the people on that frame.

    With no arguments it runs the default bundled student ("real-tiny") and the default `Detector()`.
    predictor: a `Predictor` (or anything with its `predict` and `skeleton`), or a model name or
    path for one. detector: a `Detector`, any callable frame -> (N, 4+) xyxy boxes (a fifth column
    is taken as the score, further ones ignored), a name or path for Detector ("default",
    "okdhp-person", "mediapipe", a YOLO export), or None: then a frame where nobody is tracked is
    taken as one person filling the frame. config: a TrackerConfig, a dict of its fields, or a
    YAML file of them (TrackerConfig.from_dict / from_yaml). detect_every / max_people / max_age /
    smoothing override the config's fields; smoothing is True (the default One-Euro settings),
    False (off) or a OneEuroConfig.
    """

    def __init__(
        self,
        predictor: PosePredictor | str | os.PathLike = DEFAULT_POSE_MODEL,
        detector: DetectorFn | str | os.PathLike | Sequence[str | os.PathLike] | None = "default",
        config: TrackerConfig | Mapping[str, Any] | str | os.PathLike | None = None,
        *,
        detect_every: int | None = None,
        max_people: int | None = None,
        max_age: int | None = None,
        smoothing: bool | OneEuroConfig | None = None,
    ) -> None:
        config = _load_config(config)
        overrides: dict = {
            k: v
            for k, v in (("detect_every", detect_every), ("max_people", max_people), ("max_age", max_age))
            if v is not None
        }
        if smoothing is not None:
            overrides["smoothing"] = (
                (OneEuroConfig() if smoothing is True else None) if isinstance(smoothing, bool) else smoothing
            )
        self.config = TrackerConfig(**{**config.__dict__, **overrides})
        self.predictor: PosePredictor = Predictor(predictor) if isinstance(predictor, (str, os.PathLike)) else predictor
        self.detector: DetectorFn | None = (
            Detector(detector) if isinstance(detector, (str, os.PathLike, list, tuple)) else detector
        )
        self.skeleton: Skeleton = self.predictor.skeleton
        sigmas = self.skeleton.sigmas
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

    def __repr__(self) -> str:
        return f"PoseTracker({self.predictor!r}, {self.detector!r})"

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
        live = sorted((t for t in self.tracks if t.missed <= self.config.coast), key=lambda t: t.missed)[
            : self.config.max_people
        ]
        crops = clip_boxes(np.array([t.predicted()[0] for t in live], np.float32).reshape(-1, 4), width, height)
        every = self.config.detect_every
        looked = not len(crops) or (self.detector is not None and every > 0 and self._since_detect >= every)
        fresh = np.zeros(len(crops), bool)
        scores = np.full(len(crops), np.nan, np.float32)
        if looked:
            crops, fresh, scores = self._initial_crops(frame, crops)
        poses = self._poses(frame, crops, fresh, scores, rgb)
        if not poses and not looked:
            poses = self._poses(frame, *self._initial_crops(frame, crops[:0]), rgb)  # every pose lost: look again now
        self._assign(frame, poses, now)
        return self._people()

    def __call__(self, frame: np.ndarray, timestamp: float | None = None, rgb: bool = False) -> list[TrackedPose]:
        """The same as `update`: a tracker is the one pipeline object an app calls per frame."""
        return self.update(frame, timestamp, rgb)

    # -- steps ---------------------------------------------------------------------------------

    def _people(self) -> list[TrackedPose]:
        """The tracks to report (config.report), tentative ones last; a coasting track where its
        velocity takes it since its last pose."""
        threshold = float(self.scoring.keypoint_score)
        people = []
        for t in sorted(self.tracks, key=lambda t: (not t.track_id, t.track_id)):
            state = t.state
            if state != "confirmed" and self.config.report != "all":
                continue
            shift = t.velocity * t.missed
            people.append(
                TrackedPose(
                    t.track_id,
                    (t.box + np.tile(shift, 2)).astype(np.float32),
                    (t.smoothed + shift).astype(np.float32),
                    t.scores.copy(),
                    t.age,
                    state,
                    t.detection_score if state != "coasting" else None,
                    threshold,
                    self.skeleton.keypoints,
                    self.skeleton.limbs,
                )
            )
        return people

    def _resolved(self) -> TrackerConfig:
        """The config with keypoint_score / lost_score set: as given, or from the student's scores."""
        config = self.config
        if config.keypoint_score is not None and config.lost_score is not None:
            return config
        auto = AUTO_PRIOR
        if len(self._found_scores) >= AUTO_POSES:
            auto = config.auto_score * float(np.median(self._found_scores))
        return replace(
            config,
            keypoint_score=auto if config.keypoint_score is None else config.keypoint_score,
            lost_score=auto if config.lost_score is None else config.lost_score,
        )

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

    def _initial_crops(self, frame: np.ndarray, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tracked crops with detections merged in: overlapping ones replace crops, others are added.
        Without a detector: the crops, or the whole frame when there are none. Also which crops are
        fresh (a detection's, or the whole frame): only their poses may start new tracks; and each
        crop's detection score (NaN: not a scored detection)."""
        if self.detector is None:
            height, width = frame.shape[:2]
            if len(crops):
                return crops, np.zeros(len(crops), bool), np.full(len(crops), np.nan, np.float32)
            return (
                np.array([[0, 0, width - 1, height - 1]], np.float32),
                np.ones(1, bool),
                np.full(1, np.nan, np.float32),
            )
        self.detections += 1
        self._since_detect = 0
        found = np.asarray(self.detector(frame), np.float32)
        if found.size and (found.ndim == 0 or found.shape[-1] < 4):
            raise InputError(
                f"the detector returned an array of shape {found.shape}; PoseTracker expects (N, 4+) boxes, "
                "x1, y1, x2, y2 in pixels first (extra columns such as a score are ignored)"
            )
        found = found.reshape(-1, found.shape[-1] if found.size else 4)
        found = np.concatenate(
            [found[:, :4], found[:, 4:5] if found.shape[1] > 4 else np.full((len(found), 1), np.nan)], axis=1
        )
        found = clip_boxes(
            found[np.isfinite(found[:, :4]).all(axis=1)], frame.shape[1], frame.shape[0]
        )  # x1, y1, x2, y2, score
        crops = crops.copy()
        fresh = np.zeros(len(crops), bool)
        scores = np.full(len(crops), np.nan, np.float32)
        extra = []
        overlap = iou_matrix(found[:, :4], crops)
        for i in range(len(found)):
            j = int(overlap[i].argmax()) if overlap.shape[1] else -1
            if j >= 0 and overlap[i, j] >= self.config.replace_iou:
                crops[j], fresh[j], scores[j] = found[i, :4], True, found[i, 4]
                overlap[:, j] = -1  # one detection per crop
            else:
                extra.append(found[i])
        extra = np.array(extra[: max(self.config.max_people - len(crops), 0)], np.float32).reshape(-1, 5)
        return (
            np.concatenate([crops, extra[:, :4]]),
            np.concatenate([fresh, np.ones(len(extra), bool)]),
            np.concatenate([scores, extra[:, 4]]),
        )

    def _poses(
        self, frame: np.ndarray, crops: np.ndarray, fresh: np.ndarray, scores: np.ndarray, rgb: bool
    ) -> list[_Pose]:
        """The poses found in `crops`, lost ones dropped, duplicates merged (fresh, and scored, if
        any of them was), each with its colours and its crop's detection score."""
        if not len(crops):
            return []
        result = self.predictor.predict(frame, crops, rgb, self.config.flip_test)
        height, width = frame.shape[:2]
        means = [float(s.mean()) for s, is_fresh in zip(result.scores, fresh) if is_fresh]
        self._found_scores.extend(m for m in means if math.isfinite(m))
        self.scoring = self._resolved()
        poses = []
        for kpts, kpt_scores, is_fresh, found in zip(result.keypoints, result.scores, fresh, scores):
            box = keypoint_box(kpts, kpt_scores, self.scoring, width, height)
            if box is not None:
                detection = float(found) if math.isfinite(found) else None
                poses.append(_Pose(box, kpts, kpt_scores, colour_signature(frame, box), bool(is_fresh), detection))
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
                if poses[twin].detection_score is None:
                    poses[twin].detection_score = poses[i].detection_score
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
                track_kpts, np.stack([p.keypoints for p in poses]), areas, self._sigmas, visible
            )
            colour = colour_similarity(np.stack([t.colour for t in self.tracks]), np.stack([p.colour for p in poses]))
            nearness = _nearness(track_boxes, pose_boxes)
            # only pairs that some round could match: a far person is "part" of every taller track
            close = (similarity >= config.match_threshold) | (nearness >= 1.0 - config.near_distance)
            for ti, pi in zip(*np.nonzero(close)):
                track, pose = self.tracks[ti], poses[pi]
                if self._partial(track, pose):
                    part = colour_signature(frame, self._body_box(track, self._shift(track, pose)), seen=pose.box)
                    if part.any():
                        colour[ti, pi] = colour_similarity(track.colour[None], part[None])[0, 0]
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
        self.tracks = [
            t for t in self.tracks if t.missed <= (self.config.max_age if t.track_id else 0)
        ]  # a tentative miss ends it
        for i, pose in enumerate(poses):
            if (
                pose.fresh
                and i not in matched_poses
                and sum(t.missed == 0 for t in self.tracks) < self.config.max_people
            ):
                self.tracks.append(self._start(pose, now))

    def _start(self, pose: _Pose, now: float) -> _Track:
        smoother = OneEuroFilter(self.config.smoothing) if self.config.smoothing is not None else None
        smoothed = smoother(pose.keypoints, now) if smoother is not None else pose.keypoints
        track = _Track(
            0,
            pose.box,
            pose.keypoints,
            pose.scores,
            pose.colour,
            pose.box[2:] - pose.box[:2],
            pose.box,
            smoothed,
            smoother,
            detection_score=pose.detection_score,
        )
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
        track.detection_score = pose.detection_score
        track.smoothed = track.smoother(keypoints, now) if track.smoother is not None else keypoints


def _load_config(config: TrackerConfig | Mapping[str, Any] | str | os.PathLike | None) -> TrackerConfig:
    """PoseTracker's `config` argument as a TrackerConfig."""
    if config is None:
        return TrackerConfig()
    if isinstance(config, TrackerConfig):
        return config
    if isinstance(config, Mapping):
        return TrackerConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return TrackerConfig.from_yaml(config)
    raise TypeError(
        f"config must be a TrackerConfig, a dict of its fields or a YAML file's path, got {type(config).__name__}"
    )
