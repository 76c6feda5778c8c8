"""Export-time rewrites of the student that keep its output while making converters' lives easy.

Every BatchNorm disappears: one that directly follows a convolution is folded into it; a
pre-activation one (BN-ReLU-conv on a residual sum) becomes a 1x1 depthwise convolution, which
every quantizer knows how to quantize (a bare BatchNorm is left in float by ONNX Runtime's and
PT2E's quantizers, which costs a dequantize/quantize pair around each one).
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

__all__ = ["ImageInput", "ChannelsLast", "fold_batchnorm", "prepare_student"]


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) that an eval-mode BatchNorm applies."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    shift = -bn.running_mean * scale
    if bn.affine:
        shift = shift * bn.weight + bn.bias
        scale = scale * bn.weight
    return scale.detach(), shift.detach()


def _fold_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale, shift = _bn_affine(bn)
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter(conv.weight.detach() * scale.view(-1, 1, 1, 1))
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(shift)
    fused.bias = nn.Parameter(bias * scale + shift)
    return fused


def _as_depthwise(bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale, shift = _bn_affine(bn)
    conv = nn.Conv2d(bn.num_features, bn.num_features, 1, groups=bn.num_features, bias=True)
    conv.weight = nn.Parameter(scale.view(-1, 1, 1, 1).clone())
    conv.bias = nn.Parameter(shift.clone())
    return conv.to(bn.running_mean.device)


def fold_batchnorm(model: nn.Module) -> fx.GraphModule:
    """An fx copy of `model` (eval mode) with no BatchNorm2d left; outputs match to float rounding."""
    model = copy.deepcopy(model).eval()
    graph_module = fx.symbolic_trace(model)
    modules = dict(graph_module.named_modules())
    for node in list(graph_module.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        bn = modules[node.target]
        source = node.args[0]
        producer = modules.get(source.target) if isinstance(source, fx.Node) and source.op == "call_module" else None
        if isinstance(producer, nn.Conv2d) and len(source.users) == 1:
            _replace_module(graph_module, source.target, _fold_into_conv(producer, bn))
            node.replace_all_uses_with(source)
            graph_module.graph.erase_node(node)
        else:
            _replace_module(graph_module, node.target, _as_depthwise(bn))
    graph_module.graph.lint()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return graph_module.eval()


def _replace_module(root: nn.Module, target: str, new: nn.Module) -> None:
    parent_name, _, attr = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


class ChannelsLast(nn.Module):
    """NHWC in, NHWC out around an NCHW network: lets TFLite drop its boundary transposes."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ImageInput(nn.Module):
    """Takes 0-255 RGB pixels (NCHW) and normalises inside the network with the spec's mean/std.

    Core ML image inputs only offer one scale for all channels; the per-channel std of the
    student's normalisation therefore lives in the graph, which keeps the pixels exact.
    """

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) * self.inv_std)


def prepare_student(model: nn.Module, nhwc: bool = False) -> nn.Module:
    """The student as converters should see it: eval mode, BatchNorms folded, optional NHWC I/O."""
    folded = fold_batchnorm(model)
    return (ChannelsLast(folded) if nhwc else folded).eval()
