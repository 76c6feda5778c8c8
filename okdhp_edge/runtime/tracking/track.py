"""One tracked person: state (tentative, confirmed, coasting), motion, whole-body box and colours.

A new track is tentative (ID 0) until its pose is found again on the next `confirm` - 1 frames, so
a one-frame false find costs no ID; one miss ends a tentative track. A confirmed track that finds
no pose coasts, moving on its velocity, for `max_age` frames, so an ID survives a crossing or a
short occlusion. A pose that lost its legs or head (partial) keeps the track's whole-body box.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...boxes import clip_boxes
from ...skeleton import Skeleton
from ..result import TrackedPose
from ..tracker_config import TrackerConfig
from .poses import Pose
from .smoothing import KeypointSmoother

__all__ = ["Track"]


@dataclass
class Track:
    track_id: int  # 0 while tentative
    box: np.ndarray
    keypoints: np.ndarray  # raw, for matching and crop placement
    scores: np.ndarray
    colour: np.ndarray  # running mean of the whole-body poses' colour signatures
    size: np.ndarray  # (2,) running width and height of the whole-body poses' boxes
    body: np.ndarray  # the whole body's box, not clipped to the frame (box is, so a cut body's centre would creep)
    smoothed: np.ndarray
    smoother: KeypointSmoother
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # pixels per frame
    age: int = 0  # frames since the start, counted up after each frame
    missed: int = 0  # frames in a row without a pose
    detection_score: float | None = None  # of this frame's pose (Pose.detection_score)

    @classmethod
    def start(cls, pose: Pose, smoother: KeypointSmoother, now: float) -> Track:
        """A tentative track from its first pose."""
        box = pose.box
        smoothed = smoother(pose.keypoints, now)
        size = box[2:] - box[:2]
        return cls(
            0,
            box,
            pose.keypoints,
            pose.scores,
            pose.colour,
            size,
            box,
            smoothed,
            smoother,
            detection_score=pose.detection_score,
        )

    @property
    def state(self) -> str:
        return "tentative" if not self.track_id else "coasting" if self.missed else "confirmed"

    def predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """Box and keypoints moved on by the velocity for the frames since the last pose."""
        shift = self.velocity * (self.missed + 1)
        return self.box + np.tile(shift, 2), self.keypoints + shift

    def shift_to(self, pose: Pose, threshold: float) -> np.ndarray:
        """How the person moved from the track's last pose to `pose`: the median move of the joints
        seen on both (box centres also move when limbs drop out), else of the box centres."""
        both = (pose.scores >= threshold) & (self.scores >= threshold)
        if both.sum() >= 2:
            return np.median(pose.keypoints[both] - self.keypoints[both], axis=0)
        return ((pose.box[:2] + pose.box[2:]) - (self.box[:2] + self.box[2:])) / 2

    def is_partial(self, pose: Pose, partial_height: float) -> bool:
        """Whether `pose` shows only part of the body (legs or head lost, or cut by the frame)."""
        return bool(pose.box[3] - pose.box[1] < partial_height * self.size[1])

    def body_box(self, shift: np.ndarray) -> np.ndarray:
        """The whole-body box moved by `shift`, not clipped to the frame."""
        centre = (self.body[:2] + self.body[2:]) / 2 + shift
        return np.concatenate([centre - self.size / 2, centre + self.size / 2]).astype(np.float32)

    def follow(self, pose: Pose, shift: np.ndarray, now: float, config: TrackerConfig, width: int, height: int) -> None:
        """Continue with `pose`, which moved the person by `shift` (shift_to) since the last pose."""
        box = pose.box
        self.velocity = (0.5 * self.velocity + 0.5 * shift / (self.missed + 1)).astype(np.float32)
        size = box[2:] - box[:2]
        if self.is_partial(pose, config.partial_height):  # legs or head lost: the whole body's box, moved
            self.size = 0.95 * self.size + 0.05 * size  # (a size that was too big shrinks slowly)
            self.body = self.body_box(shift)
            inside = clip_boxes(self.body[None], width, height)
            box = inside[0] if len(inside) else box  # a body box moved wholly out of the frame: the pose's own
        else:  # a whole body: its size and colours update the track's
            self.body = box
            self.size = 0.5 * self.size + 0.5 * size
            colour = (1 - config.colour_update) * self.colour + config.colour_update * pose.colour
            self.colour = colour / max(float(np.linalg.norm(colour)), 1e-6)
        self.box, self.keypoints, self.scores, self.missed = box, pose.keypoints, pose.scores, 0
        self.detection_score = pose.detection_score
        self.smoothed = self.smoother(pose.keypoints, now)

    def due_confirm(self, confirm: int) -> bool:
        """Whether a tentative track that just followed a pose has now been seen on `confirm` frames:
        it had a pose on every frame since its start (one miss ends it), so this is its (age + 2)-th."""
        return not self.track_id and self.age + 2 >= confirm

    def end_frame(self, matched: bool) -> None:
        """Age by one frame; a track that found no pose on it has missed one more."""
        self.age += 1
        if not matched:
            self.missed += 1

    def alive(self, max_age: int) -> bool:
        """A confirmed track lives `max_age` frames without a pose; a tentative one ends at its first miss."""
        return self.missed <= (max_age if self.track_id else 0)

    def report(self, threshold: float, skeleton: Skeleton) -> TrackedPose:
        """This frame's TrackedPose; a coasting track where its velocity takes it since its last pose."""
        state = self.state
        shift = self.velocity * self.missed
        return TrackedPose(
            self.track_id,
            (self.box + np.tile(shift, 2)).astype(np.float32),
            (self.smoothed + shift).astype(np.float32),
            self.scores.copy(),
            self.age,
            state,
            self.detection_score if state != "coasting" else None,
            threshold,
            skeleton.keypoints,
            skeleton.limbs,
        )
