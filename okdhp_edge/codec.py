"""Heatmap codec: keypoints <-> Gaussian heatmaps, decoded outside the network.

Heatmap pixel j is centred on input pixel (j + 0.5) * stride - 0.5: the two grids share their
outer edges, so mirroring the input (x -> W - 1 - x) mirrors the heatmap exactly
(j -> w - 1 - j) and flip test needs no shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import apply_affine

__all__ = ["ABSENT", "HeatmapCodec", "decode_heatmaps", "flip_heatmaps"]

ABSENT = -1.0  # visibility flag of a keypoint known to lie outside the image (COCO's 0 is "not labelled")


@dataclass(frozen=True)
class HeatmapCodec:
    """Encodes crop-space keypoints as heatmaps and decodes heatmaps back.

    input_size and heatmap_size are (width, height); sigma is in heatmap pixels; absent_weight is
    the weight of an ABSENT keypoint's all-zero target (0: skipped like an unlabelled one).
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    absent_weight: float = 0.0

    def __post_init__(self) -> None:
        sx = self.input_size[0] / self.heatmap_size[0]
        sy = self.input_size[1] / self.heatmap_size[1]
        if abs(sx - sy) > 1e-6:
            raise ValueError(f"input {self.input_size} and heatmap {self.heatmap_size} have different strides")
        if not 0.0 <= self.absent_weight <= 1.0:
            raise ValueError(f"absent_weight must be in [0, 1], got {self.absent_weight}")

    @property
    def stride(self) -> float:
        return self.input_size[0] / self.heatmap_size[0]

    def input_to_heatmap(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float32) + 0.5) / self.stride - 0.5

    def heatmap_to_input(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float32) + 0.5) * self.stride - 0.5

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian targets (K, h, w) with peak 1 at the sub-pixel location, and weights (K,).

        A keypoint gets weight 0 when it is not labelled (visible == 0) or when its Gaussian
        lies entirely outside the heatmap (its target would be all zeros). An ABSENT keypoint
        (visible < 0: known to lie outside the image, as below a close-up) gets an all-zero
        target with weight `absent_weight`: above 0 the network learns to answer "not here"
        instead of drawing it somewhere on the person (docs/training.md: what that costs).
        """
        keypoints = np.asarray(keypoints, np.float32).reshape(-1, 2)
        visible = np.asarray(visible, np.float32).reshape(-1)
        w, h = self.heatmap_size
        centers = self.input_to_heatmap(keypoints)
        xs = np.arange(w, dtype=np.float32)
        ys = np.arange(h, dtype=np.float32)
        gx = np.exp(-((xs[None, :] - centers[:, :1]) ** 2) / (2 * self.sigma**2))  # (K, w)
        gy = np.exp(-((ys[None, :] - centers[:, 1:]) ** 2) / (2 * self.sigma**2))  # (K, h)
        heatmaps = gy[:, :, None] * gx[:, None, :]
        margin = 3 * self.sigma
        inside = (
            (centers[:, 0] > -margin)
            & (centers[:, 0] < w - 1 + margin)
            & (centers[:, 1] > -margin)
            & (centers[:, 1] < h - 1 + margin)
            & np.isfinite(centers).all(axis=1)
        )
        present = (visible > 0) & inside
        heatmaps[~present] = 0.0
        weights = present.astype(np.float32) + np.float32(self.absent_weight) * (visible < 0)
        return heatmaps.astype(np.float32), weights.astype(np.float32)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps (..., K, h, w) -> keypoints in input-crop pixels (..., K, 2) and scores (..., K)."""
        coords, scores = decode_heatmaps(heatmaps)
        return self.heatmap_to_input(coords), scores

    def decode_to_image(self, heatmaps: np.ndarray, crop_to_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decode a batch (N, K, h, w) and map through per-crop inverse affines (N, 2, 3)."""
        coords, scores = self.decode(heatmaps)
        crop_to_image = np.asarray(crop_to_image, np.float32).reshape(-1, 2, 3)
        out = np.stack([apply_affine(c, m) for c, m in zip(coords, crop_to_image)]) if len(coords) else coords
        return out.astype(np.float32), scores


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax plus a quarter-pixel step towards the higher neighbour, in heatmap pixels.

    Returns coords (..., K, 2) as (x, y) and scores (..., K) = the maximum value.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    *lead, h, w = hm.shape
    flat = hm.reshape(-1, h * w)
    idx = np.argmax(flat, axis=1)
    scores = flat[np.arange(flat.shape[0]), idx]
    x = (idx % w).astype(np.int64)
    y = (idx // w).astype(np.int64)
    rows = flat.reshape(-1, h, w)
    n = np.arange(rows.shape[0])
    dx = np.zeros(len(n), np.float32)
    dy = np.zeros(len(n), np.float32)
    inner_x = (x > 0) & (x < w - 1)
    inner_y = (y > 0) & (y < h - 1)
    xr, xl = np.clip(x + 1, 0, w - 1), np.clip(x - 1, 0, w - 1)
    yd, yu = np.clip(y + 1, 0, h - 1), np.clip(y - 1, 0, h - 1)
    dx[inner_x] = np.sign(rows[n, y, xr] - rows[n, y, xl])[inner_x] * 0.25
    dy[inner_y] = np.sign(rows[n, yd, x] - rows[n, yu, x])[inner_y] * 0.25
    coords = np.stack([x + dx, y + dy], axis=-1).astype(np.float32)
    return coords.reshape(*lead, 2), scores.reshape(*lead)


def flip_heatmaps(heatmaps: np.ndarray, flip_index: list[int]) -> np.ndarray:
    """Mirror heatmaps (..., K, h, w) horizontally and swap left/right channels back."""
    hm = np.asarray(heatmaps)
    return hm[..., flip_index, :, ::-1].copy()
