"""Process-group plumbing for torchrun: one code path for 1 process, N CPU (gloo) or N GPU (nccl) ranks.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them the run
is a plain single process and nothing here touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DeviceError",
    "DistContext",
    "all_finite",
    "barrier",
    "cleanup",
    "resolve_device",
    "setup",
    "unwrap",
    "wrap_ddp",
]


class DeviceError(RuntimeError):
    """The requested device is not usable here."""


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    grouped: bool = False  # a process group is up (torchrun), even for one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.grouped


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """auto -> cuda:LOCAL_RANK when CUDA is usable, else cpu; 'cuda' without CUDA is an error."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {preference}: CUDA is not available in this torch build/machine; use --device cpu or auto"
            )
        return torch.device(preference if ":" in preference else f"cuda:{local_rank}")
    return torch.device("cpu")


def setup(device_preference: str = "auto") -> DistContext:
    """Join the torchrun process group if launched by torchrun (gloo on CPU, nccl on CUDA).

    torchrun with one process still gets a group (and DDP), so `--nproc_per_node 1` runs the
    same collectives as a multi-GPU job: the cheap way to check a cluster setup on one GPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    launched = world_size > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    if launched and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistContext(
        rank=rank, world_size=world_size, local_rank=local_rank, device=device, grouped=dist.is_initialized()
    )


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if not ctx.distributed:
        return
    if ctx.device.type == "cuda":
        dist.barrier(device_ids=[ctx.device.index])  # NCCL needs to know the rank's GPU
    else:
        dist.barrier()


def all_finite(value: torch.Tensor, ctx: DistContext) -> bool:
    """True when `value` is finite on every rank (so all ranks stop together on a NaN)."""
    flag = torch.isfinite(value.detach()).all().to(torch.int32).reshape(1)
    if ctx.distributed:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def wrap_ddp(model: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP and/or torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
