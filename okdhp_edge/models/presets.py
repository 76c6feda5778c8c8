"""The preset registry: each named preset is a network (skeleton, input size, trunk, branches) and
the training recipe that goes with it, so nothing else keeps a list of presets to match by name.

Recipes are data: YAML files shipped in `okdhp_edge/configs/` (mode, model, data, loss, optim,
system, eval), read by `okdhp_edge.train.config`. A recipe's `model.preset` names its network.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from ..skeleton import Skeleton, get_skeleton
from .okdhp import BranchSpec, OKDHPSpec

__all__ = ["Preset", "PRESETS", "RECIPE_DIR", "get_preset"]

RECIPE_DIR = "configs"  # package folder (in okdhp_edge) of the recipe YAML files


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
    recipe: str | None = None  # file name in okdhp_edge/configs/; None: a network without a training recipe

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

    def recipe_text(self) -> str:
        """The recipe YAML, read from the installed package (a wheel as well as a checkout)."""
        if self.recipe is None:
            raise ValueError(f"preset {self.name!r} has no training recipe")
        return (resources.files("okdhp_edge") / RECIPE_DIR / self.recipe).read_text(encoding="utf-8")


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "paper-mpii",
            "paper's balanced setting: 2 shared + 3 branches x 2 stacks (4-stack students)",
            "mpii16",
            (256, 256),
            2,
            256,
            (BranchSpec(2, 256),) * 3,
            recipe="paper-mpii.yaml",
        ),
        Preset(
            "paper-unbalanced",
            "paper's unbalanced setting: 2 shared + 2/4/6 stacks (4/6/8-stack students)",
            "mpii16",
            (256, 256),
            2,
            256,
            (BranchSpec(6, 256), BranchSpec(4, 256), BranchSpec(2, 256)),
            recipe="paper-unbalanced.yaml",
        ),
        Preset(
            "edge",
            "three COCO students from one run, by depth and width; the smallest under 1 GMAC",
            "coco17",
            (192, 256),
            1,
            64,
            (BranchSpec(3, 128), BranchSpec(2, 96), BranchSpec(1, 64)),
            recipe="edge.yaml",
        ),
        Preset(
            "tiny",
            "CPU-sized COCO students at 96x128 for the offline default run",
            "coco17",
            (96, 128),
            1,
            48,
            (BranchSpec(2, 64), BranchSpec(1, 48), BranchSpec(1, 32)),
            hourglass_depth=3,
            recipe="tiny.yaml",
        ),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}") from None
