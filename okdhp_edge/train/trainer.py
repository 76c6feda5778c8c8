"""One training run, start to finish: data, network, the epoch loop, checkpoints, students, report.

Only rank 0 logs, validates and writes files; every rank trains its shard of each epoch. The
run directory holds everything needed to resume (`checkpoint-last.pt`, written atomically
after every epoch) and everything a user wants at the end (students, metrics, plots).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from ..codec import HeatmapCodec
from ..geometry import apply_affine, invert_affine
from ..models import get_preset
from ..spec import InputSpec, ModelSpec, write_json_atomic
from ..trainkit.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from ..trainkit.provenance import code_version
from ..trainkit.rundir import write_metrics, write_run_config
from ..trainkit.seeding import seed_everything
from ..trainkit.speed import amp_candidates, amp_setup, kept_threads
from .autotune import SpeedChoice, pick_speed, random_batch
from .config import OptimConfig, TrainConfig
from .data import RunData, build_run_data
from .distributed import DistContext, barrier, cleanup, setup, wrap_ddp
from .evaluate import evaluate_heads, head_names, predict_heads, selection_metric
from .graphs import GraphedStep, graph_blocker
from .losses import OKDHPLoss
from .network import (
    BranchChoice,
    build_network,
    init_from_students,
    network_spec,
    run_provenance,
    target_branch,
    write_ensemble,
    write_students,
)
from .optim import load_adam_state, make_adam
from .plots import plot_curves, plot_samples
from .reference import mean_pose_reference
from .report import HeadRow, format_table
from .step import TrainStep

__all__ = ["NonFiniteLossError", "TrainResult", "default_out_dir", "train"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stopped without overwriting its last good checkpoint."""


@dataclass
class TrainResult:
    out_dir: Path
    rows: list[HeadRow]  # final metrics per head (the printed table)
    students: dict[str, Path]  # student name -> .safetensors
    target: str  # the target student's name
    history: list[dict]
    best: dict


def default_out_dir(preset: str) -> Path:
    return Path("runs") / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    *,
    progress: bool = True,
) -> TrainResult | None:
    """Train as `cfg` says; returns the result on rank 0 (None on other ranks).

    `resume` is a checkpoint path written by an earlier run of the same network. Raises
    NonFiniteLossError on NaN/inf, re-raises KeyboardInterrupt after saving checkpoint-last.pt.
    """
    ctx = setup(cfg.system.device)
    try:
        with kept_threads():  # the run's CPU thread choice does not outlive it
            return _Run(cfg, ctx, out_dir, Path(resume) if resume else None, progress).run()
    finally:
        cleanup(ctx)


def _lr_factor(optim: OptimConfig, iters_per_epoch: int) -> Callable[[int], float]:
    """lr multiplier per iteration: linear warm-up, then step decay at epochs or a cosine to zero."""
    total = optim.epochs * iters_per_epoch

    def factor(it: int) -> float:
        warm = min(1.0, (it + 1) / optim.warmup_iters) if optim.warmup_iters else 1.0
        if optim.schedule == "step":
            decay = optim.lr_factor ** sum(it >= s * iters_per_epoch for s in optim.lr_steps)
        else:
            decay = 0.5 * (1.0 + math.cos(math.pi * min(it / max(total, 1), 1.0)))
        return warm * decay

    return factor


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays -> Python values, so history fits JSON and weights_only checkpoints."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _scalars(metrics: dict) -> dict[str, float]:
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    }


