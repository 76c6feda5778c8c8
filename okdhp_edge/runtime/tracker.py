"""`PoseTracker`: several people on video, each with a stable ID and steady keypoints.

Per frame: each live track's crop is placed from its last keypoints, moved by its velocity (so
the pose network follows without a detector). Every `detect_every` frames, and whenever nobody
is tracked, the detector runs too: a detection that overlaps a tracked crop replaces it (a fresh
box fixes a crop that drifted), the others are newcomers. Poses that are lost (too few confident
keypoints) are dropped, duplicates (two crops on one person) are merged by OKS-NMS, and poses are
matched to tracks on box IoU + OKS. A track that finds no pose is kept, moving on its velocity,
for `max_age` frames, so an ID survives a crossing or a short occlusion. Keypoints are smoothed by
a One-Euro filter per track.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from ..skeleton import Skeleton
from .boxes import clip_boxes, iou_matrix, oks_matrix
from .errors import InputError
from .one_euro import OneEuroConfig, OneEuroFilter
from .predictor import check_image
from .result import PoseResult

__all__ = ["PoseTracker", "TrackedPose", "TrackerConfig", "keypoint_box"]

DetectorFn = Callable[[np.ndarray], np.ndarray]


class PosePredictor(Protocol):
    """What the tracker needs from a Predictor."""

    skeleton: Skeleton

    def predict(self, image: np.ndarray, boxes: np.ndarray | None = None, rgb: bool = False, flip_test: bool = False) -> PoseResult: ...


@dataclass
class TrackerConfig:
    """Thresholds on keypoints are on heatmap peak scores (as in PoseResult.scores), set for the shipped
    real-image student (docs/runtime.md: how they were chosen); students whose scores run lower, such
    as the synthetic demo's, want keypoint_score and lost_score near 0.3."""

    detect_every: int = 5  # with a detector: run it every this many frames (1: every frame; 0: only when nobody is tracked)
    max_people: int = 8  # the most tracks followed at once
    max_age: int = 15  # frames a track is kept without a pose before its ID is dropped
    smoothing: OneEuroConfig | None = field(default_factory=OneEuroConfig)  # None: raw keypoints
    fps: float = 30.0  # frame rate assumed for smoothing when update() gets no timestamp
    match_threshold: float = 0.2  # least (IoU + OKS) / 2 for a pose to continue a track
    duplicate_oks: float = 0.5  # poses more similar than this are one person (OKS-NMS)
    replace_iou: float = 0.3  # a detection overlapping a tracked crop this much replaces the crop
    keypoint_score: float = 0.5  # keypoints at least this confident place the next crop
    min_keypoints: int = 4  # fewer confident keypoints than this: the pose is lost
    lost_score: float = 0.5  # mean score below this: the pose is lost
    margin: float = 0.15  # grow the keypoint box by this fraction of its size on each side
    min_box_size: float = 16.0  # pixels; a box never shrinks below this
    flip_test: bool = False

    def __post_init__(self) -> None:
        if self.detect_every < 0 or self.max_people < 1 or self.max_age < 0 or self.fps <= 0:
            raise ValueError(f"TrackerConfig needs detect_every >= 0, max_people >= 1, max_age >= 0, fps > 0; got {self}")


@dataclass
class TrackedPose:
    """One person on one frame. age: frames since the track started (0 on its first frame)."""

    track_id: int
    box: np.ndarray  # (4,) xyxy around the confident keypoints
    keypoints: np.ndarray  # (K, 2) image pixels, smoothed unless smoothing is off
    scores: np.ndarray  # (K,) heatmap peak values
    age: int


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    keypoints: np.ndarray  # raw, for matching and crop placement
    scores: np.ndarray
    smoothed: np.ndarray
    smoother: OneEuroFilter | None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # pixels per frame
    age: int = 0
    missed: int = 0

    def predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """Box and keypoints moved on by the velocity for the frames since the last pose."""
        shift = self.velocity * (self.missed + 1)
        return self.box + np.tile(shift, 2), self.keypoints + shift


