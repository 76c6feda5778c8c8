"""Steady keypoints: the frame clock and each track's One-Euro filter (runtime/one_euro.py).

The filter's time steps come from the frames' timestamps, so a camera that drops frames is
smoothed less per frame instead of lagging; frames without one are taken `1 / fps` apart.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..one_euro import OneEuroConfig, OneEuroFilter

__all__ = ["Clock", "KeypointSmoother"]


class Clock:
    """Each frame's time in seconds: its timestamp, checked to increase, or the last one plus a frame."""

    def __init__(self) -> None:
        self.last: float | None = None

    def __call__(self, timestamp: float | None, fps: float) -> float:
        if timestamp is None:
            now = 0.0 if self.last is None else self.last + 1.0 / fps
        else:
            now = float(timestamp)
            if not math.isfinite(now) or (self.last is not None and now <= self.last):
                raise InputError(
                    f"timestamp {timestamp!r} must be finite and increase from frame to frame (last: {self.last}); "
                    "pass seconds, e.g. capture.get(cv2.CAP_PROP_POS_MSEC) / 1000, or None to assume config.fps"
                )
        self.last = now
        return now

    def reset(self) -> None:
        """Forget the last timestamp (another video's may start again at 0)."""
        self.last = None


class KeypointSmoother:
    """One track's keypoints over time: One-Euro filtered, or passed through when `config` is None
    (smoothing off). Each track has its own, which starts at the track's first pose."""

    def __init__(self, config: OneEuroConfig | None) -> None:
        self.filter = OneEuroFilter(config) if config is not None else None

    def __call__(self, keypoints: np.ndarray, now: float) -> np.ndarray:
        return self.filter(keypoints, now) if self.filter is not None else keypoints
