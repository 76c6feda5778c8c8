"""OKDHP losses: heatmap MSE, pixel-wise KL from the ensemble to every branch, and the ramp.

L = sum_o MSE(o) + alpha * MSE(ensemble) + beta * ramp(epoch) * sum_o KL(ensemble || o)

where the MSE sum runs over every supervised output (trunk stacks once, every stack of every
branch) and the KL sum over every branch stack. Modes drop terms: `independent` keeps only the
MSE sum (same network, no distillation), `single` trains one plain student (MSE only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LossParts", "OKDHPLoss", "heatmap_mse", "mse_weights", "ramp", "spatial_kl", "stacked_kl", "stacked_mse"]

IGNORE_KEEP_TARGET = 0.01  # target values from here up (within 3 sigma of a labelled joint) are never ignored


def mse_weights(target: torch.Tensor, weight: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Per-joint weights (N, K) as (N, K, 1, 1), or per pixel (N, K, h, w) with `ignore`.

    `ignore` (N, h, w), 1 over unlabelled people, drops those pixels from every channel except
    where that channel's own target is lit (the labelled person's joint may lie over them).
    Built once per step and shared by every supervised output.
    """
    w = weight.to(target.dtype)[:, :, None, None]
    if ignore is None:
        return w
    return w * (1.0 - ignore.to(target.dtype)[:, None] * (target < IGNORE_KEEP_TARGET).to(target.dtype))


def heatmap_mse(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, ignore: torch.Tensor | None = None
) -> torch.Tensor:
    """0.5 * mean over (N, K, h, w) of the per-joint-weighted squared error.

    Same value as the pose field's JointsMSELoss with target weights: a joint with weight 0
    (unlabelled or outside the crop) contributes nothing, yet still counts in the mean.
    `weight`: (N, K) joint weights (with `ignore` as in mse_weights), or weights already built by
    mse_weights (4-D).
    """
    w = weight if weight.dim() == 4 else mse_weights(target, weight, ignore)
    return stacked_mse(pred[None], target, w)[0]


def spatial_kl(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0, detach_target: bool = True
) -> torch.Tensor:
    """KL(teacher || student) between per-joint softmaxes over the h*w positions.

    Heatmaps (N, K, h, w) are used as logits divided by `temperature`. Summed over joints and
    pixels, divided by N*h*w (the paper's normalisation). Raw heatmaps lie in [0, 1], so at
    temperature 1 both softmaxes are nearly uniform and the term almost vanishes; a small
    temperature sharpens them.
    """
    return stacked_kl(student[None], teacher, temperature, detach_target)[0]


