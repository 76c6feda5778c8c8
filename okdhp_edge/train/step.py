"""One optimisation step (forward, loss, backward, update), shared by the trainer and the throughput benchmark."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from .config import AMP_MODES, ConfigError
from .distributed import DistContext, all_finite
from .losses import LossParts, OKDHPLoss

__all__ = ["AmpError", "TrainStep", "amp_candidates", "amp_setup", "native_bf16"]


class AmpError(ConfigError):
    """An AMP mode this device cannot run."""


def native_bf16(device: torch.device) -> bool:
    """True where bf16 runs in hardware: CUDA compute capability >= 8.0 (emulation on V100/T4 is slow
    and does not count), or a CPU with AVX512-BF16 / AMX that oneDNN uses."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def amp_candidates(mode: str, device: torch.device) -> list[str]:
    """The precisions `mode` allows on `device`, as amp_setup labels them ('off', 'bf16', 'fp16').

    auto: fp32, and the half precision the device runs natively (CUDA: bf16 from compute capability
    8.0, else fp16 with a GradScaler; CPU: bf16 with AVX512-BF16 / AMX). Which one is faster depends
    on the network and the memory format (narrow convolutions lose to the casts; on a GPU NCHW bf16
    can trail fp32), so the caller measures.
    """
    if mode not in AMP_MODES:
        raise AmpError(f"amp {mode!r} is not valid; valid: {', '.join(AMP_MODES)}")
    if mode == "auto":
        if device.type == "cuda":
            return ["off", "bf16" if native_bf16(device) else "fp16"]
        return ["off", "bf16"] if native_bf16(device) else ["off"]
    if mode == "fp16" and device.type != "cuda":
        raise AmpError(
            "amp fp16 needs a CUDA device (fp16 autocast on the CPU is slower than fp32); use auto, bf16 or off"
        )
    return [mode]


def amp_setup(mode: str, device: torch.device) -> tuple[contextlib.AbstractContextManager, torch.amp.GradScaler, str]:
    """Autocast context, grad scaler and a label for one resolved precision ('off', 'bf16', 'fp16').

    fp16 gets a GradScaler (its range underflows small gradients); bf16 has fp32's range and needs none.
    """
    if mode not in ("off", "bf16", "fp16"):
        raise AmpError(f"amp_setup takes a resolved precision (off, bf16, fp16), not {mode!r}")
    scaler_device = "cuda" if device.type == "cuda" else "cpu"
    if mode == "off":
        return contextlib.nullcontext(), torch.amp.GradScaler(scaler_device, enabled=False), "fp32"
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(scaler_device, enabled=mode == "fp16")
    # no weight-cast cache: every weight is used once per forward, so it saves nothing, and a CUDA
    # graph capture must not keep casts made outside the graph (PyTorch's CUDA-graph notes)
    return (
        torch.autocast(device.type, dtype=dtype, cache_enabled=False),
        scaler,
        "bf16" if mode == "bf16" else "fp16+GradScaler",
    )


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
