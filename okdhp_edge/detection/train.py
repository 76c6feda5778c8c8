"""Train the person detector: `python -m okdhp_edge.detection --out DIR [--real coco:DIR ...]`.

A fixed number of steps over random crops (data.py), Adam with a cosine schedule, an atomic
checkpoint every `checkpoint_every` steps (`--resume auto` picks the run up where it stopped),
then the weights (safetensors + JSON, never pickle) and the runtime file (export.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..train.checkpoint import load_checkpoint, resolve_resume, save_checkpoint
from ..train.trainer import code_version
from .data import DetectionFrames, labelled_frames, synthetic_frames
from .net import DetSpec, PersonDetNet
from .targets import detection_loss
from .weights import save_detector

__all__ = ["DetTrainConfig", "main", "train_detector"]

log = logging.getLogger("okdhp_edge.detection")


@dataclass
class DetTrainConfig:
    """One detector run. `real` entries are "coco:DIR" or "coco:DIR:SPLIT" (split "train" by default)."""

    out: str = "runs/person-det"
    real: list[str] = field(default_factory=list)
    real_first: int | None = None  # use only the first N frames (by file name) of each real split
    plate: str | None = None  # clean plate of the real frames' static camera (motion outside boxes is ignored)
    synthetic: int = 3000  # rendered scenes
    backgrounds: str | None = None  # photo folder for some synthetic scenes
    synthetic_share: float = 0.5  # probability that a training crop comes from a synthetic scene
    # share of real crops enlarged around one person (real footage of far people, taught at near
    # sizes)
    zoom: float = 0.0
    steps: int = 3000
    batch: int = 24
    crop: tuple[int, int] = (256, 192)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    threads: int | None = None
    seed: int = 0
    checkpoint_every: int = 200
    spec: DetSpec = field(default_factory=DetSpec)

    def to_dict(self) -> dict:
        return {**asdict(self), "crop": list(self.crop), "spec": self.spec.to_dict()}


def _batch(
    sources: list[tuple[DetectionFrames, float]], size: int, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    weights = np.array([w for _, w in sources], np.float64)
    picks = rng.choice(len(sources), size=size, p=weights / weights.sum())
    items = [sources[int(i)][0].sample(rng) for i in picks]
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


def _learning_rate(config: DetTrainConfig, step: int) -> float:
    warmup = min(200, config.steps // 10)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(config.steps - warmup, 1)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train_detector(config: DetTrainConfig, resume: str | None = None) -> Path:
    """Run the training; returns the saved weights path (OUT/person-det.safetensors)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    torch.manual_seed(config.seed)
    spec = config.spec
    sources = []
    if config.synthetic:
        scenes = synthetic_frames(config.synthetic, spec.width, spec.height, config.seed, config.backgrounds)
        sources.append((DetectionFrames(scenes, config.crop, spec.stride), config.synthetic_share))
    real = labelled_frames(config.real, spec.width, spec.height, first=config.real_first, plate=config.plate)
    if real:
        sources.append(
            (
                DetectionFrames(real, config.crop, spec.stride, zoom=config.zoom),
                1.0 - config.synthetic_share if config.synthetic else 1.0,
            )
        )
    if not sources:
        raise ValueError("nothing to train on: set synthetic > 0 or pass --real coco:DIR")
    net = PersonDetNet(spec).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = 0
    checkpoint = resolve_resume(resume, out)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        log.info("resumed from %s at step %d", checkpoint, start)
    net.train()
    started, seen = time.perf_counter(), 0
    for step in range(start, config.steps):
        rng = np.random.default_rng([config.seed, step])  # a function of the step: resuming replays nothing
        batch = _batch(sources, config.batch, rng)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        images = batch.pop("image").contiguous(memory_format=torch.channels_last)
        losses = detection_loss(net(images), batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        seen += config.batch
        if (step + 1) % 50 == 0 or step + 1 == config.steps:
            rate = seen / (time.perf_counter() - started)
            values = {k: float(v.detach()) for k, v in losses.items()}
            log.info(
                "step %d/%d loss %.3f (focal %.3f size %.3f offset %.3f) %.1f img/s",
                step + 1,
                config.steps,
                values["loss"],
                values["focal"],
                values["size"],
                values["offset"],
                rate,
            )
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            save_checkpoint(
                out / "checkpoint-last.pt",
                {
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step + 1,
                    "config": json.dumps(config.to_dict()),
                },
            )
    record = {
        "kind": "okdhp_edge person detector",
        "spec": spec.to_dict(),
        "recipe": config.to_dict(),
        "data": {
            "synthetic_scenes": config.synthetic,
            "real_frames": len(real),
            "real": config.real,
            "plate": config.plate,
        },
        "provenance": {"code": code_version(), "trained": time.strftime("%Y-%m-%d")},
    }
    return save_detector(net.eval(), out / "person-det.safetensors", record)


def _parser() -> argparse.ArgumentParser:
    defaults = DetTrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m okdhp_edge.detection", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default=defaults.out)
    p.add_argument("--real", action="append", default=[], help="labelled real frames, coco:DIR[:SPLIT] (repeatable)")
    p.add_argument(
        "--real-first", type=int, help="only the first N frames of each real split (keep the rest of a clip unseen)"
    )
    p.add_argument("--plate", help="clean plate of the real frames' static camera: motion outside the boxes is ignored")
    p.add_argument("--backgrounds", help="photo folder for the synthetic scenes")
    for name in ("synthetic", "steps", "batch", "threads", "seed", "checkpoint_every"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("synthetic_share", "zoom", "lr"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    p.add_argument("--resume", help="a checkpoint, a run folder, or auto (OUT/checkpoint-last.pt when there is one)")
    p.add_argument("--no-export", action="store_true", help="skip writing the runtime ONNX files")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = _parser().parse_args(argv)
    known = {f.name for f in fields(DetTrainConfig)}
    config = DetTrainConfig(**{k: v for k, v in vars(args).items() if k in known})
    weights = train_detector(config, args.resume)
    print(f"weights: {weights}")
    if not args.no_export:
        from .export import export_detector  # the export extra (onnx), not needed to train

        for path in export_detector(weights, calibration=config.real, real_first=config.real_first):
            print(f"runtime file: {path}")
    return 0
