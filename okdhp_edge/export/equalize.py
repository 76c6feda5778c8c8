"""Activation equalization: rescale channels so that per-tensor INT8 quantization loses less.

INT8 runtimes quantize an activation tensor with one scale for all of its channels. In a
pre-activation hourglass the residual stream (every skip sum, pooling and upsampling on the way)
carries channels whose ranges differ by an order of magnitude or more, so one scale leaves the
small channels a handful of levels; the BatchNorm that follows then scales that noise back up.
What equalization gains, with each calibration method, is measured in docs/export.md.

The fix is exact in float. A "domain" is a set of tensors tied together by ops that commute with
a positive per-channel scale (add, max-pool, nearest upsampling, ReLU, identity). Its channels
can be multiplied by any s > 0 if every convolution writing into the domain scales its output
channels by s and every convolution reading from it divides its input channels by s. We pick
s_i = (R / r_i) ** strength from calibration ranges r_i (R: their geometric mean), so every
channel spans about the same range. Writers' per-output-channel weights absorb s exactly under
per-channel weight quantization; depthwise readers too; only full convolutions reading a domain
trade a little weight precision for the activation precision.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["EqualizeReport", "equalize_activations"]

_RELU_FUNCTIONS = {F.relu, torch.relu}
_ADD_FUNCTIONS = {operator.add, torch.add}


@dataclass
class EqualizeReport:
    """What was rescaled: one entry per domain, with its channel count and range spread."""

    domains: list[dict] = field(default_factory=list)
    skipped: int = 0

    def to_dict(self) -> dict:
        return {
            "domains": len(self.domains),
            "skipped_domains": self.skipped,
            "spread_before": _summary([d["spread_before"] for d in self.domains]),
            "spread_after": _summary([d["spread_after"] for d in self.domains]),
        }


def _summary(values: list[float]) -> dict:
    if not values:
        return {}
    return {"median": round(float(np.median(values)), 2), "max": round(float(np.max(values)), 2)}


def equalize_activations(
    model: fx.GraphModule,
    calibration: np.ndarray,
    *,
    strength: float = 1.0,
    batch_size: int = 16,
) -> EqualizeReport:
    """Rescale `model` (an fx graph of Conv2d modules, BatchNorms already folded) in place.

    `calibration`: float32 NCHW network inputs whose activation ranges set the scales. The
    model's output is unchanged up to float rounding.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    modules = dict(model.named_modules())
    domains = _domains(model, modules)
    report = EqualizeReport()
    usable = []
    for members in domains:
        plan = _plan(members, modules)
        if plan is None:
            report.skipped += 1
        else:
            usable.append(plan)
    if not usable or strength == 0.0:
        return report
    ranges = _channel_ranges(model, [m for plan in usable for m in plan.members], calibration, batch_size)
    for plan in usable:
        per_tensor = np.stack([ranges[node.name] for node in plan.members])  # (tensors, channels)
        floor = 1e-3 * per_tensor.max()
        log_r = np.log(np.maximum(per_tensor, floor)).mean(axis=0)
        scale = np.exp(strength * (log_r.mean() - log_r))
        _apply(plan, torch.from_numpy(scale.astype(np.float32)), modules)
        after = per_tensor * scale
        report.domains.append(
            {
                "channels": int(len(scale)),
                "tensors": len(plan.members),
                "spread_before": float(np.median(per_tensor.max(1) / np.maximum(per_tensor.min(1), floor))),
                "spread_after": float(np.median(after.max(1) / np.maximum(after.min(1), floor * scale.min()))),
            }
        )
    model.recompile()
    return report


@dataclass
class _Plan:
    members: list[fx.Node]
    writers: list[nn.Conv2d]
    readers: list[nn.Conv2d]


def _domains(model: fx.GraphModule, modules: dict[str, nn.Module]) -> list[list[fx.Node]]:
    """Groups of nodes joined by scale-commuting ops (union-find over the graph)."""
    parent: dict[fx.Node, fx.Node] = {}

    def find(n: fx.Node) -> fx.Node:
        parent.setdefault(n, n)
        while parent[n] is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def union(a: fx.Node, b: fx.Node) -> None:
        parent[find(a)] = find(b)

    for node in model.graph.nodes:
        for source in _commuting_inputs(node, modules):
            union(node, source)
    groups: dict[fx.Node, list[fx.Node]] = {}
    for node in model.graph.nodes:  # graph order keeps results deterministic
        if node in parent:
            groups.setdefault(find(node), []).append(node)
    return list(groups.values())


