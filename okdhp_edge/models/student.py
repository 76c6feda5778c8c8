"""Student extraction, description and cost (models/files.py writes and reads student files).

A student is trunk + one branch, with no FAU: a plain network that computes exactly what its
branch computed inside the multi-branch model.
"""

from __future__ import annotations

from ..spec import InputSpec, ModelSpec
from .cost import Cost, count_cost, meta_device
from .okdhp import OKDHPNet, OKDHPSpec
from .posenet import HourglassNet
from .presets import Preset

__all__ = ["branch_costs", "compression_rate", "describe_student", "extract_student"]


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
            state["branch." + key[len(f"branches.{branch}.") :]] = value
    student.load_state_dict(state, strict=True)
    param = next(model.parameters())
    return student.to(device=param.device, dtype=param.dtype).train(model.training)


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