class _Run:
    def __init__(
        self, cfg: TrainConfig, ctx: DistContext, out_dir: str | Path | None, resume: Path | None, progress: bool
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.progress = progress and ctx.is_main
        self.preset = get_preset(cfg.model.preset)
        self.out_dir = self._agree_on_out_dir(out_dir)
        self.resume = resume
        self.device = ctx.device
        self.started = time.perf_counter()

    # ----------------------------------------------------------------- setup
    def _agree_on_out_dir(self, out_dir: str | Path | None) -> Path:
        path = [str(out_dir or default_out_dir(self.preset.name))]
        if self.ctx.distributed:
            dist.broadcast_object_list(path, src=0)
        return Path(path[0])

    def log(self, message: str) -> None:
        if self.ctx.is_main:
            tqdm.write(message)

    def _pick_speed(self, model: nn.Module, loss: OKDHPLoss) -> SpeedChoice:
        """The run's precision, memory format, CPU threads and CUDA graphs: fixed in the config, kept
        from the checkpoint on a resume on the same kind of device, else measured (rank 0 decides for all)."""
        s = self.cfg.system
        blocker = graph_blocker(self.device, self.ctx, s.compile)
        if blocker is not None and s.cuda_graphs == "on":
            self.log(f"system.cuda_graphs on: training eagerly, CUDA graphs cannot run here: {blocker}")
        recorded = (self._resume_state or {}).get("speed")
        if recorded and recorded.get("device") == self.device.type:  # open switches as recorded, fixed ones as given
            graphs = recorded.get("cuda_graphs", False) if s.cuda_graphs == "auto" else s.cuda_graphs == "on"
            choice = SpeedChoice(
                recorded["amp"] if s.amp == "auto" else amp_candidates(s.amp, self.device)[0],
                recorded["channels_last"] if s.channels_last is None else s.channels_last,
                recorded["threads"] if s.threads is None else s.threads,
                cuda_graphs=graphs and blocker is None,
            )
            if choice.threads is not None:
                torch.set_num_threads(choice.threads)
            self.log(f"speed switches kept from the checkpoint: {choice.label()}")
            return choice
        w, h = self.input_spec.width, self.input_spec.height
        joints = self.skeleton.num_keypoints
        choice = [None]
        if self.ctx.is_main:
            choice[0] = pick_speed(
                model,
                loss,
                lambda n: random_batch(n, (w, h), joints, self.spec.stride, self.device),
                self.device,
                s.amp,
                s.channels_last,
                s.threads,
                self.cfg.optim.batch_size,
                self.log,
                cuda_graphs=s.cuda_graphs,
                graph_blocker=blocker,
            )
        if self.ctx.distributed:
            dist.broadcast_object_list(choice, src=0)
            if choice[0].threads is not None:
                torch.set_num_threads(choice[0].threads)
        return choice[0]

    def _describe_network(self, choices: list[BranchChoice]) -> None:
        if choices:
            self.log("branches chosen for --compression (student MACs / largest preset branch's):")
            for c in choices:
                warn = (
                    "  (closest the grid allows: the shared trunk sets a floor)"
                    if abs(math.log(c.achieved / c.requested)) > 0.2
                    else ""
                )
                self.log(
                    f"  requested {c.requested:.2f} -> {c.branch} ({c.branch.stacks} stacks x {c.branch.channels} ch), "
                    f"{c.macs / 1e9:.3f} GMACs = {c.achieved:.2f}{warn}"
                )
        spec = self.spec
        branches = ", ".join(
            f"b{i}={b}" + (" (target)" if i == self.target else "") for i, b in enumerate(spec.branches)
        )
        self.log(
            f"network: preset {self.preset.name}, mode {self.cfg.mode}, trunk "
            f"{spec.trunk_stacks}x{spec.trunk_channels}, {branches}"
        )

    def _build(self) -> None:
        cfg = self.cfg
        self.code = code_version()  # at the start: the code this process runs, whatever is committed later
        seed_everything(cfg.system.seed)
        self.spec, choices = network_spec(self.preset, cfg.model)
        self.target = target_branch(self.spec, self.preset, cfg.model.target)
        self._describe_network(choices)
        self.skeleton = self.preset.get_skeleton()
        self.input_spec = InputSpec(width=self.preset.input_size[0], height=self.preset.input_size[1])
        self.data: RunData = build_run_data(
            cfg.data, self.input_spec, self.skeleton, cfg.optim.batch_size, cfg.system.seed, self.ctx, self.spec.stride
        )
        self.log(
            f"data: {cfg.data.source}: {len(self.data.train)} training people, {len(self.data.val)} validation people "
            f"({self.data.val.kind} metrics); batch {cfg.optim.batch_size} x {self.ctx.world_size} process(es) "
            f"on {self.device}" + (f" (DDP over {dist.get_backend()})" if self.ctx.distributed else "")
        )
        self.heads = head_names(cfg.mode, len(self.spec.branches), self.target)
        self.metric = selection_metric(cfg.eval.metric, self.data.val)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN time its kernels once
        model = self._new_network()
        if cfg.model.init and self.resume is None:
            self.log("initialised from " + "; ".join(init_from_students(model, cfg.model.init, self.preset.input_size)))
        model = model.to(self.device)
        lo = cfg.loss
        self.loss = OKDHPLoss(
            cfg.mode, lo.alpha, lo.beta, lo.ramp_epochs, lo.kl_temperature, lo.detach_target, lo.kl_weights
        )
        self._resume_state = load_checkpoint(self.resume) if self.resume is not None else None
        self.speed = self._pick_speed(model, self.loss)
        self.log(f"training in {self.speed.label()} on {self.device}")
        if self.speed.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        o = cfg.optim
        self.optimizer = make_adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        self.iters_per_epoch = len(self.data.train_loader)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_factor(o, self.iters_per_epoch))
        self.autocast, self.scaler, _ = amp_setup(self.speed.amp, self.device)
        self.history: list[dict] = []
        self.best: dict = {"metric": f"b{self.target} {self.metric}", "value": None, "epoch": None}
        self.start_epoch = 0
        if self._resume_state is not None:
            self._load(self.resume, self._resume_state)
            self._resume_state = None
        # independent: the FAU gets no gradient, so DDP must not wait for it
        train_model = wrap_ddp(model, self.ctx, find_unused_parameters=cfg.mode == "independent")
        if cfg.system.compile:
            self.log("compiling the model with torch.compile (the first steps are slow)")
            train_model = torch.compile(train_model)
        self.train_model = train_model
        step = TrainStep(
            train_model,
            self.loss,
            self.optimizer,
            self.scheduler,
            self.scaler,
            self.autocast,
            self.ctx,
            channels_last=self.speed.channels_last,
            grad_clip=o.grad_clip,
        )
        self.step: TrainStep | GraphedStep = GraphedStep(step, log=self.log) if self.speed.cuda_graphs else step

    def _new_network(self) -> nn.Module:
        """A fresh network as the config describes it: the one trained, and the one the best checkpoint fills."""
        m = self.cfg.model
        return build_network(self.cfg.mode, self.spec, self.target, m.trunk_grad, m.ensemble_grad)

    def _network_record(self) -> dict:
        return {
            "preset": self.preset.name,
            "mode": self.cfg.mode,
            "target": self.target,
            "branches": [[b.stacks, b.channels] for b in self.spec.branches],
        }

    def _load(self, path: Path, state: dict) -> None:
        """Restore a checkpoint loaded on the CPU (RNG states must stay there; load_state_dict moves
        weights and optimizer moments to the model's device)."""
        if state.get("network") != self._network_record():
            raise CheckpointError(
                f"{path}: checkpoint network {state.get('network')} differs from this run's {self._network_record()}; "
                "resume with the same preset, mode, branches and target (or start a new run in another --out)"
            )
        self.model.load_state_dict(state["model"])
        load_adam_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("interrupted"):  # the interrupted epoch is redone from its start: so is its schedule
            self.scheduler.last_epoch = int(state["epoch"]) * self.iters_per_epoch
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        elif self.scaler.is_enabled() or state["scaler"]:
            self.log("note: the checkpoint was trained with another AMP setting; the fp16 loss scale starts afresh")
        # the run's lr (it may have been lowered for the resume) replaces the checkpoint's base lr
        self.scheduler.base_lrs = [self.cfg.optim.lr] * len(self.optimizer.param_groups)
        factor = _lr_factor(self.cfg.optim, self.iters_per_epoch)(self.scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.cfg.optim.lr
            group["lr"] = self.cfg.optim.lr * factor
        restore_rng(state["rng"])
        self.start_epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        self.best = dict(state.get("best", self.best))
        self.log(
            f"resumed from {path} at epoch {self.start_epoch + 1}"
            + (" (it was interrupted mid-epoch; redoing it)" if state.get("interrupted") else "")
        )

    # ----------------------------------------------------------------- state
    def _state(self, next_epoch: int, interrupted: bool = False) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": next_epoch,
            "interrupted": interrupted,
            "rng": capture_rng(),
            "speed": {
                "device": self.device.type,
                "amp": self.speed.amp,
                "channels_last": self.speed.channels_last,
                "threads": self.speed.threads,
                "cuda_graphs": self.speed.cuda_graphs,
            },
            "config": self.cfg.to_dict(),
            "network": self._network_record(),
            "history": self.history,
            "best": self.best,
        }

    # ----------------------------------------------------------------- loop
    def run(self) -> TrainResult | None:
        self._build()  # bad arguments or data fail here, before the run directory exists
        if self.ctx.is_main:
            write_run_config(self.out_dir, self.cfg.to_yaml())
            write_metrics(self.out_dir, self.history)
            self.log(f"run directory: {self.out_dir}")
        epochs = self.cfg.optim.epochs
        for epoch in range(self.start_epoch, epochs):
            try:
                self._epoch(epoch)
            except KeyboardInterrupt:
                if self.ctx.is_main:
                    path = save_checkpoint(self.out_dir / "checkpoint-last.pt", self._state(epoch, interrupted=True))
                    print(f"\ninterrupted: saved {path}; continue with --resume {path}", file=sys.stderr, flush=True)
                raise
        final = self._final_metrics()
        barrier(self.ctx)
        return self._finish(final) if self.ctx.is_main else None

    def _epoch(self, epoch: int) -> None:
        cfg = self.cfg
        self.data.set_epoch(epoch)
        start = time.perf_counter()
        train_stats = self._train_epoch(epoch)
        row: dict[str, Any] = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"], "train": train_stats}
        if (epoch + 1) % cfg.eval.every == 0 or epoch + 1 == cfg.optim.epochs:
            metrics = self._validate()  # every rank validates its shard; rank 0 gets the metrics
            if self.ctx.is_main:
                row["val"] = {head: _scalars(m) for head, m in metrics.items()}
        row["time_s"] = round(time.perf_counter() - start, 2)
        if self.ctx.is_main:
            self.history.append(_plain(row))
            improved = self._update_best(row, epoch)
            save_checkpoint(self.out_dir / "checkpoint-last.pt", self._state(epoch + 1))
            if improved:
                save_checkpoint(self.out_dir / "checkpoint-best.pt", self._state(epoch + 1))
            write_metrics(self.out_dir, self.history)
            self.log(self._epoch_line(row))
        barrier(self.ctx)

    def _update_best(self, row: dict, epoch: int) -> bool:
        """Target head's selection metric decides; PCK@0.2 breaks ties (e.g. AP still 0 early on)."""
        metrics = row.get("val", {}).get(f"b{self.target}", {})
        if self.metric not in metrics:
            return False
        key = [metrics[self.metric], metrics.get("pck@0.2", 0.0)]
        if self.best.get("key") is not None and key <= self.best["key"]:
            return False
        self.best.update(value=key[0], key=key, epoch=epoch)
        return True

    def _epoch_line(self, row: dict) -> str:
        t = row["train"]
        parts = [f"epoch {row['epoch'] + 1}/{self.cfg.optim.epochs}", f"loss {t['loss']:.4g}", f"mse {t['mse']:.4g}"]
        if self.cfg.mode == "okdhp":
            parts.append(f"kl {t['kl']:.4g} (ramp {t['ramp']:.2f})")
        parts.append(f"{t['img_per_s']:.1f} img/s")
        shown = ["pck@0.2"] + ([self.metric] if self.metric != "pck@0.2" else [])
        for head, m in row.get("val", {}).items():
            parts.append(f"{head} " + " ".join(f"{k} {m[k]:.1f}" for k in shown if k in m))
        return " | ".join(parts)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        self.train_model.train()
        n = self.iters_per_epoch
        sums: dict[str, float] = {}
        seen, start = 0, time.perf_counter()
        bar = tqdm(
            self.data.train_loader,
            total=n,
            desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
            unit="batch",
            disable=not self.progress,
            leave=False,
            mininterval=1.0,
        )
        for step, batch in enumerate(bar):
            parts, finite = self.step(batch, epoch + step / n)
            if not finite:
                self._non_finite(epoch, step, parts.as_dict())
            values = parts.as_dict()
            values["mse"] = (
                values["mse_trunk"]
                + sum(v for k, v in values.items() if k.startswith("mse_b"))
                + values["mse_ensemble"]
            )
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            seen += len(batch["image"]) * ctx.world_size
            if self.progress:
                rate = seen / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(
                    f"loss {values['loss']:.3e} lr {self.optimizer.param_groups[0]['lr']:.1e} {rate:.1f} img/s",
                    refresh=False,
                )
        bar.close()
        stats = {k: v / n for k, v in sums.items()}
        if ctx.distributed:
            keys = sorted(stats)
            tensor = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=self.device)
            dist.all_reduce(tensor)
            stats = dict(zip(keys, (tensor / ctx.world_size).tolist()))
        elapsed = time.perf_counter() - start
        stats.update(img_per_s=seen / max(elapsed, 1e-9), train_time_s=elapsed)
        return stats

    def _non_finite(self, epoch: int, step: int, values: dict[str, float]) -> None:
        last = self.out_dir / "checkpoint-last.pt"
        kept = (
            f"{last} (end of epoch {self.start_epoch if not self.history else self.history[-1]['epoch'] + 1}) is "
            "left as it was"
            if last.is_file()
            else "no checkpoint was written yet"
        )
        terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        raise NonFiniteLossError(
            f"non-finite loss at epoch {epoch + 1}, step {step + 1} ({terms}); training stopped and {kept}. "
            "Lower --lr, set optim.grad_clip, or drop --amp, then --resume from the last good checkpoint."
        )

    # ----------------------------------------------------------------- evaluation and output
    def _validate(self) -> dict[str, dict]:
        return evaluate_heads(
            self.model,
            self.data.val,
            self.data.val_loader,
            self.heads,
            self.device,
            heatmap_stride=self.spec.stride,
            flip_test=self.cfg.eval.flip_test,
            channels_last=self.speed.channels_last,
            autocast=self.autocast,
            progress=self.progress,
        )

    def _final_metrics(self) -> dict[str, dict]:
        """The last epoch's validation; validated now (on every rank) only when the run had no epoch
        left to train and its history lacks it. The history is the checkpoint's on every rank then."""
        last = self.history[-1] if self.history else {}
        if last.get("epoch") == self.cfg.optim.epochs - 1 and "val" in last:
            return last["val"]
        if self.start_epoch < self.cfg.optim.epochs:  # trained here: rank 0 holds the final row
            return {}
        return {head: _scalars(m) for head, m in self._validate().items()}

    def _finish(self, final: dict[str, dict]) -> TrainResult:
        cfg = self.cfg
        provenance = {**run_provenance(cfg, self.out_dir.name, cfg.optim.epochs), "code": self.code}
        metrics = {int(h[1:]): final[h] for h in final if h.startswith("b")}
        written = write_students(
            self.model, cfg.mode, self.target, self.preset, self.spec, self.out_dir / "students", provenance, metrics
        )
        best_epoch = self.best.get("epoch")
        if (
            best_epoch is not None
            and best_epoch != cfg.optim.epochs - 1
            and (self.out_dir / "checkpoint-best.pt").is_file()
        ):
            best_model = self._new_network()
            best_model.load_state_dict(load_checkpoint(self.out_dir / "checkpoint-best.pt")["model"])
            write_students(
                best_model,
                cfg.mode,
                self.target,
                self.preset,
                self.spec,
                self.out_dir / "students-best",
                {**provenance, "epoch": best_epoch + 1},
                None,
            )
            self.log(f"best target epoch was {best_epoch + 1}: its students are in {self.out_dir / 'students-best'}")
        ensemble = None
        if cfg.mode == "okdhp":  # the FAU is trained only here
            ensemble = write_ensemble(
                self.model, self.preset, self.spec, self.out_dir, provenance, final.get("ensemble")
            )
        rows = self._rows(final, written, ensemble)
        reference = _scalars(mean_pose_reference(self.data.train, self.data.val))
        rows.append(
            HeadRow(
                head="ref",
                name="mean training pose (no network)",
                stacks=None,
                width=None,
                params=0,
                macs=0,
                compression_rate=None,
                metrics=reference,
            )
        )
        table = format_table(rows)
        elapsed = time.perf_counter() - self.started
        target_name = written[self.target][1].name
        write_json_atomic(
            self.out_dir / "metrics.json",
            _plain(
                {
                    "preset": self.preset.name,
                    "mode": cfg.mode,
                    "data": cfg.data.source,
                    "epochs": cfg.optim.epochs,
                    "target": target_name,
                    "selection_metric": self.metric,
                    "best": self.best,
                    "time_s": round(elapsed, 1),
                    "rows": [r.to_dict() for r in rows],
                }
            ),
        )
        plot_curves(self.history, self.out_dir / "curves.png", list(dict.fromkeys(["pck@0.2", self.metric])))
        if cfg.eval.samples:
            self._samples()
        self.log("\n" + table)
        self.log(f"\nstudents: {self.out_dir / 'students'} (target: {target_name}); run time {elapsed / 60:.1f} min")
        if ensemble is not None:
            self.log(f"FAU ensemble (a labelling teacher, docs/training.md): {ensemble[0]}")
        return TrainResult(
            out_dir=self.out_dir,
            rows=rows,
            students={d.name: p for p, d in written.values()},
            target=target_name,
            history=self.history,
            best=self.best,
        )

    def _rows(self, final: dict[str, dict], written: dict, ensemble: tuple[Path, ModelSpec] | None) -> list[HeadRow]:
        rows = []
        for b, (_, desc) in sorted(written.items()):
            arch = desc.arch
            rows.append(
                HeadRow(
                    head=f"b{b}",
                    name=desc.name,
                    stacks=arch.trunk_stacks + arch.branch_stacks,
                    width=arch.branch_channels,
                    params=desc.params,
                    macs=desc.macs,
                    compression_rate=desc.compression_rate,
                    target=b == self.target,
                    metrics=final.get(f"b{b}", {}),
                )
            )
        if ensemble is not None:
            desc = ensemble[1]
            rows.append(
                HeadRow(
                    head="ensemble",
                    name="training net (all branches + FAU)",
                    stacks=None,
                    width=None,
                    params=desc.params,
                    macs=desc.macs,
                    compression_rate=None,
                    metrics=final.get("ensemble", {}),
                )
            )
        return rows

    def _samples(self) -> None:
        """Target student's predictions on the first validation crops."""
        val = self.data.val
        items = [val[i] for i in range(min(self.cfg.eval.samples, len(val)))]
        images = np.stack([it["image"] for it in items])
        head = f"b{self.target}"
        self.model.eval()
        heatmaps = predict_heads(self.model, torch.from_numpy(images).to(self.device), [head], autocast=self.autocast)[
            head
        ]
        w, h = self.input_spec.width, self.input_spec.height
        codec = HeatmapCodec((w, h), (w // self.spec.stride, h // self.spec.stride))
        keypoints, scores = codec.decode(heatmaps)
        truth = np.stack(
            [
                np.concatenate(
                    [apply_affine(it["joints"][:, :2], invert_affine(it["crop_to_image"])), it["joints"][:, 2:]], axis=1
                )
                for it in items
            ]
        )
        plot_samples(
            images,
            keypoints,
            scores,
            truth,
            self.skeleton,
            self.input_spec,
            self.out_dir / "samples.png",
            f"target student {head} ({self.spec.branches[self.target]}) on validation crops; x = ground truth",
        )
