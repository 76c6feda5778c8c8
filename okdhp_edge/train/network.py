"""The network a run trains, per mode, and the students (and FAU ensemble) it hands out.

okdhp / independent: the multi-branch OKDHPNet (independent simply drops the distillation
terms). single: trunk + the target branch as a plain HourglassNet, trained alone with
intermediate supervision: the baseline OKDHP has to beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..models import (
    BranchSpec,
    HourglassNet,
    OKDHPNet,
    OKDHPSpec,
    Preset,
    StudentFileError,
    compression_rate,
    count_cost,
    describe_ensemble,
    describe_student,
    extract_student,
    load_student,
    save_student,
)
from ..spec import ArchSpec, EnsembleArchSpec, ModelSpec
from .config import ConfigError, ModelConfig, TrainConfig, parse_branches

__all__ = [
    "BranchChoice",
    "ENSEMBLE_NAME",
    "SingleNet",
    "build_network",
    "choose_branches",
    "init_from_students",
    "network_spec",
    "run_provenance",
    "student_models",
    "target_branch",
    "write_ensemble",
    "write_students",
]

TARGET_ALIAS = "target"  # file stem of the copy of the target student in RUN/students/
ENSEMBLE_NAME = "ensemble"  # file stem of the FAU ensemble in RUN/, beside RUN/students/


class SingleNet(HourglassNet):
    """A plain student whose forward returns the training dict (trunk stacks, one branch, no ensemble).

    Its state_dict is exactly HourglassNet's, so the student file is its weights as they are.
    """

    def forward(self, x: torch.Tensor) -> dict[str, list]:  # type: ignore[override]
        outs = self.forward_all(x)
        t = self.arch.trunk_stacks
        return {"trunk": outs[:t], "branches": [outs[t:]]}


@dataclass(frozen=True)
class BranchChoice:
    """One branch picked for a requested compression fraction."""

    requested: float
    branch: BranchSpec
    macs: int
    achieved: float


def network_spec(preset: Preset, model_cfg: ModelConfig) -> tuple[OKDHPSpec, list[BranchChoice]]:
    """The multi-branch spec for a run: preset branches, explicit `branches`, or by `compression`."""
    if model_cfg.branches is not None:
        return preset.network_spec([BranchSpec(s, c) for s, c in parse_branches(model_cfg.branches)]), []
    if model_cfg.compression is not None:
        choices = choose_branches(preset, model_cfg.compression)
        return preset.network_spec([c.branch for c in choices]), choices
    return preset.network_spec(), []


def target_branch(spec: OKDHPSpec, preset: Preset, target: int | None) -> int:
    """The deployed branch: as given, or the cheapest one (the paper's unbalanced target)."""
    if target is not None:
        if target >= len(spec.branches):
            raise ValueError(
                f"model.target={target} but the network has {len(spec.branches)} branches (valid: "
                f"0..{len(spec.branches) - 1})"
            )
        return target
    costs = [_student_macs(spec, b, preset.input_size) for b in spec.branches]
    return min(range(len(costs)), key=lambda b: (costs[b], b))


def choose_branches(preset: Preset, fractions: list[float]) -> list[BranchChoice]:
    """Per fraction, the (stacks, width) branch whose student MACs best match fraction * the largest
    preset branch's student MACs, from a grid of depths 1..max preset depth and widths 16..max width."""
    spec = preset.network_spec()
    max_stacks = max(b.stacks for b in spec.branches)
    max_width = max(b.channels for b in spec.branches)
    widths = {w for w in range(16, min(max_width, 64) + 1, 8)} | {
        w for w in range(64, max_width + 1, 16 if max_width <= 128 else 32)
    }
    widths |= {b.channels for b in spec.branches}
    grid = [BranchSpec(s, w) for s in range(1, max_stacks + 1) for w in sorted(widths)]
    costs = {b: _student_macs(spec, b, preset.input_size) for b in grid}
    reference = max(_student_macs(spec, b, preset.input_size) for b in spec.branches)
    choices = []
    for f in fractions:
        best = min(grid, key=lambda b: (abs(math.log(costs[b] / (f * reference))), costs[b]))
        choices.append(
            BranchChoice(requested=f, branch=best, macs=costs[best], achieved=compression_rate(preset, costs[best]))
        )
    return choices


def _student_macs(spec: OKDHPSpec, branch: BranchSpec, input_size: tuple[int, int]) -> int:
    """MACs of trunk + `branch` as a student. Stacks of one width are identical, so MACs are linear
    in the stack count: two counts per width give every depth."""
    one, two = (
        _counted_macs(
            spec.num_joints,
            spec.trunk_stacks,
            spec.trunk_channels,
            s,
            branch.channels,
            spec.hourglass_depth,
            input_size,
        )
        for s in (1, 2)
    )
    return one + (branch.stacks - 1) * (two - one)


@lru_cache(maxsize=None)
def _counted_macs(
    joints: int,
    trunk_stacks: int,
    trunk_channels: int,
    stacks: int,
    channels: int,
    depth: int,
    input_size: tuple[int, int],
) -> int:
    """MACs of a trunk + branch student, counted on the meta device (no memory, no real compute)."""
    arch = ArchSpec(
        num_joints=joints,
        trunk_stacks=trunk_stacks,
        trunk_channels=trunk_channels,
        branch_stacks=stacks,
        branch_channels=channels,
        hourglass_depth=depth,
    )
    with torch.device("meta"):
        model = HourglassNet(arch)
    return count_cost(model, input_size).macs


def build_network(
    mode: str, spec: OKDHPSpec, target: int, trunk_grad: str = "all", ensemble_grad: str = "all"
) -> nn.Module:
    """OKDHPNet for okdhp/independent, SingleNet (trunk + target branch) for single. trunk_grad
    "target": only the target branch's losses reach the shared trunk (the others see it detached);
    ensemble_grad "fau": the ensemble's loss trains the FAU only (the branches' outputs enter it detached)."""
    if mode == "single":
        return SingleNet(spec.student_arch(target))
    return OKDHPNet(spec, target if trunk_grad == "target" else None, detach_members=ensemble_grad == "fau")


def init_from_students(model: nn.Module, paths: list[str], input_size: tuple[int, int]) -> list[str]:
    """Start `model` from trained student files (fine-tuning); returns what went where, for the log.

    Each student (trunk + one branch) fills the trunk and the first branch of its shape not yet
    filled; students of one earlier run share their trunk, so giving all of them (or their folder)
    restores that run's network but its FAU. A single-mode network takes one student of its shape.
    """
    filled: list[str] = []
    state = model.state_dict()
    taken: set[int] = set()
    for path in _student_files(paths):
        try:
            student, spec = load_student(path)
        except StudentFileError as err:
            raise ConfigError(f"model.init: {err}") from None
        arch = spec.arch
        where = f"model.init {path}"
        if isinstance(arch, EnsembleArchSpec):
            raise ConfigError(
                f"{where}: is a FAU ensemble (a teacher), not a student; start from the run's students instead"
            )
        if (spec.input.width, spec.input.height) != tuple(input_size):
            raise ConfigError(
                f"{where}: trained at input {spec.input.width}x{spec.input.height}, this run's network takes "
                f"{input_size[0]}x{input_size[1]}; pick the preset it came from (its JSON names it)"
            )
        if isinstance(model, OKDHPNet):
            net = model.spec
            trunk = (net.num_joints, net.trunk_stacks, net.trunk_channels, net.hourglass_depth)
            if (arch.num_joints, arch.trunk_stacks, arch.trunk_channels, arch.hourglass_depth) != trunk:
                raise ConfigError(
                    f"{where}: its trunk ({arch.trunk_stacks}x{arch.trunk_channels}, depth {arch.hourglass_depth}, "
                    f"{arch.num_joints} joints) is not this network's ({net.trunk_stacks}x{net.trunk_channels}, "
                    f"depth {net.hourglass_depth}, {net.num_joints} joints)"
                )
            shape = BranchSpec(arch.branch_stacks, arch.branch_channels)
            branch = next((b for b, spec_b in enumerate(net.branches) if spec_b == shape and b not in taken), None)
            if branch is None:
                raise ConfigError(
                    f"{where}: no free branch {shape} in this network ({', '.join(map(str, net.branches))})"
                )
            taken.add(branch)
            for key, value in student.state_dict().items():
                state[f"branches.{branch}.{key[len('branch.') :]}" if key.startswith("branch.") else key] = value
            filled.append(f"{Path(path).name} -> trunk + b{branch}")
        else:
            if arch != model.arch or filled:
                raise ConfigError(f"{where}: a single-mode run starts from one student of its own shape ({model.arch})")
            state.update(student.state_dict())
            filled.append(f"{Path(path).name} -> the student")
    model.load_state_dict(state, strict=True)
    return filled


def _student_files(paths: list[str]) -> list[str]:
    """Files as given; a folder stands for its students (RUN/students without the target.* copy)."""
    files = []
    for path in paths:
        folder = Path(path).expanduser()
        if folder.is_dir():
            found = sorted(str(p) for p in folder.glob("*.safetensors") if p.stem != TARGET_ALIAS)
            if not found:
                raise ConfigError(f"model.init {path}: a folder without student .safetensors files")
            files += found
        else:
            files.append(path)
    return files


def student_models(model: nn.Module, mode: str, target: int) -> dict[int, HourglassNet]:
    """branch index -> its standalone student (copied weights, eval mode)."""
    if mode == "single":
        student = HourglassNet(model.arch)
        student.load_state_dict(model.state_dict())
        return {target: student.eval()}
    return {b: extract_student(model, b).eval() for b in range(len(model.branches))}


def write_students(
    model: nn.Module,
    mode: str,
    target: int,
    preset: Preset,
    spec: OKDHPSpec,
    out_dir: Path,
    provenance: dict,
    metrics: dict[int, dict] | None = None,
) -> dict[int, tuple[Path, ModelSpec]]:
    """Save every trained branch's student as `out_dir/<name>.safetensors` + `.json`.

    The target student is also written as `out_dir/target.*`, so scripts and docs can name the
    student to deploy without knowing the preset's branch names.
    """
    written = {}
    for b, student in student_models(model, mode, target).items():
        extra = {**provenance, "target": b == target}
        if metrics and b in metrics:
            extra["metrics"] = metrics[b]
        desc = describe_student(preset, b, spec, provenance=extra)
        written[b] = (save_student(student, desc, out_dir / desc.name), desc)
        if b == target:
            save_student(student, desc, out_dir / TARGET_ALIAS)
    return written


def run_provenance(cfg: TrainConfig, run: str, epochs: int) -> dict:
    """What a run's model files record about how they were trained."""
    return {
        "mode": cfg.mode,
        "epochs": epochs,
        "data": cfg.data.source,
        "run": run,
        "seed": cfg.system.seed,
        **({"init": cfg.model.init} if cfg.model.init else {}),
    }


def write_ensemble(
    model: OKDHPNet, preset: Preset, spec: OKDHPSpec, out_dir: Path, provenance: dict, metrics: dict | None = None
) -> tuple[Path, ModelSpec]:
    """Save the FAU ensemble as `out_dir/ensemble.safetensors` + `.json`: the strongest teacher a run
    leaves (every branch and the FAU), a model file like a student's. The training net's weights are
    the ensemble's as they are; an independent run's FAU is untrained, so only okdhp runs write one."""
    extra = {**provenance, **({"metrics": metrics} if metrics else {})}
    desc = describe_ensemble(preset, spec, provenance=extra)
    return save_student(model, desc, out_dir / ENSEMBLE_NAME), desc
