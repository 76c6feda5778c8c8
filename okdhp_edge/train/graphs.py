"""CUDA-graph replay of the training step's forward, loss and backward (system.cuda_graphs).

On a fast GPU the paper-mpii step at batch 16 is bound by the host: thousands of kernel launches,
each with Python, dispatcher, cuDNN and autograd bookkeeping, for far less GPU work. A CUDA graph
records those launches once and replays them with one call (PyTorch's "CUDA Graphs" notes,
whole-network capture). What is captured, and what is not:

* captured, on static input tensors each batch is copied into: the forward under autocast, the
  loss (its epoch-dependent KL weight is a device tensor, not a frozen float) and the backward,
  which writes the .grad tensors the capture allocated;
* eager: the finiteness check, the optimizer (fused Adam: one kernel per step), the GradScaler and
  the LR scheduler. So the LR schedule, fp16 loss scaling, gradient clipping, checkpoints and resume
  work exactly as without graphs, and a non-finite loss still leaves weights and optimizer untouched.

The first `warmup` calls are ordinary eager steps on a side stream (cuDNN's benchmark and the
library handles settle there; the docs require it), the next call captures and replays. A batch
whose tensors do not match the captured shapes (another batch size, an extra key) runs eagerly.
"""

from __future__ import annotations

from typing import Callable

import torch

from .distributed import DistContext, all_finite
from .losses import LossParts
from .step import TrainStep

__all__ = ["GraphedStep", "graph_blocker"]

_KEYS = ("image", "target", "target_weight", "ignore")


def graph_blocker(device: torch.device, ctx: DistContext, compiled: bool) -> str | None:
    """Why the training step cannot be graphed here, or None when it can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, this run trains on {device.type}"
    if ctx.distributed:
        return "not with DDP (the gradient all-reduce would have to be captured too)"
    if compiled:
        return "not with --compile (torch.compile manages its own graphs)"
    return None


def _signature(batch: dict[str, torch.Tensor]) -> tuple:
    return tuple((k, tuple(batch[k].shape), batch[k].dtype) for k in _KEYS if k in batch)


class GraphedStep:
    """A TrainStep whose forward, loss and backward replay from a CUDA graph; called like one.

    The LossParts it returns are a copy, so they stay valid after the next step.
    """

    def __init__(self, step: TrainStep, warmup: int = 3, log: Callable[[str], None] = print) -> None:
        if step.ctx.device.type != "cuda":
            raise ValueError(f"GraphedStep needs a CUDA device, not {step.ctx.device}")
        if warmup < 1:
            raise ValueError("GraphedStep needs at least one eager warm-up step before the capture")
        self.step = step
        self.warmup = warmup
        self.log = log
        self.graph: torch.cuda.CUDAGraph | None = None
        self._stream = torch.cuda.Stream(step.ctx.device)
        self._calls = 0
        self._static: dict[str, torch.Tensor] = {}
        self._kl_weight = torch.zeros((), device=step.ctx.device)
        self._values: torch.Tensor | None = None
        self._signature: tuple | None = None
        self._eager_noted = False

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, batch: dict[str, torch.Tensor], epoch: float) -> tuple[LossParts, bool]:
        self._calls += 1
        if self.graph is None:
            if self._calls <= self.warmup:
                return self._on_side_stream(lambda: self.step(batch, epoch))
            self._capture(batch)
        if _signature(batch) != self._signature:
            if not self._eager_noted:
                self.log(f"CUDA graph: a batch of other shapes ({_signature(batch)}) runs eagerly")
                self._eager_noted = True
            return self.step(batch, epoch)
        return self._replay(batch, epoch)

    def _on_side_stream(self, run: Callable[[], tuple[LossParts, bool]]) -> tuple[LossParts, bool]:
        current = torch.cuda.current_stream(self.step.ctx.device)
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            out = run()
        current.wait_stream(self._stream)
        return out

    def _capture(self, batch: dict[str, torch.Tensor]) -> None:
        """Record forward, loss and backward on static tensors (recording runs nothing: the replay
        that follows trains on this batch)."""
        step = self.step
        images, target, weight, ignore = step.inputs(batch)
        inputs = {"image": images, "target": target, "target_weight": weight, "ignore": ignore}
        self._static = {k: torch.empty_like(v) for k, v in inputs.items() if v is not None}
        self._signature = _signature(batch)
        step.optimizer.zero_grad(set_to_none=True)  # the backward below allocates .grad from the graph's pool
        torch.cuda.synchronize(step.ctx.device)
        graph = torch.cuda.CUDAGraph()
        s = self._static
        # thread_local: the DataLoader's pin-memory thread may call CUDA while this thread captures
        with torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"):
            parts = step.forward(s["image"], s["target"], s["target_weight"], s.get("ignore"), 0.0, self._kl_weight)
            step.backward(parts)
            self._values = parts.values()
        self.graph = graph
        step.static_grads = True  # eager steps from now on zero the captured .grad tensors in place

    def _replay(self, batch: dict[str, torch.Tensor], epoch: float) -> tuple[LossParts, bool]:
        step = self.step
        for key, static in self._static.items():
            static.copy_(batch[key], non_blocking=True)
        ramp = step.loss.ramp_at(epoch)
        self._kl_weight.fill_(step.loss.beta * ramp)
        self.graph.replay()
        parts = LossParts.from_values(self._values.clone(), ramp)
        if not all_finite(parts.total, step.ctx):
            return parts, False
        step.update()
        return parts, True
