"""The run's Adam, fused: one kernel call per step instead of a loop over every parameter tensor.

torch's default Adam runs a Python loop of about nine ops per parameter tensor on the CPU (the
paper-mpii network has some 1,500 tensors: most of a step's ops) and a dozen multi-tensor kernels on
CUDA; the fused implementation does the same update in one call per device and dtype, with the
same maths. Checkpoints stay interchangeable with the unfused optimizer: `load_adam_state` keeps
this optimizer's implementation whatever the checkpoint's param groups say.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

__all__ = ["FUSED_DEVICES", "load_adam_state", "make_adam"]

FUSED_DEVICES = ("cpu", "cuda")  # torch >= 2.4 (the project's floor) has fused Adam kernels for both
_IMPLEMENTATION = ("fused", "foreach", "capturable")  # param-group flags that choose the code path, not the maths


def make_adam(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam over `params`, fused where every parameter lives on a device with the fused kernel."""
    params = list(params)
    fused = bool(params) and all(p.device.type in FUSED_DEVICES for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def load_adam_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """optimizer.load_state_dict(state), keeping `optimizer`'s implementation flags.

    load_state_dict adopts the saved param groups whole, implementation flags included, so a
    checkpoint of the unfused optimizer would silently turn the fused one back into the loop (and a
    fused checkpoint on another device would keep its flags). The step counters are moved to where
    the kept implementation wants them: on the parameter's device as float32 for fused/capturable,
    as load_state_dict itself places them.
    """
    flags = [{key: group[key] for key in _IMPLEMENTATION if key in group} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kept in zip(optimizer.param_groups, flags):
        group.update(kept)
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            if isinstance(step, torch.Tensor):
                optimizer.state[p]["step"] = (
                    step.to(torch.float32).to(p.device) if on_device else step.to(torch.float32).cpu()
                )
