"""Named network presets: the paper's settings, an edge family and a CPU-sized one."""
from __future__ import annotations

from dataclasses import dataclass

from ..skeleton import Skeleton, get_skeleton
from .okdhp import BranchSpec, OKDHPSpec

__all__ = ["Preset", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    skeleton: str
    input_size: tuple[int, int]  # (width, height)
    trunk_stacks: int
    trunk_channels: int
    branches: tuple[BranchSpec, ...]
    hourglass_depth: int = 4

    def network_spec(self, branches: list[BranchSpec] | None = None) -> OKDHPSpec:
        sk = self.get_skeleton()
        return OKDHPSpec(
            num_joints=sk.num_keypoints,
            trunk_stacks=self.trunk_stacks,
            trunk_channels=self.trunk_channels,
            branches=list(branches or self.branches),
            hourglass_depth=self.hourglass_depth,
        )

    def get_skeleton(self) -> Skeleton:
        return get_skeleton(self.skeleton)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "paper-mpii", "paper's balanced setting: 2 shared + 3 branches x 2 stacks (4-stack students)",
            "mpii16", (256, 256), 2, 256, (BranchSpec(2, 256),) * 3,
        ),
        Preset(
            "paper-unbalanced", "paper's unbalanced setting: 2 shared + 2/4/6 stacks (4/6/8-stack students)",
            "mpii16", (256, 256), 2, 256, (BranchSpec(6, 256), BranchSpec(4, 256), BranchSpec(2, 256)),
        ),
        Preset(
            "edge", "three COCO students from one run, by depth and width; the smallest under 1 GMAC",
            "coco17", (192, 256), 1, 64, (BranchSpec(3, 128), BranchSpec(2, 96), BranchSpec(1, 64)),
        ),
        Preset(
            "tiny", "CPU-sized COCO students at 96x128 for the offline default run",
            "coco17", (96, 128), 1, 48, (BranchSpec(2, 64), BranchSpec(1, 48), BranchSpec(1, 32)), hourglass_depth=3,
        ),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}") from None
