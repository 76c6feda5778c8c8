"""Speed switches picked by measurement: time a few steps of the run's own network, keep the fastest.

Which precision, memory format, CPU thread count and CUDA-graph replay is fastest depends on the
network, the device and the load, not on habit (docs/training.md has the figures). So `system.amp:
auto`, `system.channels_last: null`, `system.threads: null` and `system.cuda_graphs: auto` are
settled here, once per run, on a copy of the network and a random batch: the run's weights,
optimiser and RNG streams are untouched, and the trainer records the choice in the checkpoint so a
resume keeps it.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..trainkit.speed import amp_candidates, amp_setup
from .distributed import DistContext
from .graphs import GraphedStep
from .losses import OKDHPLoss
from .optim import make_adam
from .step import TrainStep, time_steps

__all__ = ["SpeedChoice", "core_share", "measure_step", "pick_speed", "random_batch"]


@dataclass(frozen=True)
class SpeedChoice:
    """The resolved switches, and how each candidate measured (images/s), for the log and the record."""

    amp: str  # off | bf16 | fp16
    channels_last: bool
    threads: int | None  # CPU threads per process; None on CUDA
    measured: tuple[tuple[str, float], ...] = ()
    cuda_graphs: bool = False  # forward, loss and backward replayed from a CUDA graph (okdhp_edge.train.graphs)

    def label(self) -> str:
        parts = [
            {"off": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler"}[self.amp],
            "channels_last" if self.channels_last else "NCHW",
        ]
        if self.threads is not None:
            parts.append(f"{self.threads} thread(s)")
        if self.cuda_graphs:
            parts.append("CUDA graph")
        return ", ".join(parts)


def random_batch(
    n: int, input_size: tuple[int, int], joints: int, stride: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """A training batch of the run's shapes from a private generator (the run's RNG streams stay as they were)."""
    w, h = input_size
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(n, 3, h, w, generator=g).to(device),
        "target": torch.rand(n, joints, h // stride, w // stride, generator=g).to(device),
        "target_weight": torch.ones(n, joints).to(device),
    }


def measure_step(
    model: nn.Module,
    loss: OKDHPLoss,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    amp: str,
    channels_last: bool,
    steps: int = 2,
    warmup: int = 1,
    cuda_graphs: bool = False,
) -> float:
    """Median seconds of one full training step (forward, loss, backward, Adam) of a copy of `model`;
    with `cuda_graphs` the untimed steps also cover the graph's eager warm-up and its capture."""
    trial = copy.deepcopy(model).to(device)
    if channels_last:
        trial = trial.to(memory_format=torch.channels_last)
    autocast, scaler, _ = amp_setup(amp, device)
    step = TrainStep(
        trial,
        loss,
        make_adam(trial.parameters(), lr=1e-6),
        None,
        scaler,
        autocast,
        DistContext(0, 1, 0, device),
        channels_last=channels_last,
    )
    if cuda_graphs:
        step = GraphedStep(step, warmup=warmup, log=lambda _: None)
        warmup += 1  # the call that captures
    _, times = time_steps(step, batch, device, warmup, steps)
    del trial, step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return sorted(times)[len(times) // 2]


def pick_speed(
    model: nn.Module,
    loss: OKDHPLoss,
    make_batch: Callable[[int], dict[str, torch.Tensor]],
    device: torch.device,
    amp: str,
    channels_last: bool | None,
    threads: int | None,
    batch_size: int,
    log: Callable[[str], None] = print,
    cuda_graphs: str = "off",
    graph_blocker: str | None = None,
) -> SpeedChoice:
    """Resolve amp ('auto'), channels_last (None), CPU threads (None = the process's share of the cores, or 1)
    and cuda_graphs ('auto'; `graph_blocker` says why graphs cannot run here, None if they can):
    fixed values are kept; every open precision x memory-format x CUDA-graph combination is measured
    (they interact: on a GPU bf16 wins in channels_last and loses in NCHW, and eager steps are bound by
    the host, so the eager ranking says nothing of the graphed one), then the thread count on the
    winner. On the CPU the trial batch is capped at 8 images, so wide networks measure in seconds."""
    amps = amp_candidates(amp, device)
    layouts = [False, True] if channels_last is None else [channels_last]
    thread_options = [threads] if threads is not None or device.type != "cpu" else _thread_candidates()
    graph_options = (
        [False]
        if graph_blocker is not None or cuda_graphs == "off"
        else [True]
        if cuda_graphs == "on"
        else [False, True]
    )
    if len(amps) == 1 and len(layouts) == 1 and len(thread_options) == 1 and len(graph_options) == 1:
        if thread_options[0] is not None:
            torch.set_num_threads(thread_options[0])
        return SpeedChoice(amps[0], layouts[0], thread_options[0], cuda_graphs=graph_options[0])
    combinations = len(amps) * len(layouts) * len(graph_options) + len(thread_options) - 1
    slow = (
        "; cuDNN's kernel timing and each CUDA graph's capture make it take a minute or more"
        if device.type == "cuda"
        else ""
    )
    log(
        f"timing up to {combinations} speed variants of a full training step on {device.type} (once per run{slow}; "
        "--amp, --[no-]channels-last, --threads and --cuda-graphs fix them)"
    )
    batch = make_batch(min(batch_size, 8) if device.type == "cpu" else batch_size)
    images = len(batch["image"])
    steps, warmup = (5, 3) if device.type == "cuda" else (3, 1)  # GPUs: let cuDNN settle first
    measured: dict[tuple[str, bool, int | None, bool], float] = {}
    capture_failed = False

    def rate(choice: tuple[str, bool, int | None, bool]) -> float:
        nonlocal capture_failed
        if choice not in measured:
            if choice[3] and capture_failed:
                return 0.0  # one failed capture is enough to know: the other combinations are not tried
            if choice[2] is not None:
                torch.set_num_threads(choice[2])
            try:
                measured[choice] = images / measure_step(
                    model, loss, batch, device, *choice[:2], steps, warmup, cuda_graphs=choice[3]
                )
            except RuntimeError as err:  # only a graph capture may fail here: the run goes on eagerly
                if not choice[3] or cuda_graphs == "on":
                    raise
                log(f"CUDA graph capture failed on this device, training eagerly: {str(err).splitlines()[0]}")
                measured[choice] = 0.0
                capture_failed = True
        return measured[choice]

    best = max(((a, c, thread_options[0], g) for g in graph_options for a in amps for c in layouts), key=rate)
    best = max(((*best[:2], t, best[3]) for t in thread_options), key=rate)
    if best[2] is not None:
        torch.set_num_threads(best[2])
    table = tuple((SpeedChoice(*c[:3], cuda_graphs=c[3]).label(), round(r, 2)) for c, r in measured.items())
    choice = SpeedChoice(*best[:3], table, cuda_graphs=best[3])
    log(
        "speed switches measured on this device (images/s of a full training step): "
        + "; ".join(f"{name} {r:.2f}" for name, r in table)
        + f" -> {choice.label()}"
    )
    return choice


def core_share() -> int:
    """This process's share of the machine's cores (torchrun's LOCAL_WORLD_SIZE processes split them)."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _thread_candidates() -> list[int]:
    """The process's share of the cores (the usual winner on a quiet machine), then one thread, which
    wins when other processes keep the cores busy: oversubscribed OpenMP threads spin-wait for each
    other, and on a shared 2-core machine 2 threads ran 10x slower than 1. The timing decides."""
    n = core_share()
    return [n, 1] if n > 1 else [1]
