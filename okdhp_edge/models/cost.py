"""Parameter and MAC counting with forward hooks on convolutions and linear layers.

MACs count one multiply-accumulate per weight use in Conv/Linear layers only (the usual
convention for pose papers); normalisation, activations and pooling are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Cost", "count_cost", "meta_device"]

meta_device = torch.device("meta")


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int

    @property
    def mparams(self) -> float:
        return self.params / 1e6

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def count_cost(model: nn.Module, input_size: tuple[int, int], params_of: nn.Module | None = None) -> Cost:
    """Params of `params_of` (default: the model) and MACs of one forward at (width, height)."""
    macs = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        macs += int(output[0].numel()) * per_output

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        macs += int(output[0].numel()) * module.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        # Shapes are all the count needs: build the model under `meta_device` and the forward
        # does no arithmetic (instant even for the paper's 68-GMAC training net).
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size[1], input_size[0], device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in (params_of or model).parameters())
    return Cost(params=params, macs=macs)
