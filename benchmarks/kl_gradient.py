"""How strong the distillation signal is at each KL temperature, on a trained OKDHP network.

The KL term compares spatial softmaxes of heatmaps that lie in [0, 1]: at temperature 1 both are
nearly uniform and the term, and its gradient, almost vanish. This script measures, with the
trainer's own objective (`okdhp_edge.train.losses.OKDHPLoss`, ramp at 1), the ratio

    || grad of beta x KL || / || grad of the supervised terms (MSE sum + alpha x ensemble MSE) ||

with respect to
  - the branch outputs: the heatmaps of every branch stack, each taken as its own variable;
  - the branch parameters: what the optimiser sees for the branches (through the whole graph).

The KL gradient is the difference between the gradients of the full objective and of the same
objective with beta = 0 (the objective is linear in beta). Batches are consecutive validation crops
of the run's own data; the network is in training mode (batch-norm batch statistics), as in a step.

Usage: .venv/bin/python benchmarks/kl_gradient.py RUN_DIR_OR_CHECKPOINT [--temperatures 1,0.5,0.2,0.1,0.05]
       [--batch 32] [--batches 3] [--threads 1]
Writes benchmarks/results/kl_gradient.json and prints a table (mean and spread over the batches).
"""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from okdhp_edge.data import build_dataset
from okdhp_edge.models import get_preset
from okdhp_edge.spec import InputSpec, write_json_atomic
from okdhp_edge.train.config import TrainConfig
from okdhp_edge.train.losses import OKDHPLoss
from okdhp_edge.train.network import build_network, network_spec, target_branch
from okdhp_edge.trainkit.checkpoint import load_checkpoint

RESULTS = Path(__file__).resolve().parent / "results" / "kl_gradient.json"


def _norm(grads: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


def _as_leaves(outputs: dict) -> tuple[dict, list[torch.Tensor]]:
    """The outputs with every branch stack's heatmaps detached into its own gradient leaf."""
    leaves = [[o.detach().requires_grad_() for o in outs] for outs in outputs["branches"]]
    detached = {
        "trunk": [o.detach() for o in outputs["trunk"]],
        "branches": leaves,
        "ensemble": outputs["ensemble"].detach(),
    }
    return detached, [leaf for outs in leaves for leaf in outs]


def _ratios(model: torch.nn.Module, batch: dict, cfg: TrainConfig, temperatures: list[float]) -> dict[float, dict]:
    """Per temperature: gradient norms of beta x KL and of the MSE terms, w.r.t. outputs and branch parameters."""
    lo = cfg.loss
    params = [p for p in model.branches.parameters() if p.requires_grad]
    outputs = model(batch["image"])
    target, weight = batch["target"], batch["target_weight"]
    leaf_outputs, leaves = _as_leaves(outputs)

    def grads(loss: OKDHPLoss, on_leaves: bool) -> list[torch.Tensor]:
        total = loss(leaf_outputs if on_leaves else outputs, target, weight, epoch=0.0).total
        wrt = leaves if on_leaves else params
        found = torch.autograd.grad(total, wrt, retain_graph=True, allow_unused=True)
        return [g if g is not None else torch.zeros_like(w) for g, w in zip(found, wrt)]

    def supervised() -> OKDHPLoss:
        return OKDHPLoss("okdhp", lo.alpha, 0.0, 0.0, 1.0, lo.detach_target)

    mse = {on: grads(supervised(), on) for on in (True, False)}
    out = {}
    for t in temperatures:
        full = OKDHPLoss("okdhp", lo.alpha, lo.beta, 0.0, t, lo.detach_target)  # ramp_epochs 0: ramp = 1
        row = {}
        for on, name in ((True, "outputs"), (False, "branch_params")):
            g_kl = [f - m for f, m in zip(grads(full, on), mse[on])]
            row[name] = {"kl": _norm(g_kl), "mse": _norm(mse[on]), "ratio": _norm(g_kl) / _norm(mse[on])}
        out[t] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a run directory (its checkpoint-last.pt) or a checkpoint file")
    parser.add_argument("--temperatures", default="1,0.5,0.2,0.1,0.05", help="comma-separated KL temperatures")
    parser.add_argument("--batch", type=int, default=32, help="validation crops per batch (default 32)")
    parser.add_argument("--batches", type=int, default=3, help="consecutive batches measured (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args()
    temperatures = [float(t) for t in args.temperatures.split(",")]
    if args.batch < 1 or args.batches < 1 or any(t <= 0 for t in temperatures):
        parser.error("--batch and --batches must be >= 1 and every temperature > 0")
    path = args.checkpoint / "checkpoint-last.pt" if args.checkpoint.is_dir() else args.checkpoint
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"], str(path))
    if cfg.mode != "okdhp":
        raise SystemExit(f"{path}: a {cfg.mode!r} run has no ensemble to distil from; give an okdhp run")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    preset = get_preset(cfg.model.preset)
    spec, _ = network_spec(preset, cfg.model)
    model = build_network(cfg.mode, spec, target_branch(spec, preset, cfg.model.target))
    model.load_state_dict(state["model"])
    model.train()
    input_spec = InputSpec(width=preset.input_size[0], height=preset.input_size[1])
    val = build_dataset(
        cfg.data.source,
        "val",
        input_spec,
        preset.get_skeleton(),
        sigma=cfg.data.sigma,
        cache_dir=cfg.data.cache_dir,
        synthetic_images=cfg.data.val_images,
    )
    if len(val) < args.batch * args.batches:
        raise SystemExit(f"{cfg.data.source}: {len(val)} validation crops, fewer than --batch x --batches; lower them")
    loader = DataLoader(val, batch_size=args.batch, shuffle=False, drop_last=True)

    per_batch = []
    for i, batch in enumerate(loader):
        if i == args.batches:
            break
        per_batch.append(_ratios(model, batch, cfg, temperatures))

    rows = []
    print(f"{path} (epoch {state['epoch']}, beta {cfg.loss.beta}, {args.batches} x {args.batch} validation crops)")
    print(f"{'T':>6}  {'ratio w.r.t. branch outputs':>28}  {'ratio w.r.t. branch params':>27}")
    for t in temperatures:
        row: dict = {"temperature": t}
        for name in ("outputs", "branch_params"):
            values = [b[t][name]["ratio"] for b in per_batch]
            row[name] = {
                "ratio_mean": statistics.fmean(values),
                "ratio_min": min(values),
                "ratio_max": max(values),
                "per_batch": [b[t][name] for b in per_batch],
            }
        rows.append(row)
        o, p = row["outputs"], row["branch_params"]
        print(
            f"{t:>6g}  {o['ratio_mean']:>12.4g} ({o['ratio_min']:.3g}-{o['ratio_max']:.3g})"
            f"  {p['ratio_mean']:>12.4g} ({p['ratio_min']:.3g}-{p['ratio_max']:.3g})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        args.out,
        {
            "checkpoint": str(path),
            "epoch": state["epoch"],
            "preset": cfg.model.preset,
            "data": cfg.data.source,
            "loss": {
                "alpha": cfg.loss.alpha,
                "beta": cfg.loss.beta,
                "detach_target": cfg.loss.detach_target,
                "trained_temperature": cfg.loss.kl_temperature,
            },
            "batch": args.batch,
            "batches": args.batches,
            "threads": args.threads,
            "machine": platform.platform(),
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