def keypoint_box(keypoints: np.ndarray, scores: np.ndarray, config: TrackerConfig, width: int, height: int) -> np.ndarray | None:
    """xyxy box around one person's confident keypoints, grown and clipped; None when lost."""
    confident = scores >= config.keypoint_score
    if confident.sum() < config.min_keypoints or scores.mean() < config.lost_score:
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
        self._next_id = 1
        self._since_detect = 0
        self._size: tuple[int, int] | None = None
        self._time: float | None = None

    def reset(self) -> None:
        """Forget every track (e.g. after a scene cut); IDs keep counting up."""
        self.tracks = []
        self._since_detect = 0

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
        live = [t for t in self.tracks if t.missed == 0]
        crops = clip_boxes(np.array([t.predicted()[0] for t in live], np.float32).reshape(-1, 4), width, height)
        every = self.config.detect_every
        looked = not len(crops) or (self.detector is not None and every > 0 and self._since_detect >= every)
        if looked:
            crops = self._initial_crops(frame, crops)
        poses = self._poses(frame, crops, rgb)
        if not poses and not looked:
            poses = self._poses(frame, self._initial_crops(frame, crops[:0]), rgb)  # every pose lost: look again now
        self._assign(poses, now)
        return [
            TrackedPose(t.track_id, t.box.copy(), t.smoothed.copy(), t.scores.copy(), t.age)
            for t in sorted(self.tracks, key=lambda t: t.track_id) if t.missed == 0
        ]

    # -- steps ---------------------------------------------------------------------------------

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

    def _initial_crops(self, frame: np.ndarray, crops: np.ndarray) -> np.ndarray:
        """Tracked crops with detections merged in: overlapping ones replace crops, others are added.
        Without a detector: the crops, or the whole frame when there are none."""
        if self.detector is None:
            height, width = frame.shape[:2]
            return crops if len(crops) else np.array([[0, 0, width - 1, height - 1]], np.float32)
        self.detections += 1
        self._since_detect = 0
        found = np.asarray(self.detector(frame), np.float32)
        found = found.reshape(-1, found.shape[-1] if found.size else 4)[:, :4]
        found = clip_boxes(found[np.isfinite(found).all(axis=1)], frame.shape[1], frame.shape[0])
        crops = crops.copy()
        extra = []
        overlap = iou_matrix(found, crops)
        for i in range(len(found)):
            j = int(overlap[i].argmax()) if overlap.shape[1] else -1
            if j >= 0 and overlap[i, j] >= self.config.replace_iou:
                crops[j] = found[i]
                overlap[:, j] = -1  # one detection per crop
            else:
                extra.append(found[i])
        room = max(self.config.max_people - len(crops), 0)
        return np.concatenate([crops, np.array(extra[:room], np.float32).reshape(-1, 4)])

    def _poses(self, frame: np.ndarray, crops: np.ndarray, rgb: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(box, keypoints, scores) of the poses found in `crops`, lost ones dropped, duplicates merged."""
        if not len(crops):
            return []
        result = self.predictor.predict(frame, crops, rgb, self.config.flip_test)
        height, width = frame.shape[:2]
        poses = []
        for kpts, scores in zip(result.keypoints, result.scores):
            box = keypoint_box(kpts, scores, self.config, width, height)
            if box is not None:
                poses.append((box, kpts, scores))
        if len(poses) < 2:
            return poses
        poses.sort(key=lambda p: -float(p[2].mean()))
        kpts = np.stack([p[1] for p in poses])
        areas = np.array([(p[0][2] - p[0][0]) * (p[0][3] - p[0][1]) for p in poses])
        visible = np.stack([p[2] >= self.config.keypoint_score for p in poses])
        oks = oks_matrix(kpts, kpts, areas, self._sigmas, visible)
        kept: list[int] = []
        for i in range(len(poses)):
            if all(oks[k, i] <= self.config.duplicate_oks for k in kept):
                kept.append(i)
        return [poses[i] for i in kept]

    def _assign(self, poses: list[tuple[np.ndarray, np.ndarray, np.ndarray]], now: float) -> None:
        """Greedy matching of poses to tracks on (IoU + OKS) / 2; new tracks, ageing, dropping."""
        matched_tracks: set[int] = set()
        matched_poses: set[int] = set()
        if self.tracks and poses:
            predicted = [t.predicted() for t in self.tracks]
            track_boxes = np.stack([p[0] for p in predicted])
            track_kpts = np.stack([p[1] for p in predicted])
            areas = np.clip(track_boxes[:, 2:] - track_boxes[:, :2], 1, None).prod(axis=1)
            visible = np.stack([t.scores >= self.config.keypoint_score for t in self.tracks])
            pose_boxes = np.stack([p[0] for p in poses])
            pose_kpts = np.stack([p[1] for p in poses])
            similarity = 0.5 * iou_matrix(track_boxes, pose_boxes) + 0.5 * oks_matrix(track_kpts, pose_kpts, areas, self._sigmas, visible)
            for flat in np.argsort(-similarity, axis=None):
                ti, pi = np.unravel_index(flat, similarity.shape)
                if similarity[ti, pi] < self.config.match_threshold:
                    break
                if ti in matched_tracks or pi in matched_poses:
                    continue
                matched_tracks.add(int(ti))
                matched_poses.add(int(pi))
                self._continue(self.tracks[ti], *poses[pi], now)
        for i, track in enumerate(self.tracks):
            track.age += 1
            if i not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.config.max_age]
        for i, pose in enumerate(poses):
            if i not in matched_poses and sum(t.missed == 0 for t in self.tracks) < self.config.max_people:
                self.tracks.append(self._start(*pose, now))

    def _start(self, box: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, now: float) -> _Track:
        smoother = OneEuroFilter(self.config.smoothing) if self.config.smoothing is not None else None
        smoothed = smoother(keypoints, now) if smoother is not None else keypoints
        track = _Track(self._next_id, box, keypoints, scores, smoothed, smoother)
        self._next_id += 1
        return track

    def _continue(self, track: _Track, box: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, now: float) -> None:
        step = ((box[:2] + box[2:]) - (track.box[:2] + track.box[2:])) / 2 / (track.missed + 1)
        track.velocity = (0.5 * track.velocity + 0.5 * step).astype(np.float32)
        track.box, track.keypoints, track.scores, track.missed = box, keypoints, scores, 0
        track.smoothed = track.smoother(keypoints, now) if track.smoother is not None else keypoints
