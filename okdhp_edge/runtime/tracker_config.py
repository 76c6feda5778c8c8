"""`TrackerConfig`: PoseTracker's settings, every field checked, loadable from a dict or a YAML file.

Settings often come from a file an app ships or a user edits, so a typo in a name or a value out
of range is refused when the config is made, naming the field (and the file), instead of
surfacing frames later as an odd error or silently odd tracking. PyYAML is imported only when a
YAML file is read: a runtime-only install does not have it. That is also why the defaults are
written twice, here and in the YAML file the package ships (TRACKER_YAML, every field, for apps to
copy and edit): the runtime cannot read YAML to take them from it, so a test holds the two equal.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .one_euro import OneEuroConfig

__all__ = ["REPORTS", "TRACKER_YAML", "TrackerConfig", "load_config"]

# TrackerConfig's whole-number fields and their least values; its other numbers (finite) and their rules
COUNTS = {"detect_every": 0, "max_people": 1, "max_age": 0, "coast": 0, "confirm": 1, "min_keypoints": 1}
SHARE: tuple[Callable[[float], bool], str] = (lambda v: 0 <= v <= 1, "in [0, 1]")
AT_LEAST_0: tuple[Callable[[float], bool], str] = (lambda v: v >= 0, ">= 0")
OR_AUTO: tuple[Callable[[float], bool], str] = (lambda v: True, "or None (auto)")
NUMBERS = {
    "fps": (lambda v: v > 0, "> 0"),
    "match_threshold": SHARE,
    "near_distance": AT_LEAST_0,
    "match_colour": SHARE,
    "near_colour": SHARE,
    "colour_update": SHARE,
    "duplicate_oks": SHARE,
    "replace_iou": SHARE,
    "replace_inside": SHARE,
    "keypoint_score": OR_AUTO,
    "lost_score": OR_AUTO,
    "draw_score": OR_AUTO,
    "auto_score": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "margin": AT_LEAST_0,
    "min_box_size": AT_LEAST_0,
    "partial_height": SHARE,
}
REPORTS = ("confirmed", "all")  # TrackerConfig.report's values
TRACKER_YAML = Path(__file__).parent / "configs" / "tracker.yaml"  # the default settings, every field


@dataclass
class TrackerConfig:
    """Thresholds on keypoints are on heatmap peak scores (as in PoseResult.scores), whose scale
    depends on the student: left at None, keypoint_score and lost_score follow the student's own
    scores, `auto_score` times the median mean score of the poses found in detections' crops, and
    draw_score the same share of their median pose_score (runtime/tracking/poses.py; 0.5 until
    AUTO_POSES of them are seen; docs/runtime.md: how the share was chosen)."""

    # with a detector: run it every this many frames (1: every frame; 0: only when nobody is
    # tracked)
    detect_every: int = 5
    max_people: int = 16  # the most tracks followed at once (a street clip shows 9-12 people)
    max_age: int = 15  # frames a track is kept without a pose before its ID is dropped
    coast: int = 2  # a track that lost its pose still gets a crop, where its velocity takes it, for this many frames
    confirm: int = 2  # frames in a row a new track must be seen on before it gets an ID and is reported (1: at once)
    smoothing: OneEuroConfig | None = field(default_factory=OneEuroConfig)  # None: raw keypoints
    fps: float = 30.0  # frame rate assumed for smoothing when update() gets no timestamp
    match_threshold: float = 0.2  # least (IoU + OKS) / 2 for a pose to continue a track
    # then: a pose this near a track's predicted box (centre distance / box height) continues it
    near_distance: float = 0.5
    match_colour: float = 0.5  # least colour similarity (appearance.py) for a pose to continue a track on IoU + OKS
    near_colour: float = 0.7  # and on nearness
    colour_update: float = 0.1  # weight of each new whole-body pose in a track's colours
    duplicate_oks: float = 0.5  # poses more similar than this are one person (OKS-NMS)
    replace_iou: float = 0.3  # a detection overlapping a tracked crop this much replaces the crop
    replace_inside: float = 0.8  # or covering this share of a smaller crop (one near person's drifted crop)
    keypoint_score: float | None = None  # keypoints at least this confident place the next crop; None: auto
    min_keypoints: int = 4  # fewer confident keypoints than this: the pose is lost
    lost_score: float | None = None  # mean score below this: the pose is lost; None: auto
    auto_score: float = 0.6  # auto thresholds: this share of the median mean score of poses in detections' crops
    # keypoints reported as confident (TrackedPose.keypoint_threshold: what draw_pose draws) score at
    # least this; None: auto, auto_score x the median pose_score (the mean of a pose's best third)
    draw_score: float | None = None
    margin: float = 0.15  # grow the keypoint box by this fraction of its size on each side
    min_box_size: float = 16.0  # pixels; a box never shrinks below this
    # a pose whose box is under this share of its track's body height is partial: the body's box is
    # kept
    partial_height: float = 0.7
    flip_test: bool = False
    # what update() returns: "confirmed" people with a pose on this frame, or "all" (also tentative
    # and coasting tracks)
    report: str = "confirmed"

    def __post_init__(self) -> None:
        """Every field checked here, so a bad setting (say, from a settings file) is named at once."""
        for name, least in COUNTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"TrackerConfig.{name} must be a whole number >= {least}, got {value!r}")
        for name, (allowed, rule) in NUMBERS.items():
            value = getattr(self, name)
            if value is None and rule == OR_AUTO[1]:
                continue
            if not (_is_number(value) and math.isfinite(value) and allowed(value)):
                raise ValueError(f"TrackerConfig.{name} must be a finite number {rule}, got {value!r}")
        if self.smoothing is not None and not isinstance(self.smoothing, OneEuroConfig):
            raise ValueError(
                f"TrackerConfig.smoothing must be a OneEuroConfig or None (raw keypoints), got {self.smoothing!r}"
            )
        if not isinstance(self.flip_test, (bool, np.bool_)):
            raise ValueError(f"TrackerConfig.flip_test must be True or False, got {self.flip_test!r}")
        if self.report not in REPORTS:
            raise ValueError(
                f"TrackerConfig.report must be one of {', '.join(map(repr, REPORTS))}, got {self.report!r}"
            )

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any], source: str = "tracker settings") -> TrackerConfig:
        """A config from plain values (as JSON or YAML give them): fields left out keep their
        defaults; `smoothing` is true (the default filter), false or null (off), or a mapping of
        OneEuroConfig's fields. An unknown name or a bad value is a ValueError naming it and `source`."""
        if not isinstance(settings, Mapping):
            raise ValueError(
                f"{source}: expected a mapping of TrackerConfig fields to values, got {type(settings).__name__}"
            )
        known = [f.name for f in fields(cls)]
        for name in settings:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"{source}: unknown TrackerConfig field {name!r}{hint}; the fields are {', '.join(known)}"
                )
        values = dict(settings)
        try:
            if "smoothing" in values:
                values["smoothing"] = _smoothing(values["smoothing"])
            return cls(**values)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrackerConfig:
        """A config from a YAML file of `field: value` lines (see from_dict); needs PyYAML."""
        try:
            import yaml
        except ImportError:
            raise ModuleNotFoundError(
                f"reading tracker settings from {path} needs PyYAML, which the runtime does not install: "
                "pip install pyyaml (or pass the settings as a dict: TrackerConfig.from_dict)",
                name="yaml",
            ) from None
        path = Path(path)
        try:
            settings = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
        return cls.from_dict({} if settings is None else settings, str(path))


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _smoothing(value: object) -> OneEuroConfig | None:
    """A settings file's `smoothing` as TrackerConfig takes it."""
    if value is True:
        return OneEuroConfig()
    if value is False or value is None:
        return None
    if isinstance(value, OneEuroConfig):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(
            "TrackerConfig.smoothing must be true, false, null or a mapping of min_cutoff, beta, d_cutoff; got "
            f"{value!r}"
        )
    known = [f.name for f in fields(OneEuroConfig)]
    unknown = [k for k in value if k not in known]
    if unknown:
        raise ValueError(f"unknown TrackerConfig.smoothing field {unknown[0]!r}; the fields are {', '.join(known)}")
    bad = next((k for k, v in value.items() if not (_is_number(v) and math.isfinite(v))), None)
    if bad is not None:
        raise ValueError(f"TrackerConfig.smoothing.{bad} must be a finite number, got {value[bad]!r}")
    return OneEuroConfig(**value)


def load_config(config: TrackerConfig | Mapping[str, Any] | str | os.PathLike | None) -> TrackerConfig:
    """PoseTracker's `config` argument as a TrackerConfig: None (the defaults), a TrackerConfig, a
    dict of its fields, or a YAML file's path."""
    if config is None:
        return TrackerConfig()
    if isinstance(config, TrackerConfig):
        return config
    if isinstance(config, Mapping):
        return TrackerConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return TrackerConfig.from_yaml(config)
    raise TypeError(
        f"config must be a TrackerConfig, a dict of its fields or a YAML file's path, got {type(config).__name__}"
    )