def stacked_mse(preds: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """heatmap_mse of each of O outputs stacked as (O, N, K, h, w) -> (O,), in one pass.

    `weight` as built by mse_weights. One set of kernels for every supervised output instead of
    one per output: the loss's share of a step's kernel launches no longer grows with the stacks.
    """
    return 0.5 * ((preds - target) * weight.to(preds.dtype)).pow(2).mean(dim=(1, 2, 3, 4))


def stacked_kl(
    students: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0, detach_target: bool = True
) -> torch.Tensor:
    """spatial_kl of each of S students stacked as (S, N, K, h, w) against one teacher -> (S,);
    the teacher's softmax is computed once for all of them."""
    s, n, k, h, w = students.shape
    if detach_target:
        teacher = teacher.detach()
    log_q = F.log_softmax(students.float().reshape(s, n, k, h * w) / temperature, dim=-1)
    log_p = F.log_softmax(teacher.float().reshape(n, k, h * w) / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=(1, 2, 3)) / (n * h * w)


def ramp(epoch: float, ramp_epochs: float) -> float:
    """exp(-5 (1 - t/T)^2) for t < T, 1 from T on (T = 0 disables the ramp)."""
    if ramp_epochs <= 0 or epoch >= ramp_epochs:
        return 1.0
    return math.exp(-5.0 * (1.0 - epoch / ramp_epochs) ** 2)


@dataclass
class LossParts:
    """The total and its terms, kept as detached tensors so logging syncs with the device once."""

    total: torch.Tensor
    mse_trunk: torch.Tensor
    mse_branches: list[torch.Tensor]  # per branch, summed over its stacks
    mse_ensemble: torch.Tensor
    kl_branches: list[torch.Tensor]  # per branch, summed over its stacks, before beta * ramp and kl_weights
    ramp: float

    def values(self) -> torch.Tensor:
        """total, mse_trunk, mse_ensemble, mse per branch, kl per branch: one detached fp32 vector."""
        return (
            torch.stack([self.total, self.mse_trunk, self.mse_ensemble, *self.mse_branches, *self.kl_branches])
            .detach()
            .float()
        )

    @classmethod
    def from_values(cls, values: torch.Tensor, ramp: float) -> LossParts:
        """The parts back from `values()` (views of it: a CUDA-graph step hands out a copy of its
        static vector this way)."""
        b = (len(values) - 3) // 2
        return cls(
            total=values[0],
            mse_trunk=values[1],
            mse_ensemble=values[2],
            mse_branches=list(values[3 : 3 + b]),
            kl_branches=list(values[3 + b :]),
            ramp=ramp,
        )

    def as_dict(self) -> dict[str, float]:
        total, trunk, ens, *rest = self.values().cpu().tolist()
        b = len(self.mse_branches)
        out = {"loss": total, "mse_trunk": trunk, "mse_ensemble": ens, "kl": sum(rest[b:]), "ramp": self.ramp}
        for i in range(b):
            out[f"mse_b{i}"] = rest[i]
            out[f"kl_b{i}"] = rest[b + i]
        return out


class OKDHPLoss:
    """The training objective for one of the modes (okdhp, independent, single)."""

    def __init__(
        self,
        mode: str = "okdhp",
        alpha: float = 1.0,
        beta: float = 2.0,
        ramp_epochs: float = 90.0,
        kl_temperature: float = 1.0,
        detach_target: bool = True,
        kl_weights: list[float] | None = None,
    ) -> None:
        if mode not in ("okdhp", "independent", "single"):
            raise ValueError(f"unknown mode {mode!r}; valid: okdhp, independent, single")
        self.mode = mode
        self.alpha = alpha
        self.beta = beta
        self.ramp_epochs = ramp_epochs
        self.kl_temperature = kl_temperature
        self.detach_target = detach_target
        self.kl_weights = kl_weights  # per branch, on top of beta * ramp; None = 1 each

    def ramp_at(self, epoch: float) -> float:
        """The distillation ramp at `epoch` (0 for modes without distillation), as LossParts reports it."""
        return ramp(epoch, self.ramp_epochs) if self.mode == "okdhp" else 0.0

    def __call__(
        self,
        outputs: dict,
        target: torch.Tensor,
        weight: torch.Tensor,
        epoch: float,
        ignore: torch.Tensor | None = None,
        kl_weight: torch.Tensor | None = None,
    ) -> LossParts:
        """`outputs` as returned by OKDHPNet (or the single-mode adapter: no ensemble); `ignore`
        as in heatmap_mse (the distillation terms need no labels and cover every pixel).

        `kl_weight`: beta * ramp(epoch) as a 0-d fp32 device tensor instead of a Python float, for a
        CUDA graph: a float would be frozen into the captured kernels at the capture's epoch, a
        tensor is read at every replay (the caller fills it; same fp32 product as the float).
        """
        target = target.to(torch.float32)
        weight = mse_weights(target, weight, ignore)
        trunk, branches = list(outputs["trunk"]), [list(outs) for outs in outputs["branches"]]
        distill = self.mode == "okdhp"
        supervised = trunk + [o for outs in branches for o in outs] + ([outputs["ensemble"]] if distill else [])
        mse = stacked_mse(torch.stack(supervised).float(), target, weight)  # one value per output, in that order
        bounds = [len(trunk)]
        for outs in branches:
            bounds.append(bounds[-1] + len(outs))
        mse_trunk = mse[: len(trunk)].sum()
        mse_branches = [mse[a:b].sum() for a, b in zip(bounds, bounds[1:])]
        total = mse_trunk + sum(mse_branches)
        mse_ens = target.new_zeros(())
        kls = [target.new_zeros(()) for _ in branches]
        r = self.ramp_at(epoch)
        if distill:
            mse_ens = mse[-1]
            kl = stacked_kl(
                torch.stack(supervised[len(trunk) : -1]), outputs["ensemble"], self.kl_temperature, self.detach_target
            )
            kls = [kl[a - len(trunk) : b - len(trunk)].sum() for a, b in zip(bounds, bounds[1:])]
            weighted = sum(kls) if self.kl_weights is None else sum(w * k for w, k in zip(self.kl_weights, kls))
            total = total + self.alpha * mse_ens + (self.beta * r if kl_weight is None else kl_weight) * weighted
        return LossParts(
            total=total,
            mse_trunk=mse_trunk.detach(),
            mse_branches=[m.detach() for m in mse_branches],
            mse_ensemble=mse_ens.detach(),
            kl_branches=[k.detach() for k in kls],
            ramp=r,
        )
