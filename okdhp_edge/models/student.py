"""Student extraction and the student file format (safetensors weights + JSON spec).

A student is trunk + one branch, with no FAU: a plain network that computes exactly what its
branch computed inside the multi-branch model. Files never go through pickle.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..spec import SPEC_METADATA_KEY, InputSpec, ModelSpec, SpecError
from .cost import Cost, count_cost, meta_device
from .okdhp import OKDHPNet, OKDHPSpec
from .posenet import HourglassNet
from .presets import Preset

__all__ = [
    "StudentFileError", "branch_costs", "compression_rate", "describe_student", "extract_student", "load_student", "save_student", "student_paths",
]


class StudentFileError(ValueError):
    """A student file that is missing, corrupt or does not match its spec."""


def extract_student(model: OKDHPNet, branch: int) -> HourglassNet:
    """Trunk + branch `branch` as a standalone HourglassNet with copied weights."""
    if not 0 <= branch < len(model.branches):
        raise IndexError(f"branch {branch} out of range: the model has {len(model.branches)} branches")
    student = HourglassNet(model.spec.student_arch(branch))
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith(("stem.", "trunk.")):
            state[key] = value
        elif key.startswith(f"branches.{branch}."):
            state["branch." + key[len(f"branches.{branch}."):]] = value
    student.load_state_dict(state, strict=True)
    param = next(model.parameters())
    return student.to(device=param.device, dtype=param.dtype).train(model.training)


def student_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, spec) paths for `x.safetensors`, `x.json` or the stem `x`."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_student(student: HourglassNet, spec: ModelSpec, path: str | os.PathLike) -> Path:
    """Write weights and spec atomically; returns the weights path."""
    from safetensors.torch import save_file

    weights_path, spec_path = student_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in student.state_dict().items()}
    tmp = weights_path.with_name(weights_path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt", SPEC_METADATA_KEY: spec.to_json()})
    os.replace(tmp, weights_path)
    spec.save(spec_path)
    return weights_path


def load_student(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[HourglassNet, ModelSpec]:
    """Rebuild a student from its spec and load its weights (eval mode). Never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, spec_path = student_paths(path)
    if not weights_path.is_file():
        raise StudentFileError(f"{weights_path}: student weights not found (expected NAME.safetensors next to NAME.json)")
    try:
        spec = ModelSpec.load(spec_path)
    except SpecError as err:
        raise StudentFileError(str(err)) from None
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise StudentFileError(f"{weights_path}: cannot read safetensors ({err}); the file is corrupt or truncated, re-export it") from None
    model = HourglassNet(spec.arch)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise StudentFileError(
            f"{weights_path}: weights do not match the architecture in {spec_path} "
            f"(missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: {unexpected[:3]})"
        )
    for key, tensor in tensors.items():
        if tensor.shape != expected[key].shape:
            raise StudentFileError(
                f"{weights_path}: weights do not match the architecture in {spec_path} "
                f"(tensor {key!r} has shape {tuple(tensor.shape)}, the spec implies {tuple(expected[key].shape)})"
            )
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), spec


def branch_costs(net_spec: OKDHPSpec, input_size: tuple[int, int]) -> list[Cost]:
    """Cost of every branch's student (trunk + branch) at `input_size` (width, height)."""
    with meta_device:  # no weights are allocated: counting is instant even for paper-size nets
        nets = [HourglassNet(net_spec.student_arch(b)) for b in range(len(net_spec.branches))]
    return [count_cost(net, input_size) for net in nets]


def compression_rate(preset: Preset, macs: int) -> float:
    """A student's MACs / the MACs of the largest student among the preset's own branches.

    The one definition behind `--compression`, the training log and the student files: a run with
    other branches is measured against the same reference, not against its own largest branch.
    """
    reference = max(c.macs for c in branch_costs(preset.network_spec(), preset.input_size))
    return round(macs / reference, 4)


def describe_student(
    preset: Preset,
    branch: int,
    net_spec: OKDHPSpec | None = None,
    provenance: dict | None = None,
) -> ModelSpec:
    """The ModelSpec of branch `branch`'s student: architecture, geometry, cost, compression rate."""
    net_spec = net_spec or preset.network_spec()
    costs = branch_costs(net_spec, preset.input_size)
    b = net_spec.branches[branch]
    return ModelSpec(
        name=f"{preset.name}-b{branch}-{b.stacks}x{b.channels}",
        arch=net_spec.student_arch(branch),
        skeleton=preset.get_skeleton(),
        input=InputSpec(width=preset.input_size[0], height=preset.input_size[1]),
        heatmap_stride=net_spec.stride,
        compression_rate=compression_rate(preset, costs[branch].macs),
        params=costs[branch].params,
        macs=costs[branch].macs,
        provenance={"preset": preset.name, "branch": branch, **(provenance or {})},
    )
