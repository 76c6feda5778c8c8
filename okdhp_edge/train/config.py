"""Training configuration: dataclasses, the presets' recipe YAML files, strict validation.

A run's config is its preset's recipe (the YAML the preset registry `okdhp_edge.models.presets`
names, shipped in `okdhp_edge/configs/`), then an optional user YAML, then command-line
overrides, merged in that order. Every key and value is checked so that a typo fails at once
with the list of valid keys or values instead of hours later.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.factory import FILE_SOURCES, GENERATED_SOURCES, SOURCES_HELP
from ..models.presets import PRESETS, RECIPE_DIR
from ..trainkit.config import (
    AMP_MODES,
    ConfigError,
    RunConfig,
    merge_config,
    parse_override,
    parse_yaml,
    read_yaml,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "MODES",
    "ModelConfig",
    "OptimConfig",
    "SystemConfig",
    "TrainConfig",
    "available_presets",
    "load_config",
    "merge_config",
    "parse_branches",
    "parse_override",
]

MODES = ("okdhp", "independent", "single")
TRUNK_GRADS = ("all", "target")  # model.trunk_grad
ENSEMBLE_GRADS = ("all", "fau")  # model.ensemble_grad
SCHEDULES = ("step", "cosine")
METRICS = ("auto", "pck@0.2", "ap", "pckh@0.5")
CUDA_GRAPH_MODES = ("auto", "on", "off")
_BRANCH_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


@dataclass
class ModelConfig:
    """Which network: a preset, optionally with other branches (explicit or by compression rate)."""

    preset: str = "tiny"
    branches: list[str] | None = None  # "STACKSxWIDTH" per branch, e.g. ["2x64", "1x48", "1x32"]
    compression: list[float] | None = None  # fractions of the largest branch's MACs, e.g. [1.0, 0.5, 0.25]
    target: int | None = None  # the branch you deploy; None = the cheapest (the paper's unbalanced target)
    init: list[str] | None = None  # student .safetensors files or folders to start from (fine-tuning); null = random
    trunk_grad: str = "all"  # which branches' losses train the shared trunk: "all" (the paper) or "target" only
    # what the ensemble's loss trains: "all" (the paper: the FAU, and every branch through it) or "fau" (the
    # FAU only: each branch then learns from its own loss and its KL, and a branch with loss.kl_weights 0 as if alone)
    ensemble_grad: str = "all"


@dataclass
class DataConfig:
    """Where the images come from and how targets are made."""

    source: str = "synthetic"  # "synthetic", "synthetic:DIR", "coco:PATH" or "mpii:PATH", or a mixture "A+B"
    weights: list[float] | None = None  # mixtures: the parts' sampling proportions in training; null = equal
    val_source: str | None = None  # mixtures: the part validated on; null = the last one
    backgrounds: str | None = None  # synthetic data: draw the generated people on crops of the photos in this folder
    scene: dict[str, Any] = field(
        default_factory=dict
    )  # generated synthetic data: SceneConfig fields, e.g. {jpeg_prob: 0.5}
    train_images: int | None = None  # synthetic only: images generated for the train split
    val_images: int | None = None  # synthetic only: images generated for the val split
    sigma: float = 2.0  # Gaussian target sigma in heatmap pixels
    absent_weight: float = 0.0  # loss weight of "not here" for keypoints known to lie outside the image
    cache_dir: str | None = None
    workers: int = 0
    augment: dict[str, Any] = field(default_factory=dict)  # fields of okdhp_edge.data.AugmentConfig
    # COCO-layout data: validate on the person boxes of a COCO detection results JSON (image_id, category_id,
    # bbox xywh, score) instead of the annotated ones, with OKS-NMS (the standard top-down protocol); null = GT boxes
    val_detections: str | None = None
    val_min_box_score: float = 0.0  # with val_detections: detections scoring below this are dropped


@dataclass
class LossConfig:
    """L = sum MSE + alpha * MSE(ensemble) + beta * ramp(epoch) * sum_b w_b KL(ensemble || branch b's output)."""

    alpha: float = 1.0
    beta: float = 2.0
    ramp_epochs: float = 90.0  # ramp(t) = exp(-5 (1 - t/T)^2) for t < T, 1 after; 0 = no ramp
    kl_temperature: float = 0.1  # heatmap logits are divided by T before the spatial softmax
    detach_target: bool = True  # the ensemble teaches the branches without being pulled towards them
    # one factor per branch on its KL term, null = 1 for every branch (the paper); 0 for a branch the
    # ensemble cannot teach, e.g. the largest of an unbalanced run, whose ensemble is no better than it
    kl_weights: list[float] | None = None


@dataclass
class OptimConfig:
    """Adam with a warm-up and a step or cosine decay."""

    epochs: int = 150
    batch_size: int = 16
    lr: float = 2.5e-4
    weight_decay: float = 0.0
    schedule: str = "step"
    lr_steps: list[int] = field(default_factory=lambda: [90, 120])  # epochs where lr *= lr_factor (step)
    lr_factor: float = 0.1
    warmup_iters: int = 0
    grad_clip: float | None = None  # max global gradient norm; None = no clipping


@dataclass
class SystemConfig:
    """Device and speed options. `auto` / null switches are settled by timing a few training steps
    of the run's own network on its device (okdhp_edge.train.autotune), then recorded in the run."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto | off | bf16 | fp16 (fp16: CUDA only, with a GradScaler)
    channels_last: bool | None = None  # None = measured
    compile: bool = False
    seed: int = 0
    threads: int | None = None  # torch CPU threads per process; None = its share of the cores or 1, measured
    # auto | on | off: replay forward+loss+backward from a CUDA graph (auto = measured on CUDA)
    cuda_graphs: str = "auto"


@dataclass
class EvalConfig:
    """Validation during and after training."""

    every: int = 1  # evaluate every N epochs (and always after the last)
    flip_test: bool = False
    samples: int = 6  # validation crops drawn in samples.png
    metric: str = "auto"  # picks checkpoint-best on the target branch; auto = ap (COCO) / pckh@0.5 (MPII)


@dataclass
class TrainConfig(RunConfig):
    mode: str = "okdhp"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<config>") -> TrainConfig:
        system = data.get("system")
        if isinstance(system, dict):  # booleans where modes are meant, read as those modes
            modes = {
                "amp": ("auto", "off"),  # configs before amp modes
                "cuda_graphs": ("on", "off"),
            }  # YAML 1.1 reads a bare on/off as a bool
            data = {
                **data,
                "system": {
                    **system,
                    **{
                        key: modes[key][0] if value else modes[key][1]
                        for key, value in system.items()
                        if key in modes and isinstance(value, bool)
                    },
                },
            }
        return super().from_dict(data, source)

    def validate(self, source: str = "<config>") -> None:
        """Value checks beyond types; raises ConfigError naming the key and the valid values."""

        def fail(key: str, msg: str) -> None:
            raise ConfigError(f"{source}: {key}: {msg}")

        if self.mode not in MODES:
            fail("mode", f"{self.mode!r} is not valid; valid: {', '.join(MODES)}")
        m = self.model
        if m.preset not in PRESETS:
            fail("model.preset", f"unknown preset {m.preset!r}; valid: {', '.join(PRESETS)}")
        if m.branches is not None and m.compression is not None:
            fail("model", "give either branches or compression, not both")
        if m.branches is not None:
            try:
                parse_branches(m.branches)
            except ValueError as err:
                fail("model.branches", str(err))
        if m.compression is not None:
            if not m.compression or any(not 0 < c <= 1 for c in m.compression):
                fail(
                    "model.compression",
                    f"{m.compression}: need one fraction in (0, 1] per branch, e.g. [1.0, 0.5, 0.25]",
                )
        n_branches = len(m.branches or m.compression or PRESETS[m.preset].branches)
        if m.target is not None and not 0 <= m.target < n_branches:
            fail(
                "model.target",
                f"{m.target} is not a branch index; valid: 0..{n_branches - 1}, or null (= the cheapest branch)",
            )
        if m.trunk_grad not in TRUNK_GRADS:
            fail("model.trunk_grad", f"{m.trunk_grad!r} is not valid; valid: {', '.join(TRUNK_GRADS)}")
        if m.ensemble_grad not in ENSEMBLE_GRADS:
            fail("model.ensemble_grad", f"{m.ensemble_grad!r} is not valid; valid: {', '.join(ENSEMBLE_GRADS)}")
        d = self.data
        parts = [p.strip() for p in d.source.split("+")]
        for part in parts:
            kind, colon, _ = part.partition(":")
            if not (part in GENERATED_SOURCES or colon and kind in GENERATED_SOURCES + FILE_SOURCES):
                fail(
                    "data.source",
                    f"{part!r} in {d.source!r} is not valid; valid: {SOURCES_HELP}, "
                    "or a mixture of them joined by + (synthetic+coco:DIR)",
                )
        if d.weights is not None and (
            len(d.weights) != len(parts) or not all(math.isfinite(w) and w > 0 for w in d.weights)
        ):
            fail(
                "data.weights",
                f"{d.weights}: need one positive weight per data source ({len(parts)} in {d.source!r}), e.g. 1,2",
            )
        if d.val_source is not None and d.val_source not in parts:
            fail("data.val_source", f"{d.val_source!r} is not one of the data sources {parts}")
        for key in ("train_images", "val_images"):
            value = getattr(d, key)
            if value is not None and value < 1:
                fail(f"data.{key}", "must be >= 1 or null")
        if d.sigma <= 0:
            fail("data.sigma", "must be > 0")
        if not 0 <= d.absent_weight <= 1:
            fail("data.absent_weight", "must be in [0, 1]")
        if d.workers < 0:
            fail("data.workers", "must be >= 0")
        val_part = d.val_source or parts[-1]
        if d.val_detections is not None and not (
            val_part in GENERATED_SOURCES or val_part.startswith(tuple(f"{k}:" for k in GENERATED_SOURCES + ("coco",)))
        ):
            fail(
                "data.val_detections",
                f"detection boxes need COCO-layout data (coco:PATH or synthetic), not {val_part!r}",
            )
        if not math.isfinite(d.val_min_box_score) or d.val_min_box_score < 0:
            fail("data.val_min_box_score", "must be a number >= 0")
        if d.val_min_box_score > 0 and d.val_detections is None:
            fail(
                "data.val_min_box_score",
                "only applies to detection boxes: set data.val_detections to a COCO detection results JSON too",
            )
        _check_augment(d.augment, source)
        lo = self.loss
        for key in ("alpha", "beta", "ramp_epochs"):
            if getattr(lo, key) < 0:
                fail(f"loss.{key}", "must be >= 0")
        if lo.kl_temperature <= 0:
            fail("loss.kl_temperature", "must be > 0")
        if lo.kl_weights is not None:
            if len(lo.kl_weights) != n_branches or any(not math.isfinite(w) or w < 0 for w in lo.kl_weights):
                fail("loss.kl_weights", f"{lo.kl_weights}: need one factor >= 0 per branch ({n_branches} branches)")
        o = self.optim
        if o.epochs < 1:
            fail("optim.epochs", "must be >= 1")
        if o.batch_size < 1:
            fail("optim.batch_size", "must be >= 1")
        if o.lr <= 0:
            fail("optim.lr", "must be > 0")
        if o.schedule not in SCHEDULES:
            fail("optim.schedule", f"{o.schedule!r} is not valid; valid: {', '.join(SCHEDULES)}")
        if any(s < 1 for s in o.lr_steps) or list(o.lr_steps) != sorted(o.lr_steps):
            fail("optim.lr_steps", f"{o.lr_steps}: need increasing epochs >= 1")
        if not 0 < o.lr_factor <= 1:
            fail("optim.lr_factor", "must be in (0, 1]")
        if o.warmup_iters < 0 or o.weight_decay < 0:
            fail("optim", "warmup_iters and weight_decay must be >= 0")
        if o.grad_clip is not None and o.grad_clip <= 0:
            fail("optim.grad_clip", "must be > 0 or null")
        s = self.system
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", s.device):
            fail("system.device", f"{s.device!r} is not valid; valid: auto, cpu, cuda, cuda:N")
        if s.amp not in AMP_MODES:
            fail("system.amp", f"{s.amp!r} is not valid; valid: {', '.join(AMP_MODES)}")
        if s.threads is not None and s.threads < 1:
            fail("system.threads", "must be >= 1 or null")
        if s.cuda_graphs not in CUDA_GRAPH_MODES:
            fail("system.cuda_graphs", f"{s.cuda_graphs!r} is not valid; valid: {', '.join(CUDA_GRAPH_MODES)}")
        e = self.eval
        if e.every < 1:
            fail("eval.every", "must be >= 1")
        if e.samples < 0:
            fail("eval.samples", "must be >= 0")
        if e.metric not in METRICS:
            fail("eval.metric", f"{e.metric!r} is not valid; valid: {', '.join(METRICS)}")


def parse_branches(specs: list[str] | str) -> list[tuple[int, int]]:
    """["2x64", "1x48"] or "2x64,1x48" -> [(2, 64), (1, 48)] (stacks, width)."""
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    out = []
    for item in items:
        match = _BRANCH_RE.match(str(item))
        if not match:
            raise ValueError(f"branch {item!r} is not STACKSxWIDTH (e.g. 2x64)")
        stacks, width = int(match.group(1)), int(match.group(2))
        if stacks < 1 or width < 8:
            raise ValueError(f"branch {item!r}: needs >= 1 stack and width >= 8")
        out.append((stacks, width))
    if not out:
        raise ValueError("need at least one branch")
    return out


def available_presets() -> list[str]:
    """The preset registry's names (each a network and its recipe), sorted."""
    return sorted(PRESETS)


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Preset recipe (or `base`, e.g. a checkpoint's config) <- user YAML <- overrides (nested dict).

    The recipe is that of the preset named by `preset`, else by the overrides' or the user YAML's
    `model.preset`, else ModelConfig's default; the recipe's own `model.preset` names its network.
    """
    user = read_yaml(Path(config_file)) if config_file else {}
    overrides = copy.deepcopy(overrides or {})
    from_base = base is not None
    if base is None:
        name = (
            preset
            or overrides.get("model", {}).get("preset")
            or (user.get("model") or {}).get("preset")
            or ModelConfig.preset
        )
        base = _recipe(name)
    if preset:
        overrides.setdefault("model", {})["preset"] = preset
    merged = merge_config(merge_config(copy.deepcopy(base), user), overrides)
    sources = [f"preset {merged.get('model', {}).get('preset')!r}" if not from_base else "checkpoint config"]
    sources += [str(config_file)] if config_file else []
    sources += ["command line"] if overrides else []
    return TrainConfig.from_dict(merged, " + ".join(sources))


def _recipe(name: str) -> dict[str, Any]:
    """The registered preset's recipe, parsed."""
    if name not in PRESETS:
        raise ConfigError(f"no config for preset {name!r}; valid presets: {', '.join(available_presets())}")
    preset = PRESETS[name]
    return parse_yaml(preset.recipe_text(), f"okdhp_edge/{RECIPE_DIR}/{preset.recipe}")


def _check_augment(augment: dict[str, Any], source: str) -> None:
    """Augmentation keys must be fields of okdhp_edge.data.AugmentConfig (when the data package is present)."""
    try:
        from ..data import AugmentConfig
    except ImportError:
        return
    valid = [f.name for f in dataclasses.fields(AugmentConfig)]
    unknown = sorted(set(augment) - set(valid))
    if unknown:
        raise ConfigError(f"{source}: data.augment: unknown key(s) {unknown}; valid: {', '.join(valid)}")
