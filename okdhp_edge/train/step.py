"""One optimisation step (forward, loss, backward, update), shared by the trainer and the throughput benchmark."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .distributed import DistContext, all_finite
from .losses import LossParts, OKDHPLoss

__all__ = ["TrainStep", "time_steps"]


@dataclass
class TrainStep:
    """Forward, loss, backward and update of one batch; its pieces are methods so that a CUDA graph
    (okdhp_edge.train.graphs) can capture the forward, loss and backward and run the update eagerly."""

    model: nn.Module  # possibly DDP- and/or compile-wrapped
    loss: OKDHPLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    autocast: contextlib.AbstractContextManager
    ctx: DistContext
    channels_last: bool = False
    grad_clip: float | None = None
    static_grads: bool = False  # True once a CUDA graph writes the .grad tensors: zero them in place, never drop them

    def inputs(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """images (in the step's memory format), target, joint weights and the optional ignore mask, on the device."""
        device = self.ctx.device
        images = batch["image"].to(device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = batch["target"].to(device, non_blocking=True)
        weight = batch["target_weight"].to(device, non_blocking=True)
        ignore = batch["ignore"].to(device, non_blocking=True) if "ignore" in batch else None
        return images, target, weight, ignore

    def forward(
        self,
        images: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor,
        ignore: torch.Tensor | None,
        epoch: float,
        kl_weight: torch.Tensor | None = None,
    ) -> LossParts:
        """The network under autocast, then the loss in fp32 (kl_weight: see OKDHPLoss)."""
        with self.autocast:
            outputs = self.model(images)
        return self.loss(outputs, target, weight, epoch, ignore, kl_weight)

    def backward(self, parts: LossParts) -> None:
        """Gradients of the (fp16: scaled) total into .grad; assumes the grads were dropped or zeroed."""
        self.scaler.scale(parts.total).backward()

    def update(self) -> None:
        """Clip, optimizer (through the scaler), scaler and scheduler: the part a CUDA graph leaves eager."""
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()

    def __call__(self, batch: dict[str, torch.Tensor], epoch: float) -> tuple[LossParts, bool]:
        """Returns the loss terms and whether the loss was finite on every rank; a non-finite
        loss leaves the weights, optimizer and scheduler untouched."""
        parts = self.forward(*self.inputs(batch), epoch)
        if not all_finite(parts.total, self.ctx):
            return parts, False
        self.optimizer.zero_grad(set_to_none=not self.static_grads)
        self.backward(parts)
        self.update()
        return parts, True


def time_steps(
    step: Callable[[dict[str, torch.Tensor], float], tuple[LossParts, bool]],
    batch: dict[str, torch.Tensor],
    device: torch.device,
    untimed: int,
    timed: int,
) -> tuple[float, list[float]]:
    """(seconds of the `untimed` first calls together, seconds of each of the `timed` calls after
    them) of `step` on one `batch`, CUDA work included. RuntimeError on a non-finite loss: a timing
    of a diverged step says nothing."""

    def call() -> None:
        parts, finite = step(batch, 0.0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if not finite:
            raise RuntimeError(f"non-finite loss in a timed training step: {parts.as_dict()}")

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(untimed):
        call()
    warm = time.perf_counter() - start
    times = []
    for _ in range(timed):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return warm, times
