"""Train the person detector: a fixed number of steps over random crops (data.py), AdamW with a
warm-up and a cosine schedule, in the pose trainer's run folder layout (okdhp_edge.trainkit):
`config.yaml`, `metrics.jsonl`, an atomic `checkpoint-last.pt` every `system.checkpoint_every`
steps and on Ctrl-C, then the weights (safetensors + JSON, never pickle).

Each step's crops come from a generator seeded by (seed, step), so a resumed run draws the same
batches as an uninterrupted one and ends with the same weights.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from safetensors import SafetensorError

from ..trainkit.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from ..trainkit.config import ConfigError
from ..trainkit.provenance import code_version
from ..trainkit.rundir import check_out_dir, write_metrics, write_run_config
from ..trainkit.seeding import seed_everything
from ..trainkit.speed import amp_candidates, amp_setup, kept_threads
from .config import DetTrainConfig
from .data import DetectionFrames, Frame, labelled_frames, synthetic_frames
from .net import PersonDetNet
from .targets import detection_loss
from .weights import load_detector, save_detector

__all__ = ["WEIGHTS_NAME", "train_detector"]

WEIGHTS_NAME = "person-det.safetensors"


def _learning_rate(config: DetTrainConfig, step: int) -> float:
    o = config.optim
    warmup = min(200, o.steps // 10)
    if step < warmup:
        return o.lr * (step + 1) / warmup
    progress = (step - warmup) / max(o.steps - warmup, 1)
    return o.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _batch(
    sources: list[tuple[DetectionFrames, float]], size: int, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    weights = np.array([w for _, w in sources], np.float64)
    picks = rng.choice(len(sources), size=size, p=weights / weights.sum())
    items = [sources[int(i)][0].sample(rng) for i in picks]
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


def _sources(config: DetTrainConfig, real: list[list[Frame]]) -> list[tuple[DetectionFrames, float]]:
    """Synthetic and real crops with their shares of each batch; `real` holds one list of frames per
    entry of data.real_weights (one pooled list without them)."""
    d, spec = config.data, config.model.spec()
    crop = (d.crop[0], d.crop[1])
    sources = []
    if d.synthetic:
        scenes = synthetic_frames(d.synthetic, spec.width, spec.height, config.system.seed, d.backgrounds)
        sources.append((DetectionFrames(scenes, crop, spec.stride, zoom_out=d.zoom_out), d.synthetic_share))
    if real:
        share = 1.0 - d.synthetic_share if d.synthetic else 1.0
        weights = np.asarray(d.real_weights or [1.0], np.float64)
        for frames, weight in zip(real, weights / weights.sum()):
            if weight > 0:
                crops = DetectionFrames(frames, crop, spec.stride, zoom=d.zoom, zoom_out=d.zoom_out)
                sources.append((crops, share * weight))
    return sources


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"system.device {name}: torch finds no CUDA device here; use --device cpu (or auto)")
    return device


@contextlib.contextmanager
def _ctrl_c_between_steps() -> Iterator[list[bool]]:
    """Ctrl-C sets a flag that the loop reads between steps, so the checkpoint it saves never holds a
    half-applied update (where SIGINT is the default handler; an ignored SIGINT stays ignored)."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield flag
        return

    def request(signum, frame) -> None:
        flag[0] = True

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def train_detector(
    config: DetTrainConfig,
    out_dir: str | Path,
    resume: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train as `config` says into `out_dir`; `resume` is a checkpoint of an earlier run of the same
    network. Returns the weights path (OUT/person-det.safetensors). Ctrl-C saves checkpoint-last.pt
    and re-raises KeyboardInterrupt."""
    out = Path(out_dir)
    check_out_dir(out)
    with kept_threads():
        return _Run(config, out, Path(resume) if resume else None, log).run()


class _Run:
    """One training run: frames, network, optimiser, the step loop and its checkpoints."""

    def __init__(self, config: DetTrainConfig, out: Path, resume: Path | None, log: Callable[[str], None]) -> None:
        self.config = config
        self.out = out
        self.resume = resume
        self.log = log
        self.spec = config.model.spec()
        self.device = _device(config.system.device)
        self.amp = amp_candidates(config.system.amp, self.device)[0]  # AmpError (a ConfigError) for fp16 on a CPU

    def _network_record(self) -> dict:
        return self.spec.to_dict()

    def _build(self) -> None:
        c, s = self.config, self.config.system
        if s.threads:
            torch.set_num_threads(s.threads)
        self.code = code_version()
        seed_everything(s.seed)
        d = c.data
        # real frames first: a wrong folder fails before minutes of rendering
        size = (self.spec.width, self.spec.height)
        groups = [[e] for e in d.real] if d.real_weights else [d.real] if d.real else []
        real = [labelled_frames(g, *size, first=d.real_first, plate=d.plate) for g in groups]
        self.real_frames = sum(len(frames) for frames in real)
        self.sources = _sources(c, real)
        net = PersonDetNet(self.spec).to(self.device)
        self.net = net.to(memory_format=torch.channels_last) if s.channels_last else net
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=c.optim.lr, weight_decay=c.optim.weight_decay)
        self.autocast, self.scaler, precision = amp_setup(self.amp, self.device)
        self.start, self.history = 0, []
        if self.resume is not None:
            self._load(self.resume)
        elif c.model.init:
            self._init(Path(c.model.init))
        layout = "channels_last" if s.channels_last else "NCHW"
        self.log(f"training on {self.device}: {precision}, {layout}, {torch.get_num_threads()} thread(s)")

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state.get("network") != self._network_record():
            raise CheckpointError(
                f"{path}: checkpoint network {state.get('network')} differs from this run's {self._network_record()}; "
                "resume with the same model section (or start a new run in another --out)"
            )
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
        self.start = int(state["step"])
        self.history = list(state.get("history", []))
        self.log(f"resumed from {path} at step {self.start}")

    def _init(self, path: Path) -> None:
        """Start from a trained detector's weights (fine-tuning); its network must be this run's."""
        try:
            net, record = load_detector(path)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
            raise CheckpointError(
                f"{path}: cannot load detector weights ({type(err).__name__}: {err}); model.init takes a "
                "person-det.safetensors with its .json, written by python -m okdhp_edge.detection"
            ) from None
        if record["spec"] != self._network_record():
            raise CheckpointError(
                f"{path}: its network {record['spec']} differs from this run's {self._network_record()}; set the "
                "model section to match (e.g. --set model.context=N)"
            )
        self.net.load_state_dict(net.state_dict())
        self.log(f"initialised from {path}")

    def _state(self, steps_done: int) -> dict:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": steps_done,
            "rng": capture_rng(),
            "config": self.config.to_dict(),
            "network": self._network_record(),
            "history": self.history,
        }

    def _step(self, step: int) -> dict[str, float]:
        c = self.config
        rng = np.random.default_rng([c.system.seed, step])  # a function of the step: resuming replays nothing
        batch = {
            k: v.to(self.device, non_blocking=True) for k, v in _batch(self.sources, c.optim.batch_size, rng).items()
        }
        for group in self.optimizer.param_groups:
            group["lr"] = _learning_rate(c, step)
        images = batch.pop("image")
        if c.system.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self.autocast:
            outputs = self.net(images)
        losses = detection_loss(outputs, batch)  # in fp32: the loss casts the heads' outputs
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach()) for k, v in losses.items()}

    def run(self) -> Path:
        self._build()  # bad data or a bad checkpoint fail here, before the run folder is written
        c = self.config
        write_run_config(self.out, c.to_yaml())
        write_metrics(self.out, self.history)
        self.log(f"run directory: {self.out}")
        started = time.perf_counter()
        self.net.train()
        with _ctrl_c_between_steps() as interrupted:
            for step in range(self.start, c.optim.steps):
                if interrupted[0]:
                    path = save_checkpoint(self.out / "checkpoint-last.pt", self._state(step))
                    print(f"\ninterrupted: saved {path}; continue with --resume {path}", file=sys.stderr, flush=True)
                    raise KeyboardInterrupt
                values = self._step(step)
                self._after(step, values, started)
        return save_detector(self.net.eval(), self.out / WEIGHTS_NAME, self._record())

    def _after(self, step: int, values: dict[str, float], started: float) -> None:
        """The log line and metrics row, and the checkpoint, each at its own rhythm (and after the last step)."""
        c = self.config
        last = step + 1 == c.optim.steps
        if (step + 1) % c.system.log_every == 0 or last:
            rate = (step + 1 - self.start) * c.optim.batch_size / (time.perf_counter() - started)
            self.history.append({"step": step + 1, "lr": _learning_rate(c, step), **values, "images_per_s": rate})
            write_metrics(self.out, self.history)
            self.log(
                f"step {step + 1}/{c.optim.steps} loss {values['loss']:.3f} (focal {values['focal']:.3f} "
                f"size {values['size']:.3f} offset {values['offset']:.3f}) {rate:.1f} img/s"
            )
        if (step + 1) % c.system.checkpoint_every == 0 or last:
            save_checkpoint(self.out / "checkpoint-last.pt", self._state(step + 1))

    def _record(self) -> dict:
        d = self.config.data
        return {
            "kind": "okdhp_edge person detector",
            "spec": self.spec.to_dict(),
            "recipe": self.config.to_dict(),
            "data": {
                "synthetic_scenes": d.synthetic,
                "real_frames": self.real_frames,
                "real": d.real,
                "real_weights": d.real_weights,
                "plate": d.plate,
            },
            "provenance": {"code": self.code, "trained": time.strftime("%Y-%m-%d")},
        }
