"""CenterNet training targets from person boxes, and the loss that reads them.

Each person is a Gaussian peak at its box centre on the stride-4 grid (sigma from the box size,
as CenterNet's radius rule does, so small people get sharp peaks); the centre cell also carries the
box size (log of the side in cells) and the centre's sub-cell offset. An ignore mask marks cells
that must not count as background: people known to be there but not boxed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["MAX_PEOPLE", "build_targets", "detection_loss"]

MAX_PEOPLE = 32  # boxes per image that carry size targets (more are rare, and still get peaks)
MIN_SIDE = 2.0  # input pixels: boxes smaller than this on either side are left out


def _sigma(w: float, h: float) -> float:
    """Gaussian sigma in cells: a sixth of the smaller box side (CenterNet's radius rule, simplified)."""
    return max(min(w, h) / 6.0, 0.5)


def build_targets(boxes: np.ndarray, ignore: np.ndarray, width: int, height: int, stride: int) -> dict[str, np.ndarray]:
    """boxes (N, 4) x1, y1, x2, y2 in input pixels; ignore (h, w) bool on the output grid.

    Returns heatmap (1, h, w), weight (1, h, w) (0 where ignored, 1 elsewhere and on every peak),
    size (MAX_PEOPLE, 2), offset (MAX_PEOPLE, 2), index (MAX_PEOPLE,) flat cell of each centre, and
    mask (MAX_PEOPLE,) which rows hold a person.
    """
    h, w = height // stride, width // stride
    heat = np.zeros((h, w), np.float32)
    weight = (~ignore).astype(np.float32) if ignore.size else np.ones((h, w), np.float32)
    size = np.zeros((MAX_PEOPLE, 2), np.float32)
    offset = np.zeros((MAX_PEOPLE, 2), np.float32)
    index = np.zeros(MAX_PEOPLE, np.int64)
    mask = np.zeros(MAX_PEOPLE, np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    row = 0
    for x1, y1, x2, y2 in np.asarray(boxes, np.float32).reshape(-1, 4):
        bw, bh = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
        if bw < MIN_SIDE or bh < MIN_SIDE or not (0 <= cx < w and 0 <= cy < h):
            continue
        ix, iy = int(cx), int(cy)
        sigma = _sigma(bw / stride, bh / stride)
        peak = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma * sigma))
        np.maximum(heat, peak, out=heat)
        weight[iy, ix] = 1.0
        if row < MAX_PEOPLE:
            size[row] = np.log([bw / stride, bh / stride])
            offset[row] = (cx - ix, cy - iy)
            index[row] = iy * w + ix
            mask[row] = 1.0
            row += 1
    return {"heatmap": heat[None], "weight": weight[None], "size": size, "offset": offset, "index": index, "mask": mask}


def _gather(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) at flat cells (N, M) -> (N, M, C)."""
    flat = maps.flatten(2)
    return flat.gather(2, index[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)


def detection_loss(outputs: tuple[torch.Tensor, ...], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CenterNet's penalty-reduced focal loss on the heatmap (alpha 2, beta 4), L1 on size and
    offset at the centres; normalised by the number of people in the batch."""
    logits, size, offset = outputs
    heat, weight = targets["heatmap"], targets["weight"]
    prob = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    positive = heat.eq(1).float()
    pos = -torch.log(prob) * (1 - prob) ** 2 * positive
    neg = -torch.log(1 - prob) * prob**2 * (1 - heat) ** 4 * (1 - positive) * weight
    mask = targets["mask"][..., None]
    people = positive.sum().clamp(min=1.0)
    focal = (pos.sum() + neg.sum()) / people
    n_rows = mask.sum().clamp(min=1.0)
    size_l1 = (
        F.l1_loss(_gather(size.float(), targets["index"]), targets["size"], reduction="none") * mask
    ).sum() / n_rows
    offset_l1 = (
        F.l1_loss(_gather(offset.float(), targets["index"]), targets["offset"], reduction="none") * mask
    ).sum() / n_rows
    total = focal + size_l1 + offset_l1
    return {"loss": total, "focal": focal.detach(), "size": size_l1.detach(), "offset": offset_l1.detach()}