def _commuting_inputs(node: fx.Node, modules: dict[str, nn.Module]) -> list[fx.Node]:
    """The tensor inputs of `node` that share its per-channel scale, if `node` commutes with one."""
    if node.op == "call_function":
        if node.target in _ADD_FUNCTIONS:
            return [a for a in node.args if isinstance(a, fx.Node)]
        if node.target in _RELU_FUNCTIONS or _is_max_pool(node) or _is_nearest_upsample(node):
            return [node.args[0]]
    if node.op == "call_module" and isinstance(modules[node.target], (nn.ReLU, nn.Identity, nn.MaxPool2d)):
        return [node.args[0]]
    return []


def _is_max_pool(node: fx.Node) -> bool:
    return node.target in (F.max_pool2d, torch.max_pool2d) and not node.kwargs.get("return_indices", False)


def _is_nearest_upsample(node: fx.Node) -> bool:
    return node.target is F.interpolate and node.kwargs.get("mode", "nearest") == "nearest"


def _plan(members: list[fx.Node], modules: dict[str, nn.Module]) -> _Plan | None:
    """Writers and readers of a domain, or None when some producer or user cannot absorb a scale."""
    member_set = set(members)
    writers, readers = [], []
    for node in members:
        module = modules.get(node.target) if node.op == "call_module" else None
        if isinstance(module, nn.Conv2d):
            writers.append(module)
        elif not _commuting_inputs(node, modules):
            return None  # a graph input or an op we cannot see through writes into the domain
        for user in node.users:
            if user in member_set or _is_shape_query(user):
                continue
            reader = modules.get(user.target) if user.op == "call_module" else None
            if not isinstance(reader, nn.Conv2d) or user.args[0] is not node or not _reads_channels(reader):
                return None  # e.g. the graph output: its values must not change
            readers.append(reader)
    if not writers:
        return None
    channels = {w.out_channels for w in writers} | {r.in_channels for r in readers}
    if len(channels) != 1:
        return None
    return _Plan(members, _unique(writers), _unique(readers))


def _is_shape_query(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "size")


def _reads_channels(conv: nn.Conv2d) -> bool:
    return conv.groups == 1 or conv.groups == conv.in_channels == conv.out_channels


def _unique(items: list[nn.Module]) -> list[nn.Module]:
    seen: dict[int, nn.Module] = {}
    for item in items:
        seen.setdefault(id(item), item)
    return list(seen.values())


def _channel_ranges(
    model: fx.GraphModule, nodes: list[fx.Node], calibration: np.ndarray, batch_size: int
) -> dict[str, np.ndarray]:
    """Per-channel max |activation| of `nodes` over the calibration inputs."""
    wanted = {n.name for n in nodes}
    ranges: dict[str, torch.Tensor] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node):
            out = super().run_node(n)
            if n.name in wanted:
                amax = out.detach().abs().amax(dim=(0, 2, 3))
                ranges[n.name] = torch.maximum(ranges[n.name], amax) if n.name in ranges else amax
            return out

    recorder = Recorder(model)
    with torch.no_grad():
        for i in range(0, len(calibration), batch_size):
            recorder.run(torch.from_numpy(np.ascontiguousarray(calibration[i : i + batch_size], dtype=np.float32)))
    return {name: r.numpy().astype(np.float64) for name, r in ranges.items()}


def _apply(plan: _Plan, scale: torch.Tensor, modules: dict[str, nn.Module]) -> None:
    with torch.no_grad():
        for conv in plan.writers:
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            if conv.bias is not None:
                conv.bias.mul_(scale)
        for conv in plan.readers:
            if conv.groups == 1:
                conv.weight.div_(scale.view(1, -1, 1, 1))
            else:  # depthwise: one filter per channel
                conv.weight.div_(scale.view(-1, 1, 1, 1))
