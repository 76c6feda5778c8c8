"""The person detector's training config: dataclass sections like the pose trainer's, read from
`okdhp_edge/configs/detector/person-det.yaml`, then an optional user YAML (`--config`), then
command-line flags and `--set SECTION.KEY=VALUE`, merged in that order and checked strictly.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..trainkit.config import AMP_MODES, ConfigError, RunConfig, merge_config, parse_yaml, read_yaml
from .net import HEAD_STRIDE, DetSpec

__all__ = [
    "DEFAULT_CONFIG",
    "DetDataConfig",
    "DetModelConfig",
    "DetOptimConfig",
    "DetSystemConfig",
    "DetTrainConfig",
    "load_det_config",
]

DEFAULT_CONFIG = "configs/detector/person-det.yaml"  # inside the okdhp_edge package
REAL_FORMAT = "coco:DIR or coco:DIR:SPLIT (a folder written by python -m okdhp_edge.data.label)"


@dataclass
class DetModelConfig:
    """The network's shape (okdhp_edge.detection.net.DetSpec)."""

    width: int = 384
    height: int = 288
    stages: list[int] = field(default_factory=lambda: [24, 32, 64, 96, 128])  # widths at stride 2, 4, 8, 16, 32
    neck: int = 48
    context: int = 0  # dilated blocks at stride 32 (half as many at 16) for near people
    init: str | None = None  # a person-det.safetensors of the same network to start from (fine-tuning)

    def spec(self) -> DetSpec:
        return DetSpec(self.width, self.height, tuple(self.stages), self.neck, self.context)


@dataclass
class DetDataConfig:
    """Training frames: rendered scenes and labelled real frames, cut into random crops."""

    synthetic: int = 3000  # rendered scenes of 1-7 people
    backgrounds: str | None = None  # photo folder for half the synthetic scenes
    synthetic_share: float = 0.5  # probability that a crop comes from a synthetic scene (with real frames too)
    real: list[str] = field(default_factory=list)  # labelled real frames, coco:DIR or coco:DIR:SPLIT
    # one per real entry: its share of the real crops, frames drawn evenly within it; null: every frame alike
    real_weights: list[float] | None = None
    real_first: int | None = None  # only the first N frames (by file name) of each real split
    plate: str | None = None  # clean plate of the real frames' static camera: motion outside boxes is ignored
    zoom: float = 0.0  # share of real crops enlarged around one person (far people taught at near sizes)
    zoom_out: float = 0.0  # share of crops showing the whole frame 2-4x smaller (for Detector(zoom_out=k))
    crop: list[int] = field(default_factory=lambda: [256, 192])  # training crop, width and height


@dataclass
class DetOptimConfig:
    """AdamW with a linear warm-up (a tenth of the steps, at most 200) and a cosine to zero."""

    steps: int = 3000
    batch_size: int = 24
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class DetSystemConfig:
    """Device, speed switches and the run's rhythm."""

    device: str = "cpu"  # cpu | cuda | cuda:N | auto (cuda when there is one)
    amp: str = "off"  # off | bf16 | fp16 (CUDA only); the detector measures nothing, so no auto
    channels_last: bool = True
    threads: int | None = None  # torch CPU threads; null = torch's default
    seed: int = 0
    checkpoint_every: int = 200  # steps between atomic checkpoint-last.pt writes
    log_every: int = 50  # steps between log lines and metrics.jsonl rows


