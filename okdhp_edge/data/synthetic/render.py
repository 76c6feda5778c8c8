"""Render scenes of posed figures over clutter, with keypoints whose visibility is measured.

Every pixel drawn records its owner (person and body part, or an occluding object) in an id
map, so a keypoint's visibility flag is read off the final picture instead of being guessed:
v=2 when the keypoint's own body part is on top at that pixel (and, for face points, the
point faces the camera), v=1 when something else covers it, v=0 when it falls outside the
image (coordinates then zeroed, as in COCO).
"""

from __future__ import annotations

import colorsys
import functools
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from ...skeleton import COCO17, MPII16
from .figure import Figure, P, build_figure, sample_pose, sample_proportions, view_rotation

__all__ = ["SceneConfig", "PersonAnnotation", "render_scene", "COCO_POINTS", "MPII_POINTS"]

# The keypoints each rendered person is labelled with, in the skeletons' own order.
COCO_POINTS = COCO17.keypoints
MPII_POINTS = MPII16.keypoints

# Body parts: owner-map id = person * 32 + part + 1; 255 marks occluding objects.
PARTS = (
    "torso",
    "neck",
    "head",
    "l_upper_arm",
    "l_forearm",
    "l_hand",
    "r_upper_arm",
    "r_forearm",
    "r_hand",
    "l_thigh",
    "l_shin",
    "l_foot",
    "r_thigh",
    "r_shin",
    "r_foot",
)
PART = {name: i for i, name in enumerate(PARTS)}
OCCLUDER_ID = 255
MAX_PEOPLE = 7

# Which parts may legitimately be on top of each keypoint for it to count as visible.
_OWNERS = {
    "nose": ("head",),
    "left_eye": ("head",),
    "right_eye": ("head",),
    "left_ear": ("head",),
    "right_ear": ("head",),
    "head_top": ("head",),
    "upper_neck": ("neck", "head"),
    "thorax": ("torso", "neck"),
    "pelvis": ("torso",),
    "left_shoulder": ("l_upper_arm",),
    "right_shoulder": ("r_upper_arm",),
    "left_elbow": ("l_upper_arm", "l_forearm"),
    "right_elbow": ("r_upper_arm", "r_forearm"),
    "left_wrist": ("l_forearm", "l_hand"),
    "right_wrist": ("r_forearm", "r_hand"),
    "left_hip": ("l_thigh",),
    "right_hip": ("r_thigh",),
    "left_knee": ("l_thigh", "l_shin"),
    "right_knee": ("r_thigh", "r_shin"),
    "left_ankle": ("l_shin", "l_foot"),
    "right_ankle": ("r_shin", "r_foot"),
}
# Face points are visible only when turned towards the camera (z of their surface normal).
_FACING = {"nose": -0.05, "left_eye": 0.15, "right_eye": 0.15, "left_ear": -0.25, "right_ear": -0.25}

_SKIN = np.array(
    [[60, 80, 120], [80, 110, 160], [110, 140, 190], [140, 170, 215], [170, 195, 230], [45, 60, 90]], np.float64
)


