"""One optimisation step (forward, loss, backward, update), shared by the trainer and the throughput benchmark."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from .distributed import DistContext, all_finite
from .losses import LossParts, OKDHPLoss

__all__ = ["TrainStep", "amp_setup"]


def amp_setup(enabled: bool, device: torch.device) -> tuple[contextlib.AbstractContextManager, torch.amp.GradScaler, str]:
    """Autocast context, grad scaler and a label: bf16 where the GPU supports it (no scaler needed),
    else fp16 with a GradScaler; fp32 (no-op context, disabled scaler) off CUDA or when not enabled."""
    if not (enabled and device.type == "cuda"):
        return contextlib.nullcontext(), torch.amp.GradScaler("cuda", enabled=False), "fp32"
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return torch.autocast("cuda", dtype=dtype), scaler, "bf16" if dtype == torch.bfloat16 else "fp16+GradScaler"


@dataclass
class TrainStep:
    model: nn.Module  # possibly DDP- and/or compile-wrapped
    loss: OKDHPLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    autocast: contextlib.AbstractContextManager
    ctx: DistContext
    channels_last: bool = False
    grad_clip: float | None = None

    def __call__(self, batch: dict[str, torch.Tensor], epoch: float) -> tuple[LossParts, bool]:
        """Returns the loss terms and whether the loss was finite on every rank; a non-finite
        loss leaves the weights, optimizer and scheduler untouched."""
        device = self.ctx.device
        images = batch["image"].to(device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = batch["target"].to(device, non_blocking=True)
        weight = batch["target_weight"].to(device, non_blocking=True)
        with self.autocast:
            outputs = self.model(images)
        parts = self.loss(outputs, target, weight, epoch)
        if not all_finite(parts.total, self.ctx):
            return parts, False
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(parts.total).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        return parts, True