@dataclass
class DetTrainConfig(RunConfig):
    model: DetModelConfig = field(default_factory=DetModelConfig)
    data: DetDataConfig = field(default_factory=DetDataConfig)
    optim: DetOptimConfig = field(default_factory=DetOptimConfig)
    system: DetSystemConfig = field(default_factory=DetSystemConfig)

    def validate(self, source: str = "<config>") -> None:
        """Value checks beyond types; raises ConfigError naming the key, the value and the fix."""

        def fail(key: str, msg: str) -> None:
            raise ConfigError(f"{source}: {key}: {msg}")

        try:
            self.model.spec()
        except ValueError as err:
            fail("model", str(err))
        d = self.data
        for entry in d.real:
            if not entry.startswith("coco:") or not entry[len("coco:") :].strip(":"):
                fail("data.real", f"{entry!r} is not valid; valid: {REAL_FORMAT}")
        if d.real_weights is not None:
            w = d.real_weights
            if len(w) != len(d.real):
                fail("data.real_weights", f"{len(w)} weights for {len(d.real)} real entries: give one per --real")
            if any(not math.isfinite(x) or x < 0 for x in w) or not sum(w) > 0:
                fail("data.real_weights", f"{w}: need numbers >= 0, not all 0")
        if d.synthetic < 0:
            fail("data.synthetic", f"{d.synthetic} must be >= 0 (0 = real frames only)")
        if d.synthetic == 0 and not d.real:
            fail("data", "nothing to train on: set data.synthetic > 0 or pass --real coco:DIR")
        if not 0 <= d.synthetic_share <= 1 or (d.real and d.synthetic and not 0 < d.synthetic_share < 1):
            fail("data.synthetic_share", f"{d.synthetic_share} must be in (0, 1) with both kinds of frames")
        if d.real_first is not None and d.real_first < 1:
            fail("data.real_first", f"{d.real_first} must be >= 1 or null (all frames)")
        for key in ("zoom", "zoom_out"):
            if not 0 <= getattr(d, key) <= 1:
                fail(f"data.{key}", f"{getattr(d, key)} must be in [0, 1]")
        if len(d.crop) != 2 or any(c < 32 or c % HEAD_STRIDE for c in d.crop):
            fail("data.crop", f"{d.crop}: need [width, height], each >= 32 and a multiple of {HEAD_STRIDE}")
        o = self.optim
        for key in ("steps", "batch_size"):
            if getattr(o, key) < 1:
                fail(f"optim.{key}", f"{getattr(o, key)} must be >= 1")
        if not math.isfinite(o.lr) or o.lr <= 0:
            fail("optim.lr", f"{o.lr} must be > 0")
        if not math.isfinite(o.weight_decay) or o.weight_decay < 0:
            fail("optim.weight_decay", f"{o.weight_decay} must be >= 0")
        s = self.system
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", s.device):
            fail("system.device", f"{s.device!r} is not valid; valid: auto, cpu, cuda, cuda:N")
        if s.amp not in AMP_MODES or s.amp == "auto":
            fail("system.amp", f"{s.amp!r} is not valid; valid: off, bf16, fp16 (CUDA only)")
        if s.threads is not None and s.threads < 1:
            fail("system.threads", f"{s.threads} must be >= 1 or null")
        for key in ("checkpoint_every", "log_every"):
            if getattr(s, key) < 1:
                fail(f"system.{key}", f"{getattr(s, key)} must be >= 1")


def load_det_config(
    config_file: str | Path | None = None, overrides: dict[str, Any] | None = None, base: dict[str, Any] | None = None
) -> DetTrainConfig:
    """The shipped default (or `base`, a checkpoint's config) <- user YAML <- overrides (nested dict)."""
    from_base = base is not None
    if base is None:
        text = (resources.files("okdhp_edge") / DEFAULT_CONFIG).read_text(encoding="utf-8")
        base = parse_yaml(text, f"okdhp_edge/{DEFAULT_CONFIG}")
    user = read_yaml(Path(config_file)) if config_file else {}
    merged = merge_config(merge_config(copy.deepcopy(base), user), copy.deepcopy(overrides or {}))
    sources = ["checkpoint config" if from_base else f"okdhp_edge/{DEFAULT_CONFIG}"]
    sources += [str(config_file)] if config_file else []
    sources += ["command line"] if overrides else []
    return DetTrainConfig.from_dict(merged, " + ".join(sources))
