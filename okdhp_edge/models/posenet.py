"""Plain pose networks: the deployable student (stem + trunk stacks + one branch)."""

from __future__ import annotations

import torch
from torch import nn

from ..spec import ArchSpec
from .hourglass import HourglassStack, Stem

__all__ = ["Branch", "HourglassNet", "stacked_hourglass", "hg2", "hg4", "hg8"]


class Branch(nn.Module):
    """Stacks after the trunk, with a 1x1 projection when the branch is wider or narrower."""

    def __init__(self, in_channels: int, channels: int, num_stacks: int, num_joints: int, depth: int) -> None:
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"a branch needs at least one stack, got {num_stacks}")
        self.proj = (
            nn.Identity()
            if in_channels == channels
            else nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        )
        self.stacks = nn.ModuleList(
            HourglassStack(channels, num_joints, depth, merge=i < num_stacks - 1) for i in range(num_stacks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.proj(x)
        outputs = []
        for stack in self.stacks:
            heatmaps, x = stack(x)
            outputs.append(heatmaps)
        return outputs


def run_trunk(stem: nn.Module, trunk: nn.ModuleList, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Stem plus shared stacks: the trunk's heatmaps and the features handed to the branches."""
    x = stem(x)
    outputs = []
    for stack in trunk:
        heatmaps, x = stack(x)
        outputs.append(heatmaps)
    return outputs, x


class HourglassNet(nn.Module):
    """A plain stacked hourglass; `forward` gives the final heatmaps, `forward_all` every stack's."""

    def __init__(self, arch: ArchSpec) -> None:
        super().__init__()
        if arch.type != "hourglass":
            raise ValueError(f"unknown architecture type {arch.type!r}; valid: 'hourglass'")
        self.arch = arch
        self.stem = Stem(arch.trunk_channels)
        self.trunk = nn.ModuleList(
            HourglassStack(arch.trunk_channels, arch.num_joints, arch.hourglass_depth, merge=True)
            for _ in range(arch.trunk_stacks)
        )
        self.branch = Branch(
            arch.trunk_channels, arch.branch_channels, arch.branch_stacks, arch.num_joints, arch.hourglass_depth
        )

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        trunk_out, features = run_trunk(self.stem, self.trunk, x)
        return trunk_out + self.branch(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[-1]


def stacked_hourglass(num_stacks: int, channels: int = 256, num_joints: int = 16, depth: int = 4) -> HourglassNet:
    """The classic N-stack hourglass (all stacks in one branch, no trunk split)."""
    return HourglassNet(
        ArchSpec(
            num_joints=num_joints,
            trunk_stacks=0,
            trunk_channels=channels,
            branch_stacks=num_stacks,
            branch_channels=channels,
            hourglass_depth=depth,
        )
    )


def hg2(num_joints: int = 16) -> HourglassNet:
    return stacked_hourglass(2, 256, num_joints)


def hg4(num_joints: int = 16) -> HourglassNet:
    return stacked_hourglass(4, 256, num_joints)


def hg8(num_joints: int = 16) -> HourglassNet:
    return stacked_hourglass(8, 256, num_joints)
