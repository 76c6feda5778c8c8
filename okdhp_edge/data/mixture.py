"""Training on several data sets at once (`--data synthetic+coco:DIR --data-weights 1,2`).

An epoch has as many items as the parts have people together; each part supplies its share of
them in exact proportion to its weight (largest remainders), drawn without replacement and
cycled when a small part must supply more than it has, then shuffled. The draw depends only on
(seed, epoch), so every data-loader worker and every resumed run sees the same epoch.
"""

from __future__ import annotations

import math

import numpy as np

from .base import DatasetError, PoseDataset

__all__ = ["MixedDataset", "split_sources", "mixture_counts"]


def split_sources(source: str) -> list[str]:
    """ "synthetic+coco:DIR" -> ["synthetic", "coco:DIR"]; a single source is a list of one."""
    parts = [p.strip() for p in source.split("+")]
    if any(not p for p in parts):
        raise DatasetError(
            f"data source {source!r} has an empty part; write mixtures as SOURCE+SOURCE, e.g. synthetic+coco:DIR"
        )
    return parts


def mixture_counts(total: int, weights: list[float]) -> np.ndarray:
    """Items per part in an epoch of `total`: proportional to `weights`, summing to `total`."""
    w = np.asarray(weights, np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]] += 1
    return counts


class MixedDataset:
    """Items from `parts` (PoseDatasets of one skeleton and input) in the proportions `weights`.

    Offers what the trainer uses of a PoseDataset: len, items, set_epoch, ground_truth (the
    parts' people, for the mean-pose reference), num_skipped, skeleton, input_spec, source.
    """

    def __init__(self, parts: list[PoseDataset], weights: list[float] | None = None, seed: int = 0) -> None:
        weights = [1.0] * len(parts) if weights is None else [float(w) for w in weights]
        if len(weights) != len(parts):
            raise DatasetError(f"{len(weights)} data weights for {len(parts)} data sources; give one weight per source")
        if any(not math.isfinite(w) or w <= 0 for w in weights):
            raise DatasetError(f"data weights {weights} must be positive numbers")
        names = [p.skeleton.name for p in parts]
        if len(set(names)) != 1 or len({(p.input_spec.width, p.input_spec.height) for p in parts}) != 1:
            raise DatasetError(f"mixed data sources must share one skeleton and input size; got skeletons {names}")
        self.parts, self.weights, self.seed = parts, weights, int(seed)
        self.skeleton, self.input_spec, self.kind = parts[0].skeleton, parts[0].input_spec, parts[0].kind
        self.source = " + ".join(p.source for p in parts)
        self.counts = mixture_counts(sum(len(p) for p in parts), weights)
        self.epoch = 0
        self._table = self._draw(0)

    def _draw(self, epoch: int) -> np.ndarray:
        """(len, 2) rows of (part, index in part) for `epoch`."""
        rng = np.random.default_rng([self.seed, epoch, 7919])
        rows = []
        for k, (part, count) in enumerate(zip(self.parts, self.counts)):
            cycles = -(-int(count) // len(part))
            index = (
                np.concatenate([rng.permutation(len(part)) for _ in range(cycles)])[:count]
                if count
                else np.zeros(0, np.int64)
            )
            rows.append(np.stack([np.full(len(index), k), index], 1))
        table = np.concatenate(rows)
        return table[rng.permutation(len(table))]

    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        k, j = self._table[index]
        return self.parts[int(k)][int(j)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for part in self.parts:
            part.set_epoch(epoch)
        self._table = self._draw(self.epoch)

    def parts_of_epoch(self) -> np.ndarray:
        """(len,) the part each item of this epoch comes from."""
        return self._table[:, 0].copy()

    @property
    def num_skipped(self) -> int:
        return sum(p.num_skipped for p in self.parts)

    def ground_truth(self) -> dict[str, np.ndarray]:
        truths = [p.ground_truth() for p in self.parts]
        return {key: np.concatenate([t[key] for t in truths]) for key in truths[0]}