@dataclass
class SceneConfig:
    """Difficulty knobs of the generator; the defaults are the data set the project trains on."""

    min_size: int = 224  # image width and height are drawn from [min_size, max_size]
    max_size: int = 320
    people_weights: tuple[float, ...] = (0.45, 0.35, 0.2)  # P(1 person), P(2), P(3), ...
    height_range: tuple[float, float] = (0.45, 0.95)  # standing height / image height, one person
    crowd_shrink: float = 0.8  # height range multiplier per extra person
    front_prob: float = 0.6  # share of people turned roughly towards the camera
    roll_std: float = 12.0  # in-plane body tilt, degrees
    big_roll_prob: float = 0.05  # share of people lying / tumbling at any angle
    truncation_prob: float = 0.15  # share of people pushed partly out of the frame
    occluder_prob: float = 0.3  # per person: an object drawn over one of their joints
    clutter: tuple[int, int] = (10, 40)  # background shapes per image
    distractors: tuple[int, int] = (0, 5)  # limb- and head-like shapes in the background
    texture_prob: float = 0.6  # garments with stripes / checks / noise instead of plain colour
    noise_std: float = 5.0  # pixel grain
    blur_prob: float = 0.25
    jpeg_prob: float = 0.0  # share of images re-encoded as JPEG at quality 20-80, as compressed video looks
    backgrounds: tuple[
        str, ...
    ] = ()  # photos without people: each scene is drawn on a random crop of one (no clutter shapes)

    def __post_init__(self) -> None:
        if not 16 <= self.min_size <= self.max_size:
            raise ValueError(f"SceneConfig: need 16 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        if (
            not 1 <= len(self.people_weights) <= MAX_PEOPLE
            or min(self.people_weights) < 0
            or sum(self.people_weights) <= 0
        ):
            raise ValueError(f"SceneConfig.people_weights must hold 1..{MAX_PEOPLE} non-negative weights")

    @classmethod
    def with_knobs(cls, knobs: Mapping[str, Any], backgrounds: str | os.PathLike | None = None) -> SceneConfig:
        """The defaults with `knobs` (`knob_values`), drawn on the photos in `backgrounds`."""
        return cls(**knob_values(cls, knobs), backgrounds=background_photos(backgrounds) if backgrounds else ())


@dataclass
class PersonAnnotation:
    """One rendered person: COCO-17 and MPII-16 keypoints (x, y, v), boxes and MPII extras."""

    keypoints: np.ndarray  # (17, 3)
    mpii_joints: np.ndarray  # (16, 3)
    bbox: list[float]  # COCO xywh of the silhouette (covers parts later hidden by others)
    area: float  # silhouette pixel count
    head_box: list[float]  # x1, y1, x2, y2
    info: dict = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        return int((self.keypoints[:, 2] > 0).sum())


def _random_color(rng: np.random.Generator, sat=(40, 255), val=(40, 255)) -> tuple[float, float, float]:
    """A BGR colour from a random hue and the given saturation / value ranges (0-255)."""
    h, s, v = rng.random(), rng.integers(*sat) / 255.0, float(rng.integers(*val))
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (b, g, r)


@functools.lru_cache(maxsize=4)
def _grain_tiles(std: float) -> tuple[np.ndarray, np.ndarray]:
    """A fixed 512x512 tile of Gaussian grain (seeded, so output stays deterministic), split by sign."""
    g = np.random.default_rng(20210802).normal(0.0, std, (512, 512, 3))
    return np.clip(g, 0, 255).astype(np.uint8), np.clip(-g, 0, 255).astype(np.uint8)


