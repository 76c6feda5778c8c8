"""Stacked hourglass building blocks (Newell et al., 2016) in the form OKDHP uses.

Residual unit: pre-activation bottleneck C_in -> C/2 -> C/2 -> C with a 1x1 skip projection
when widths differ. Each stack: hourglass -> residual -> 1x1 conv-BN-ReLU -> 1x1 score; every
stack that feeds another adds its remapped features and scores back onto its input.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Residual", "Hourglass", "HourglassStack", "Stem"]


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1, plus a skip."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + self.skip(x)


class Hourglass(nn.Module):
    """Recursive encoder-decoder: `depth` max-pool levels down, nearest upsampling back up."""

    def __init__(self, channels: int, depth: int = 4) -> None:
        super().__init__()
        self.up = Residual(channels, channels)
        self.down = Residual(channels, channels)
        self.inner = Hourglass(channels, depth - 1) if depth > 1 else Residual(channels, channels)
        self.after = Residual(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.up(x)
        low = self.down(F.max_pool2d(x, 2, 2))
        low = self.after(self.inner(low))
        return skip + F.interpolate(low, size=skip.shape[-2:], mode="nearest")


class HourglassStack(nn.Module):
    """One stack: returns its heatmaps and, if `merge`, the input for the next stack."""

    def __init__(self, channels: int, num_joints: int, depth: int = 4, merge: bool = True) -> None:
        super().__init__()
        self.hourglass = Hourglass(channels, depth)
        self.residual = Residual(channels, channels)
        self.fc = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.score = nn.Conv2d(channels, num_joints, 1)
        self.merge = merge
        if merge:
            self.merge_features = nn.Conv2d(channels, channels, 1)
            self.merge_scores = nn.Conv2d(num_joints, channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.fc(self.residual(self.hourglass(x)))
        heatmaps = self.score(features)
        if not self.merge:
            return heatmaps, None
        return heatmaps, x + self.merge_features(features) + self.merge_scores(heatmaps)


class Stem(nn.Module):
    """7x7/2 conv -> residual to C/2 -> max-pool /2 -> residual -> residual to C.

    The hourglass stacks keep the stem's resolution, so `stride` (input pixels per heatmap pixel)
    is the network's output stride: the one place training, data targets and student specs read it.
    """

    conv_stride: ClassVar[int] = 2
    pool: ClassVar[int] = 2
    stride: ClassVar[int] = conv_stride * pool

    def __init__(self, channels: int) -> None:
        super().__init__()
        first = max(channels // 4, 8)
        mid = max(channels // 2, 8)
        self.conv = nn.Conv2d(3, first, 7, stride=self.conv_stride, padding=3)
        self.bn = nn.BatchNorm2d(first)
        self.res1 = Residual(first, mid)
        self.res2 = Residual(mid, mid)
        self.res3 = Residual(mid, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = F.max_pool2d(self.res1(x), self.pool, self.pool)
        return self.res3(self.res2(x))
