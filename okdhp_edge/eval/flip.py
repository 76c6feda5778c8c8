"""Flip test: average a crop's heatmaps with those of its mirror image, mapped back."""

from __future__ import annotations

import numpy as np

from ..codec import flip_heatmaps

__all__ = ["flip_average"]


def flip_average(heatmaps: np.ndarray, heatmaps_of_mirrored_input: np.ndarray, flip_index: list[int]) -> np.ndarray:
    """(heatmaps + unmirror(mirrored heatmaps)) / 2 for arrays (..., K, h, w).

    The heatmap grid is aligned so that mirroring is exact (see codec.py): no pixel shift.
    `flip_index` is `skeleton.flip_index`, which swaps left and right channels back.
    """
    a = np.asarray(heatmaps, np.float32)
    b = np.asarray(heatmaps_of_mirrored_input, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"flip_average: shapes differ, {a.shape} vs {b.shape}")
    if len(flip_index) != a.shape[-3]:
        raise ValueError(f"flip_average: flip_index has {len(flip_index)} entries for {a.shape[-3]} heatmap channels")
    return (a + flip_heatmaps(b, list(flip_index))) * np.float32(0.5)
