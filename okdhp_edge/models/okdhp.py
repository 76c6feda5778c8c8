"""The multi-branch OKDHP training network and its Feature Aggregation Unit (FAU).

Shared stem + trunk stacks feed B branches (each its own depth and width). The FAU looks at
the trunk features and decides, per image and per joint, how much each branch's FINAL heatmap
counts in the ensemble that later teaches every branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..spec import ArchSpec, EnsembleArchSpec
from .hourglass import HourglassStack, Stem
from .posenet import Branch, run_trunk

__all__ = ["BranchSpec", "OKDHPSpec", "FeatureAggregationUnit", "OKDHPNet"]


@dataclass(frozen=True)
class BranchSpec:
    stacks: int
    channels: int

    def __str__(self) -> str:
        return f"{self.stacks}x{self.channels}"


@dataclass
class OKDHPSpec:
    """Shape of a multi-branch network. Balanced and unbalanced OKDHP differ only in `branches`."""

    num_joints: int = 16
    trunk_stacks: int = 2
    trunk_channels: int = 256
    branches: list[BranchSpec] = field(default_factory=lambda: [BranchSpec(2, 256)] * 3)
    hourglass_depth: int = 4
    fau_reduction: int = 4

    def __post_init__(self) -> None:
        self.branches = [b if isinstance(b, BranchSpec) else BranchSpec(*b) for b in self.branches]
        if not self.branches:
            raise ValueError("an OKDHP network needs at least one branch")
        for b in self.branches:
            if b.stacks < 1 or b.channels < 8:
                raise ValueError(f"branch {b}: needs >= 1 stack and >= 8 channels")

    @property
    def stride(self) -> int:
        """Input pixels per heatmap pixel of every output (the stem's downsampling)."""
        return Stem.stride

    @classmethod
    def from_ensemble_arch(cls, arch: EnsembleArchSpec) -> OKDHPSpec:
        return cls(
            num_joints=arch.num_joints,
            trunk_stacks=arch.trunk_stacks,
            trunk_channels=arch.trunk_channels,
            branches=[BranchSpec(*b) for b in arch.branches],
            hourglass_depth=arch.hourglass_depth,
            fau_reduction=arch.fau_reduction,
        )

    def ensemble_arch(self) -> EnsembleArchSpec:
        """The architecture of the whole net as a file's spec records it (see models/ensemble.py)."""
        return EnsembleArchSpec(
            num_joints=self.num_joints,
            trunk_stacks=self.trunk_stacks,
            trunk_channels=self.trunk_channels,
            branches=[[b.stacks, b.channels] for b in self.branches],
            hourglass_depth=self.hourglass_depth,
            fau_reduction=self.fau_reduction,
        )

    def student_arch(self, branch: int) -> ArchSpec:
        b = self.branches[branch]
        return ArchSpec(
            num_joints=self.num_joints,
            trunk_stacks=self.trunk_stacks,
            trunk_channels=self.trunk_channels,
            branch_stacks=b.stacks,
            branch_channels=b.channels,
            hourglass_depth=self.hourglass_depth,
        )


class FeatureAggregationUnit(nn.Module):
    """Multi-scale paths (3x3, 5x5, 7x7 conv and average pooling) -> per-branch, per-joint weights."""

    def __init__(self, channels: int, num_branches: int, num_joints: int, reduction: int = 4) -> None:
        super().__init__()
        self.paths = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, k, padding=k // 2), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
            )
            for k in (3, 5, 7)
        )
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        hidden = max(channels // reduction, 8)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_branches * num_joints)
        )
        self.num_branches = num_branches
        self.num_joints = num_joints

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Returns weights (N, B, K) that sum to 1 over the branches."""
        fused = self.pool(features)
        for path in self.paths:
            fused = fused + path(features)
        logits = self.fc(fused.mean(dim=(2, 3))).view(-1, self.num_branches, self.num_joints)
        return logits.softmax(dim=1)


class OKDHPNet(nn.Module):
    """Trunk + B branches + FAU. `forward` returns a dict of every supervised output."""

    def __init__(self, spec: OKDHPSpec, trunk_branch: int | None = None, detach_members: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.trunk_branch = trunk_branch  # None: every branch and the FAU train the trunk; else only this branch
        self.detach_members = detach_members  # True: the ensemble's loss trains the FAU only, not the branches
        self.stem = Stem(spec.trunk_channels)
        self.trunk = nn.ModuleList(
            HourglassStack(spec.trunk_channels, spec.num_joints, spec.hourglass_depth, merge=True)
            for _ in range(spec.trunk_stacks)
        )
        self.branches = nn.ModuleList(
            Branch(spec.trunk_channels, b.channels, b.stacks, spec.num_joints, spec.hourglass_depth)
            for b in spec.branches
        )
        self.fau = FeatureAggregationUnit(spec.trunk_channels, len(spec.branches), spec.num_joints, spec.fau_reduction)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list]:
        """trunk: trunk stacks' heatmaps; branches: per branch, its stacks' heatmaps (last = final);
        ensemble: FAU-weighted sum of every branch's final heatmaps; weights: (N, B, K)."""
        trunk_out, features = run_trunk(self.stem, self.trunk, x)
        apart = features if self.trunk_branch is None else features.detach()
        branch_out = [branch(features if b == self.trunk_branch else apart) for b, branch in enumerate(self.branches)]
        weights = self.fau(apart)
        finals = torch.stack([outs[-1] for outs in branch_out], dim=1)  # (N, B, K, h, w)
        if self.detach_members:
            finals = finals.detach()
        ensemble = (weights[..., None, None] * finals).sum(dim=1)
        return {"trunk": trunk_out, "branches": branch_out, "ensemble": ensemble, "weights": weights}

    def branch_forward(self, x: torch.Tensor, branch: int) -> torch.Tensor:
        """Final heatmaps of one branch alone (what its extracted student computes)."""
        _, features = run_trunk(self.stem, self.trunk, x)
        return self.branches[branch](features)[-1]