def _add_grain(img: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """Add grain from a random window of the tile with saturating uint8 ops (no float pass)."""
    pos, neg = _grain_tiles(float(std))
    h, w = img.shape[:2]
    reps = (-(-h // 512), -(-w // 512), 1)
    if reps != (1, 1, 1):
        pos, neg = np.tile(pos, reps), np.tile(neg, reps)
    y, x = int(rng.integers(0, pos.shape[0] - h + 1)), int(rng.integers(0, pos.shape[1] - w + 1))
    return cv2.subtract(cv2.add(img, pos[y : y + h, x : x + w]), neg[y : y + h, x : x + w])


def _shade(color, factor: float, add: float = 0.0) -> tuple[float, float, float]:
    b, g, r = color
    return (
        min(max(b * factor + add, 0.0), 255.0),
        min(max(g * factor + add, 0.0), 255.0),
        min(max(r * factor + add, 0.0), 255.0),
    )


def _pt(p: np.ndarray) -> tuple[int, int]:
    """Fixed-point (shift=4) pixel coordinates for cv2's sub-pixel drawing."""
    return math.floor(float(p[0]) * 16 + 0.5), math.floor(float(p[1]) * 16 + 0.5)


def _capsule(img, owner, p, q, t, color, oid, light) -> None:
    """A limb: dark rim, mid tone and highlight offset towards the light, like a lit cylinder."""
    t = max(int(round(t)), 2)
    px, py, qx, qy = float(p[0]), float(p[1]), float(q[0]), float(q[1])
    dx, dy = qx - px, qy - py
    norm = math.hypot(dx, dy) + 1e-6
    nx, ny = -dy / norm, dx / norm
    sign = 1.0 if nx * light[0] + ny * light[1] >= 0 else -1.0
    ox, oy = nx * t * 0.14 * sign, ny * t * 0.14 * sign
    f = 16.0  # cv2 fixed point, shift=4

    def pts(k: float):
        return (
            (round((px + k * ox) * f), round((py + k * oy) * f)),
            (round((qx + k * ox) * f), round((qy + k * oy) * f)),
        )

    cv2.line(img, *pts(0), _shade(color, 0.55), t, cv2.LINE_AA, 4)
    cv2.line(img, *pts(1), _shade(color, 1.0), max(int(t * 0.62), 1), cv2.LINE_AA, 4)
    cv2.line(img, *pts(2), _shade(color, 1.3, 20), max(int(t * 0.25), 1), cv2.LINE_AA, 4)
    cv2.line(owner, *pts(0), oid, t, cv2.LINE_8, 4)


def _disc(img, owner, c, r, color, oid, light) -> None:
    r = max(r, 1.0)
    cv2.circle(img, _pt(c), int(round(r * 16)), _shade(color, 0.55), -1, cv2.LINE_AA, 4)
    cv2.circle(img, _pt(c + light * r * 0.18), int(round(r * 0.8 * 16)), _shade(color, 1.0), -1, cv2.LINE_AA, 4)
    cv2.circle(img, _pt(c + light * r * 0.4), int(round(r * 0.3 * 16)), _shade(color, 1.25, 15), -1, cv2.LINE_AA, 4)
    if owner is not None:
        cv2.circle(owner, _pt(c), int(round(r * 16)), oid, -1, cv2.LINE_8, 4)


def _texture(rng: np.random.Generator, shape: tuple[int, int], origin: tuple[int, int]) -> np.ndarray | None:
    """Multiplicative garment pattern over an ROI (stripes, checks or blotches), or None for plain."""
    h, w = shape
    kind = rng.integers(0, 3)
    ys = np.arange(origin[1], origin[1] + h, dtype=np.float32)[:, None]
    xs = np.arange(origin[0], origin[0] + w, dtype=np.float32)[None, :]
    period = float(rng.uniform(4, 12))
    if kind == 0:
        a = rng.uniform(0, math.pi)
        band = (np.floor((xs * math.cos(a) + ys * math.sin(a)) / period) % 2) == 0
    elif kind == 1:
        band = ((np.floor(xs / period) + np.floor(ys / period)) % 2) == 0
    else:
        small = rng.random((max(h // 6, 2), max(w // 6, 2))).astype(np.float32)
        return 0.7 + 0.6 * cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    dark = float(rng.uniform(0.45, 0.8))
    return np.where(band, np.float32(1.0), np.float32(dark))


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def background_photos(folder: str | os.PathLike) -> tuple[str, ...]:
    """The image files of `folder` (sorted absolute paths), for SceneConfig.backgrounds."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"backgrounds {root}: not a folder; pass a folder of photos without people")
    photos = tuple(str(p.resolve()) for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise ValueError(f"backgrounds {root}: no {'/'.join(IMAGE_SUFFIXES)} images in it")
    readable = tuple(p for p in photos if cv2.imread(p, cv2.IMREAD_REDUCED_COLOR_8) is not None)
    if not readable:
        raise ValueError(f"backgrounds {root}: no photo in it can be read; add JPEG or PNG photos without people")
    return readable


def knob_values(config: type, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """`knobs` (field name -> value, from a config file or the command line) checked against the
    dataclass `config`'s fields, lists made tuples of the field's element type; ValueError names an
    unknown knob and the valid ones. `backgrounds` is not a knob: it is a folder, read apart."""
    defaults = config()
    known = {f.name for f in fields(config)} - {"backgrounds"}
    unknown = sorted(set(knobs) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    values = {}
    for name, value in knobs.items():
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{name} takes a list of values like {list(default)}, got {value!r}")
            value = tuple(type(default[0])(v) for v in value)
        values[name] = value
    return values


@functools.lru_cache(maxsize=16)
def _photo(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"SceneConfig.backgrounds: cannot read {path} as an image")
    return image


def _photo_background(rng: np.random.Generator, w: int, h: int, paths: tuple[str, ...]) -> np.ndarray:
    """A random crop (35-100 % of the photo's fitting size, the scene's aspect), maybe mirrored."""
    photo = _photo(paths[int(rng.integers(len(paths)))])
    ph, pw = photo.shape[:2]
    scale = min(pw / w, ph / h) * rng.uniform(0.35, 1.0)
    cw, ch = min(max(int(w * scale), 1), pw), min(max(int(h * scale), 1), ph)
    x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    crop = cv2.resize(photo[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop[:, ::-1]) if rng.random() < 0.5 else crop


def _background(rng: np.random.Generator, w: int, h: int, cfg: SceneConfig, light: np.ndarray) -> np.ndarray:
    if cfg.backgrounds:
        return _distractors(_photo_background(rng, w, h, cfg.backgrounds), rng, cfg, light)
    # A colour ramp with soft blotches, built on a 6x6 grid and upsampled (bilinear keeps the ramp exact).
    c1, c2 = np.array(_random_color(rng, val=(30, 230))), np.array(_random_color(rng, val=(30, 230)))
    t = np.linspace(0.0, 1.0, 6, dtype=np.float32)
    ramp = c1[None, :] * (1 - t[:, None]) + c2[None, :] * t[:, None]
    grid = (ramp[:, None, :] if rng.random() < 0.5 else ramp[None, :, :]) + rng.normal(0, 18, (6, 6, 3))
    img = cv2.resize(np.clip(grid, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1))):
        color = _random_color(rng)
        kind = rng.integers(0, 5)
        x, y = int(rng.integers(-20, w + 20)), int(rng.integers(-20, h + 20))
        s = int(rng.integers(4, max(w, h) // 3))
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + s, y + int(rng.integers(4, s + 5))), color, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), s // 2, color, -1, cv2.LINE_AA)
        elif kind == 2:
            cv2.line(
                img,
                (x, y),
                (x + int(rng.integers(-s, s)), y + int(rng.integers(-s, s))),
                color,
                int(rng.integers(1, 7)),
                cv2.LINE_AA,
            )
        elif kind == 3:
            pts = np.stack([rng.integers(x - s, x + s, 4), rng.integers(y - s, y + s, 4)], 1).astype(np.int32)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
        else:
            cv2.ellipse(
                img, (x, y), (s // 2, max(s // 5, 2)), float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA
            )
    return _distractors(img, rng, cfg, light)


def _distractors(img: np.ndarray, rng: np.random.Generator, cfg: SceneConfig, light: np.ndarray) -> np.ndarray:
    """Limb- and head-like shapes that belong to nobody, so the network learns what a person is."""
    h, w = img.shape[:2]
    scratch = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1))):
        color = tuple(_SKIN[rng.integers(len(_SKIN))]) if rng.random() < 0.5 else _random_color(rng)
        p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        if rng.random() < 0.7:
            q = p + rng.normal(0, max(w, h) / 8, 2)
            _capsule(img, scratch, p, q, rng.uniform(4, 14), color, 1, light)
        else:
            _disc(img, None, p, rng.uniform(5, 16), color, 1, light)
    return img


@dataclass
class _Person:
    fig: Figure
    xy: np.ndarray  # (len(POINTS), 2) image pixels
    z: np.ndarray  # (len(POINTS),) depth, larger = nearer the camera
    scale: float
    colors: dict
    info: dict


def _sample_person(rng: np.random.Generator, cfg: SceneConfig, w: int, h: int, slot: int, n: int) -> _Person:
    props = sample_proportions(rng)
    pose = sample_pose(rng)
    yaw = rng.uniform(-70, 70) if rng.random() < cfg.front_prob else rng.uniform(-180, 180)
    roll = rng.uniform(-180, 180) if rng.random() < cfg.big_roll_prob else rng.normal(0, cfg.roll_std)
    fig = build_figure(props, pose).transformed(view_rotation(yaw, roll, rng.uniform(-10, 10)))
    lo, hi = cfg.height_range
    shrink = cfg.crowd_shrink ** (n - 1)
    scale = rng.uniform(lo * shrink, hi * shrink) * h
    xy = fig.points[:, :2] * scale
    pad = props.leg_t * scale
    x0, y0 = xy.min(0) - pad
    x1, y1 = xy.max(0) + pad
    cx = (slot + 0.5) / n * w + rng.normal(0, 0.1 * w)
    cy = h / 2 + rng.normal(0, 0.08 * h)
    bw, bh = x1 - x0, y1 - y0
    # Keep the figure inside the frame unless this one is meant to be truncated.
    if rng.random() < cfg.truncation_prob:
        side = rng.integers(0, 4)
        cut = rng.uniform(0.15, 0.45)
        cx = [bw * (0.5 - cut), w - bw * (0.5 - cut)][side % 2] if side < 2 else cx
        cy = [bh * (0.5 - cut), h - bh * (0.5 - cut)][side % 2] if side >= 2 else cy
        truncated = True
    else:
        cx = float(np.clip(cx, min(bw / 2, w / 2), max(w - bw / 2, w / 2)))
        cy = float(np.clip(cy, min(bh / 2, h / 2), max(h - bh / 2, h / 2)))
        truncated = False
    xy = xy + np.array([cx - (x0 + x1) / 2, cy - (y0 + y1) / 2])
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.85, 1.15, 3)
    colors = {
        "skin": tuple(float(c) for c in np.clip(skin, 0, 255)),
        "shirt": _random_color(rng),
        "pants": _random_color(rng, val=(30, 200)),
        "shoes": _random_color(rng, val=(10, 120)),
        "hair": _random_color(rng, sat=(20, 200), val=(10, 110)),
        "long_sleeves": bool(rng.random() < 0.6),
        "long_pants": bool(rng.random() < 0.75),
    }
    info = {"family": pose["family"], "yaw": float(yaw), "roll": float(roll), "truncated": truncated}
    return _Person(fig, xy, fig.points[:, 2] * scale, float(scale), colors, info)


def _draw_person(
    img, owner, person: _Person, index: int, light: np.ndarray, rng: np.random.Generator, cfg: SceneConfig
):
    """Draw parts back to front; returns the person's silhouette mask ROI (y0, x0, mask)."""
    xy, z, s, pr, col = person.xy, person.z, person.scale, person.fig.props, person.colors
    base = index * 32 + 1
    sleeve = col["shirt"] if col["long_sleeves"] else col["skin"]
    leg = col["pants"] if col["long_pants"] else col["skin"]
    torso_pts = [P["left_shoulder"], P["right_shoulder"], P["right_hip"], P["left_hip"]]
    items = [
        (float(z[torso_pts].mean()) - 1e-3 * s, "torso"),
        (float(z[[P["upper_neck"], P["thorax"]]].mean()) - 2e-3 * s, "neck"),
        (float(z[P["head_center"]]), "head"),
    ]
    for side, name in (("l", "left"), ("r", "right")):
        items += [
            (float(z[[P[f"{name}_shoulder"], P[f"{name}_elbow"]]].mean()), f"{side}_upper_arm"),
            (float(z[[P[f"{name}_elbow"], P[f"{name}_wrist"]]].mean()), f"{side}_forearm"),
            (float(z[P[f"{name}_hand"]]), f"{side}_hand"),
            (float(z[[P[f"{name}_hip"], P[f"{name}_knee"]]].mean()), f"{side}_thigh"),
            (float(z[[P[f"{name}_knee"], P[f"{name}_ankle"]]].mean()), f"{side}_shin"),
            (float(z[[P[f"{name}_ankle"], P[f"{name}_toe"]]].mean()), f"{side}_foot"),
        ]
    items.sort(key=lambda it: it[0])
    for _, part in items:
        oid = base + PART[part]
        side = "left" if part.startswith("l_") else "right"
        if part == "torso":
            poly = np.array([_pt(xy[i]) for i in torso_pts], np.int32)
            dark = _shade(col["shirt"], 0.7)
            cv2.fillPoly(img, [poly], dark, cv2.LINE_AA, 4)
            cv2.fillPoly(owner, [poly], oid, cv2.LINE_8, 4)
            width = max(pr.torso_depth, pr.hip_w * 0.8) * s
            _capsule(img, owner, xy[P["thorax"]], xy[P["pelvis"]], width, col["shirt"], oid, light)
            for a, b in ((0, 1), (1, 2), (2, 3), (3, 0)):
                _capsule(img, owner, xy[torso_pts[a]], xy[torso_pts[b]], pr.arm_t * s, col["shirt"], oid, light)
        elif part == "neck":
            _capsule(img, owner, xy[P["upper_neck"]], xy[P["thorax"]], pr.arm_t * 0.9 * s, col["skin"], oid, light)
        elif part == "head":
            _draw_head(img, owner, person, oid, light)
        elif part.endswith("upper_arm"):
            _capsule(
                img, owner, xy[P[f"{side}_shoulder"]], xy[P[f"{side}_elbow"]], pr.arm_t * s, col["shirt"], oid, light
            )
        elif part.endswith("forearm"):
            _capsule(
                img, owner, xy[P[f"{side}_elbow"]], xy[P[f"{side}_wrist"]], pr.arm_t * 0.85 * s, sleeve, oid, light
            )
        elif part.endswith("hand"):
            _disc(img, owner, xy[P[f"{side}_hand"]], pr.arm_t * 0.6 * s, col["skin"], oid, light)
        elif part.endswith("thigh"):
            _capsule(img, owner, xy[P[f"{side}_hip"]], xy[P[f"{side}_knee"]], pr.leg_t * s, col["pants"], oid, light)
        elif part.endswith("shin"):
            _capsule(img, owner, xy[P[f"{side}_knee"]], xy[P[f"{side}_ankle"]], pr.leg_t * 0.8 * s, leg, oid, light)
        else:
            _capsule(
                img, owner, xy[P[f"{side}_ankle"]], xy[P[f"{side}_toe"]], pr.leg_t * 0.6 * s, col["shoes"], oid, light
            )
    h, w = owner.shape
    pad = int(pr.leg_t * s) + 4
    x0, y0 = (np.floor(xy.min(0)) - pad).astype(int).clip(0, [w, h])
    x1, y1 = (np.ceil(xy.max(0)) + pad + 1).astype(int).clip(0, [w, h])
    roi = owner[y0:y1, x0:x1]
    mine = (roi >= base) & (roi < base + len(PARTS))
    # Garment patterns, applied to whatever of each garment ended up on top.
    for garment, parts in (("shirt", ("torso", "l_upper_arm", "r_upper_arm")), ("pants", ("l_thigh", "r_thigh"))):
        if rng.random() >= cfg.texture_prob or roi.size == 0:
            continue
        ids = [base + PART[p] for p in parts]
        if garment == "shirt" and col["long_sleeves"]:
            ids += [base + PART["l_forearm"], base + PART["r_forearm"]]
        if garment == "pants" and col["long_pants"]:
            ids += [base + PART["l_shin"], base + PART["r_shin"]]
        mask = np.isin(roi, ids)
        if mask.any():
            tex = _texture(rng, roi.shape, (int(x0), int(y0)))
            sub = img[y0:y1, x0:x1]
            sub[mask] = np.clip(sub[mask] * tex[mask][:, None], 0, 255).astype(np.uint8)
    if person.fig.chest[2] > 0.25:  # a collar marks the front of the torso
        th, pe = xy[P["thorax"]], xy[P["pelvis"]]
        sh = (xy[P["left_shoulder"]] - xy[P["right_shoulder"]]) * 0.22
        tip = th + (pe - th) * 0.22
        cv2.polylines(
            img,
            [np.array([_pt(th + sh), _pt(tip), _pt(th - sh)], np.int32)],
            False,
            _shade(col["shirt"], 0.35),
            max(int(pr.arm_t * s * 0.2), 1),
            cv2.LINE_AA,
            4,
        )
    return int(y0), int(x0), mine


def _draw_head(img, owner, person: _Person, oid: int, light: np.ndarray) -> None:
    """Hair-coloured skull, a face disc shifted towards where the head points, eyes, nose, ears."""
    xy, s, pr, col, fig = person.xy, person.scale, person.fig.props, person.colors, person.fig
    c, r = xy[P["head_center"]], pr.head_r * s
    _disc(img, owner, c, r, col["hair"], oid, light)
    fwd = fig.forward
    if fwd[2] > -0.35:
        face_c = c + fwd[:2] * r * 0.32 + (xy[P["upper_neck"]] - c) * 0.08
        _disc(img, owner, face_c, r * 0.8, col["skin"], oid, light)
    center3 = fig.points[P["head_center"]]
    for name in ("left_ear", "right_ear"):
        if (fig.points[P[name]] - center3)[2] / pr.head_r > _FACING[name]:
            _disc(img, owner, xy[P[name]], r * 0.2, _shade(col["skin"], 0.9), oid, light)
    for name in ("left_eye", "right_eye"):
        if (fig.points[P[name]] - center3)[2] / pr.head_r > _FACING[name]:
            cv2.circle(img, _pt(xy[P[name]]), int(r * 0.17 * 16) + 8, (235, 235, 235), -1, cv2.LINE_AA, 4)
            cv2.circle(
                img, _pt(xy[P[name]] + fwd[:2] * r * 0.05), int(r * 0.09 * 16) + 8, (25, 20, 20), -1, cv2.LINE_AA, 4
            )
    if (fig.points[P["nose"]] - center3)[2] / pr.head_r > _FACING["nose"]:
        _disc(img, owner, xy[P["nose"]], r * 0.13, _shade(col["skin"], 0.8), oid, light)


def _draw_occluder(img, owner, rng: np.random.Generator, person: _Person, light: np.ndarray) -> None:
    """A box, ball or pole over one of the person's joints."""
    target = person.xy[rng.integers(0, 17)]
    size = person.scale * rng.uniform(0.1, 0.3)
    color = _random_color(rng)
    center = target + rng.normal(0, size * 0.3, 2)
    kind = rng.integers(0, 3)
    if kind == 0:
        ang = rng.uniform(0, 180)
        box = cv2.boxPoints(
            ((float(center[0]), float(center[1])), (float(size), float(size * rng.uniform(0.5, 1.5))), float(ang))
        )
        poly = (box * 16).round().astype(np.int32)
        cv2.fillPoly(img, [poly], color, cv2.LINE_AA, 4)
        cv2.fillPoly(owner, [poly], OCCLUDER_ID, cv2.LINE_8, 4)
    elif kind == 1:
        _disc(img, owner, center, size / 2, color, OCCLUDER_ID, light)
    else:
        d = rng.normal(0, 1, 2)
        d = d / (np.linalg.norm(d) + 1e-6) * person.scale * rng.uniform(0.3, 0.8)
        _capsule(img, owner, center - d, center + d, size * 0.35, color, OCCLUDER_ID, light)


def _keypoints(person: _Person, index: int, owner: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    h, w = owner.shape
    fig, base = person.fig, index * 32 + 1
    center3 = fig.points[P["head_center"]]
    out = np.zeros((len(names), 3), np.float32)
    for k, name in enumerate(names):
        x, y = person.xy[P[name]]
        if not (-0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5):
            continue
        probe = person.xy[P[name]]
        if name == "head_top":  # the top sits on the outline: probe just inside
            probe = probe + (person.xy[P["head_center"]] - probe) * 0.15
        px = min(max(math.floor(probe[0] + 0.5), 0), w - 1)
        py = min(max(math.floor(probe[1] + 0.5), 0), h - 1)
        on_top = int(owner[py, px]) in {base + PART[p] for p in _OWNERS[name]}
        facing = name not in _FACING or (fig.points[P[name]] - center3)[2] / fig.props.head_r > _FACING[name]
        out[k] = (x, y, 2.0 if (on_top and facing) else 1.0)
    return out


def render_scene(
    rng: np.random.Generator,
    config: SceneConfig | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, list[PersonAnnotation]]:
    """One image (BGR uint8) with 1..N people and their annotations.

    `size` is (width, height); by default both are drawn from the config's range. People with no
    keypoint inside the frame are drawn but not annotated (as in COCO, they are not labelled).
    """
    cfg = config or SceneConfig()
    if size is None:
        w, h = (int(v) for v in rng.integers(cfg.min_size, cfg.max_size + 1, 2))
    else:
        w, h = int(size[0]), int(size[1])
    ang = rng.uniform(0, 2 * math.pi)
    light = np.array([math.cos(ang), math.sin(ang)])
    img = _background(rng, w, h, cfg, light)
    owner = np.zeros((h, w), np.uint8)
    weights = np.asarray(cfg.people_weights, np.float64)
    n = int(rng.choice(len(weights), p=weights / weights.sum())) + 1
    slots = rng.permutation(n)
    people = [_sample_person(rng, cfg, w, h, int(slots[i]), n) for i in range(n)]
    silhouettes = []
    for i, person in enumerate(people):
        silhouettes.append(_draw_person(img, owner, person, i, light, rng, cfg))
        if rng.random() < cfg.occluder_prob:
            _draw_occluder(img, owner, rng, person, light)
    if cfg.noise_std > 0:
        img = _add_grain(img, rng, cfg.noise_std)
    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.3)))
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:  # no draw at 0: older data sets stay the same
        _, encoded = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 81))])
        img = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    annotations = []
    for i, (person, (y0, x0, mine)) in enumerate(zip(people, silhouettes)):
        kps = _keypoints(person, i, owner, COCO_POINTS)
        if not (kps[:, 2] > 0).any() or not mine.any():
            continue
        ys, xs = np.nonzero(mine)
        bx0, by0 = float(xs.min() + x0) - 0.5, float(ys.min() + y0) - 0.5
        bx1, by1 = float(xs.max() + x0) + 0.5, float(ys.max() + y0) + 0.5
        c, r = person.xy[P["head_center"]], person.fig.props.head_r * person.scale
        annotations.append(
            PersonAnnotation(
                keypoints=kps,
                mpii_joints=_keypoints(person, i, owner, MPII_POINTS),
                bbox=[bx0, by0, bx1 - bx0, by1 - by0],
                area=float(mine.sum()),
                head_box=[float(c[0] - r), float(c[1] - r), float(c[0] + r), float(c[1] + r)],
                info=person.info,
            )
        )
    return img, annotations
