"""One-Euro filter (Casiez et al., CHI 2012) for keypoints: steady when still, little lag when moving.

A low-pass filter whose cutoff rises with speed: a still keypoint is smoothed hard (its jitter is
noise), a fast one lightly (its motion is real). Time steps come from timestamps, so a camera that
drops to a low frame rate is smoothed less per frame instead of lagging further behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["OneEuroConfig", "OneEuroFilter"]


@dataclass
class OneEuroConfig:
    """Cutoffs in Hz; speeds in pixels per second."""

    min_cutoff: float = 0.5  # cutoff of a still keypoint: lower is steadier, with more lag
    beta: float = 0.02  # cutoff added per pixel/second of speed: higher follows fast motion sooner
    d_cutoff: float = 1.0  # cutoff of the speed estimate itself

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(f"OneEuroConfig needs min_cutoff > 0, d_cutoff > 0, beta >= 0; got {self}")


def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters a (K, 2) array of points over time; one speed (the 2-D norm) per point."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None
        self.time: float | None = None

    def __call__(self, points: np.ndarray, timestamp: float) -> np.ndarray:
        points = np.asarray(points, np.float64)
        if self.value is None or self.speed is None or self.time is None or self.value.shape != points.shape:
            self.value, self.speed, self.time = points.copy(), np.zeros(points.shape[:-1]), timestamp
            return self.value.astype(np.float32)
        if timestamp <= self.time:  # no time has passed: nothing to blend
            return self.value.astype(np.float32)
        dt = timestamp - self.time
        velocity = (points - self.value) / dt
        speed = np.linalg.norm(velocity, axis=-1)
        a_d = _alpha(dt, self.config.d_cutoff)
        self.speed = a_d * speed + (1 - a_d) * self.speed
        a = _alpha(dt, self.config.min_cutoff + self.config.beta * self.speed)[..., None]
        self.value = a * points + (1 - a) * self.value
        self.time = timestamp
        return self.value.astype(np.float32)
