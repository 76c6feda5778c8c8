"""`PoseTracker`: several people on video, each with a stable ID and steady keypoints.

This module wires the parts in `runtime/tracking/`, each with one job, into one frame step:
crops from the tracks, and the detector on its schedule (tracking/schedule.py); the pose network
on the crops, lost poses dropped and duplicates merged (tracking/poses.py); poses matched to
tracks (tracking/matching.py, gated by runtime/appearance.py's colours); each track's state,
motion and ID (tracking/track.py); One-Euro smoothing (tracking/smoothing.py). docs/runtime.md
describes the whole.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from ..skeleton import Skeleton
from .bundled import DEFAULT_POSE_MODEL
from .detector import Detector
from .one_euro import OneEuroConfig
from .predictor import Predictor, check_image
from .result import TRACK_STATES, PoseResult, TrackedPose
from .tracker_config import TrackerConfig, load_config
from .tracking.matching import match
from .tracking.poses import AUTO_PRIOR, AutoThresholds, Pose, find_poses, keypoint_box, merge_duplicates
from .tracking.schedule import Crops, DetectionSchedule, detections, merge_detections, tracked_crops
from .tracking.smoothing import Clock, KeypointSmoother
from .tracking.track import Track

__all__ = ["AUTO_PRIOR", "TRACK_STATES", "PoseTracker", "TrackedPose", "TrackerConfig", "keypoint_box"]

DetectorFn = Callable[[np.ndarray], np.ndarray]


class PosePredictor(Protocol):
    """What the tracker needs from a Predictor."""

    skeleton: Skeleton

    def predict(
        self, image: np.ndarray, boxes: np.ndarray | None = None, rgb: bool = False, flip_test: bool = False
    ) -> PoseResult: ...


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
        config = load_config(config)
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
        self.tracks: list[Track] = []
        self.schedule = DetectionSchedule()
        self.thresholds = AutoThresholds()
        self.scoring = self.thresholds.resolve(self.config)  # the config with its keypoint thresholds settled
        self.clock = Clock()
        self._next_id = 1
        self._frames = 0  # frames since the start or the last reset
        self._size: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"PoseTracker({self.predictor!r}, {self.detector!r})"

    @property
    def detections(self) -> int:
        """Detector calls so far."""
        return self.schedule.runs

    def reset(self) -> None:
        """Forget every track and the last timestamp (e.g. after a scene cut, or before another
        video, whose timestamps may start again at 0); IDs keep counting up."""
        self.tracks = []
        self.schedule.reset()
        self._frames = 0
        self.clock.reset()

    def update(self, frame: np.ndarray, timestamp: float | None = None, rgb: bool = False) -> list[TrackedPose]:
        """The people on `frame`, sorted by track ID. timestamp: seconds (e.g. the capture's
        CAP_PROP_POS_MSEC / 1000), increasing; None assumes `config.fps`."""
        frame = check_image(frame)
        height, width = frame.shape[:2]
        if self._size != (width, height):
            self.reset()  # boxes from another frame size mean nothing here
            self._size = (width, height)
        now = self.clock(timestamp, self.config.fps)
        self.schedule.tick()
        self._frames += 1
        crops = tracked_crops(self.tracks, self.config, width, height)
        looked = self.schedule.due(len(crops), self.config.detect_every, self.detector is not None)
        if looked:
            crops = self._look(frame, crops)
        poses = self._poses(frame, crops, rgb)
        if not poses and not looked:  # every pose lost: look again now
            poses = self._poses(frame, self._look(frame, Crops.tracked(crops.boxes[:0])), rgb)
        self._assign(frame, poses, now)
        return self._people()

    def __call__(self, frame: np.ndarray, timestamp: float | None = None, rgb: bool = False) -> list[TrackedPose]:
        """The same as `update`: a tracker is the one pipeline object an app calls per frame."""
        return self.update(frame, timestamp, rgb)

    # -- steps ---------------------------------------------------------------------------------

    def _look(self, frame: np.ndarray, crops: Crops) -> Crops:
        """The tracked crops with the detector's boxes merged in; without a detector, the crops, or
        the whole frame when there are none."""
        height, width = frame.shape[:2]
        if self.detector is None:
            return crops if len(crops) else Crops.whole_frame(width, height)
        self.schedule.ran()
        found = detections(self.detector(frame), width, height)
        config = self.config
        return merge_detections(crops, found, config.replace_iou, config.max_people, config.replace_inside)

    def _poses(self, frame: np.ndarray, crops: Crops, rgb: bool) -> list[Pose]:
        """The poses found in `crops`, lost ones dropped, duplicates merged; settles the thresholds."""
        if not len(crops):
            return []
        result = self.predictor.predict(frame, crops.boxes, rgb, self.config.flip_test)
        self.thresholds.observe(result.scores, crops.fresh)
        self.scoring = self.thresholds.resolve(self.config)
        return merge_duplicates(find_poses(frame, result, crops, self.scoring), self.scoring, self._sigmas)

    def _assign(self, frame: np.ndarray, poses: list[Pose], now: float) -> None:
        """Poses to tracks; then ageing, dropping, and new tracks from the fresh poses left."""
        config, threshold = self.config, self.scoring.keypoint_score
        matching = match(frame, self.tracks, poses, config, threshold, self._sigmas)
        for pair in matching.pairs:
            track = self.tracks[pair[0]]
            shift = matching.shift(self.tracks, poses, pair, threshold)
            track.follow(poses[pair[1]], shift, now, config, *self._size)
            if track.due_confirm(config.confirm):
                self._confirm(track)
        matched_tracks = {ti for ti, _ in matching.pairs}
        for i, track in enumerate(self.tracks):
            track.end_frame(i in matched_tracks)
        self.tracks = [t for t in self.tracks if t.alive(config.max_age)]
        matched_poses = {pi for _, pi in matching.pairs}
        for i, pose in enumerate(poses):
            if pose.fresh and i not in matched_poses and sum(t.missed == 0 for t in self.tracks) < config.max_people:
                track = Track.start(pose, KeypointSmoother(config.smoothing), now)
                if config.confirm <= 1 or self._frames == 1:  # on the stream's first frame, at once
                    self._confirm(track)
                self.tracks.append(track)

    def _confirm(self, track: Track) -> None:
        track.track_id = self._next_id
        self._next_id += 1

    def _people(self) -> list[TrackedPose]:
        """The tracks to report (config.report), sorted by ID, tentative ones last."""
        threshold = float(self.scoring.draw_score)
        every = self.config.report == "all"
        tracks = sorted(self.tracks, key=lambda t: (not t.track_id, t.track_id))
        return [t.report(threshold, self.skeleton) for t in tracks if every or t.state == "confirmed"]
