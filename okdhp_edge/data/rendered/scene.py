"""Scenes of rendered people over photos, with COCO-17 / MPII-16 labels read off the depth order.

A keypoint is labelled when it projects inside the image; outside it gets v=0 with its projected
place, which data/coco.py reads as absent (training may teach it: data.absent_weight);
it is visible (v=2) when, at its pixel, the surface nearest the camera belongs to the same person
and lies at most a joint-dependent depth in front of the point (a limb's own skin, not the torso
or another person in front of it); otherwise v=1.
"""

from __future__ import annotations

import colorsys
import functools
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from ...skeleton import COCO17, MPII16
from ..synthetic import PersonAnnotation, background_photos
from ..synthetic.render import knob_values
from .assets import BONE, PARTS, load_body_model
from .body import Rig, rot_xyz, sample_pose, sample_shape
from .raster import draw_faces, face_normals, interpolate_vertex_values, project, vertex_normals

__all__ = ["PersonSpec", "RenderConfig", "render_scene", "rig"]

MAX_PEOPLE = 6
# How far (metres) the visible surface may lie in front of a keypoint: about the flesh over that joint.
_DEPTH_SLACK = {
    "nose": 0.04,
    "left_eye": 0.04,
    "right_eye": 0.04,
    "left_ear": 0.05,
    "right_ear": 0.05,
    "left_shoulder": 0.1,
    "right_shoulder": 0.1,
    "left_elbow": 0.07,
    "right_elbow": 0.07,
    "left_wrist": 0.06,
    "right_wrist": 0.06,
    "left_hip": 0.14,
    "right_hip": 0.14,
    "left_knee": 0.09,
    "right_knee": 0.09,
    "left_ankle": 0.07,
    "right_ankle": 0.07,
    "pelvis": 0.16,
    "thorax": 0.14,
    "upper_neck": 0.08,
    "head_top": 0.04,
}
_SKIN = np.array([[45, 60, 90], [60, 85, 125], [85, 115, 160], [110, 145, 195], [140, 175, 220], [170, 200, 235]])
_HEAD, _NECK, _TORSO, _HIPS = (PARTS.index(p) for p in ("head", "neck", "torso", "hips"))
_UPPER_ARM, _FOREARM, _HAND = (PARTS.index(p) for p in ("upper_arm", "forearm", "hand"))
_THIGH, _SHIN, _FOOT = (PARTS.index(p) for p in ("thigh", "shin", "foot"))


@dataclass
class RenderConfig:
    """Knobs of the rendered-people generator; the defaults are the set `--data rendered` trains on."""

    min_size: int = 224  # image width and height are drawn from [min_size, max_size]
    max_size: int = 320
    people_weights: tuple[float, ...] = (0.55, 0.25, 0.12, 0.08)  # P(1 person), P(2), ...
    portrait_prob: float = 0.35  # share of images showing one person's head and upper body close up
    height_range: tuple[float, float] = (0.35, 0.95)  # full-body height / image height, one person
    crowd_shrink: float = 0.8  # height range multiplier per extra person
    front_prob: float = 0.5  # share of people turned roughly towards the camera
    truncation_prob: float = 0.2  # share of full-body people pushed partly out of the frame
    texture_prob: float = 0.5  # garments with stripes / checks / noise instead of plain colour
    noise_std: float = 4.0
    blur_prob: float = 0.3
    jpeg_prob: float = 0.3  # share re-encoded at JPEG quality 20-80, as compressed video looks
    # light interpolated across each face from its corners (Gouraud) with even albedo per garment;
    # False: one shade and a +-8 % albedo jitter per face, a faceted low-poly look (the shipped
    # students' recipe; docs/data.md: what each does for students on real scenes)
    smooth_shading: bool = True
    backgrounds: tuple[str, ...] = ()  # photos without people; empty: procedural backgrounds

    def __post_init__(self) -> None:
        if not 16 <= self.min_size <= self.max_size:
            raise ValueError(f"RenderConfig: need 16 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        w = self.people_weights
        if not 1 <= len(w) <= MAX_PEOPLE or min(w) < 0 or sum(w) <= 0:
            raise ValueError(f"RenderConfig.people_weights must hold 1..{MAX_PEOPLE} non-negative weights")

    @classmethod
    def with_knobs(cls, knobs: Mapping[str, Any], backgrounds: str | os.PathLike | None = None) -> RenderConfig:
        """The defaults with `knobs` (`knob_values`), drawn on the photos in `backgrounds`."""
        return cls(**knob_values(cls, knobs), backgrounds=background_photos(backgrounds) if backgrounds else ())


@functools.lru_cache(maxsize=1)
def rig() -> Rig:
    """The posable body model of this process (extracted from the wheel on first use)."""
    return Rig(load_body_model())


@functools.lru_cache(maxsize=16)
def _photo(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"backgrounds: cannot read {path} as an image; remove it from the folder")
    return image


def _random_color(rng: np.random.Generator, sat=(0.1, 0.9), val=(40, 240), hue=(0.0, 1.0)) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*hue), rng.uniform(*sat), rng.uniform(*val))
    return np.array([b, g, r])


def _background(rng: np.random.Generator, w: int, h: int, cfg: RenderConfig) -> np.ndarray:
    if cfg.backgrounds:
        photo = _photo(cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))])
        ph, pw = photo.shape[:2]
        scale = min(pw / w, ph / h) * rng.uniform(0.4, 1.0)
        cw, ch = min(max(int(w * scale), 1), pw), min(max(int(h * scale), 1), ph)
        x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        crop = cv2.resize(photo[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(crop[:, ::-1]) if rng.random() < 0.5 else crop
    # A room-like backdrop: a lit wall ramp, a floor band, and furniture-like boxes and poles.
    t = np.linspace(0, 1, 8)[:, None]
    ramp = _random_color(rng)[None] * (1 - t) + _random_color(rng)[None] * t
    img = cv2.resize(np.clip(ramp[:, None, :] + rng.normal(0, 12, (8, 8, 3)), 0, 255).astype(np.uint8), (w, h))
    floor = int(h * rng.uniform(0.55, 0.9))
    img[floor:] = np.clip(img[floor:] * rng.uniform(0.4, 0.9) + _random_color(rng) * 0.3, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 14))):
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        x1, y1 = x0 + int(rng.integers(4, w // 2)), y0 + int(rng.integers(4, h // 2))
        cv2.rectangle(img, (x0, y0), (x1, y1), _random_color(rng).tolist(), -1)
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.5))


@dataclass
class _Person:
    verts: np.ndarray  # (V, 3) camera frame
    uv: np.ndarray  # (V, 2)
    kp_cam: np.ndarray  # (N, 3) COCO-17 then MPII-only points, camera frame
    kp_uv: np.ndarray  # (N, 2)
    colors: np.ndarray  # (F, 3) albedo per face
    garment: np.ndarray  # (F,) 0 skin/hair/shoes, 1 top, 2 bottom
    info: dict


_COCO = list(COCO17.keypoints)
_EXTRA = ("pelvis", "thorax", "upper_neck", "head_top")
_POINT = {name: i for i, name in enumerate(_COCO + list(_EXTRA))}


def _outfit(rng: np.random.Generator, r: Rig, jitter: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per-face albedo (BGR) and garment index: skin, hair, a top, trousers/shorts/skirt, shoes.

    Regions (waist, hairline) are cut on the neutral body, so they land on the same anatomy for
    every shape."""
    m = r.m
    part = m.face_part
    centre = m.vertices[m.faces].mean(1)
    skin = _SKIN[int(rng.integers(len(_SKIN)))] * rng.uniform(0.85, 1.12, 3)
    top, bottom = _random_color(rng), _random_color(rng, val=(25, 200))
    shoes = _random_color(rng, val=(10, 110))
    hair = _random_color(rng, sat=(0.1, 0.7), val=(10, 170), hue=(0.02, 0.13))  # black, browns, blond, red
    sleeves = rng.choice(["none", "short", "long"], p=[0.15, 0.4, 0.45])
    legs = rng.choice(["shorts", "skirt", "long"], p=[0.2, 0.15, 0.65])
    hip_y = float(m.joints[BONE["upperleg01.L"], 1])
    knee_y = float(m.joints[BONE["lowerleg01.L"], 1])
    waist = hip_y + rng.uniform(0.06, 0.16)
    colors = np.tile(skin, (len(part), 1))
    garment = np.zeros(len(part), np.int8)
    is_top = np.isin(part, [_TORSO, _HIPS]) & (centre[:, 1] >= waist)
    if sleeves != "none":
        is_top |= part == _UPPER_ARM
    if sleeves == "long":
        is_top |= part == _FOREARM
    bottom_end = {"shorts": knee_y + rng.uniform(0.05, 0.15), "skirt": knee_y + rng.uniform(-0.1, 0.1)}.get(
        str(legs), -10.0
    )
    is_bottom = np.isin(part, [_TORSO, _HIPS, _THIGH, _SHIN]) & (centre[:, 1] < waist) & (centre[:, 1] >= bottom_end)
    colors[is_top], garment[is_top] = top, 1
    colors[is_bottom], garment[is_bottom] = bottom, 2
    colors[part == _FOOT] = shoes
    head = part == _HEAD
    hc = centre[head]
    eye_y = float(m.kp_vertices[m.kp_weights[1].argmax(), 1])
    front_z = float(hc[:, 2].max())
    style = rng.uniform(0.0, 0.06)
    hairy = (hc[:, 1] > eye_y + 0.035 - style * 0.3) | ((hc[:, 2] < front_z - 0.1) & (hc[:, 1] > eye_y - 0.06 - style))
    if rng.random() > 0.08:  # a few people are bald
        idx = np.nonzero(head)[0][hairy]
        colors[idx] = hair
    unevenness = rng.uniform(0.92, 1.08, (len(part), 1))  # drawn either way: the same people with or without it
    if jitter:
        colors = colors * unevenness  # fabric and skin are not uniform
    info = {"sleeves": str(sleeves), "legs": str(legs)}
    return colors, garment, info


@dataclass(frozen=True)
class PersonSpec:
    """What to fix of one person instead of drawing it (tests, demos): pose family, yaw in degrees
    (0 faces the camera, 90 turns the person's left side away), close-up portrait or full body."""

    family: str | None = None
    yaw: float | None = None
    portrait: bool | None = None


def _sample_person(rng, r: Rig, cfg: RenderConfig, w: int, h: int, focal: float, slot: int, n: int, spec: PersonSpec):
    portrait = bool(spec.portrait)
    beta = sample_shape(rng, r)
    family = str(rng.choice(["gesture", "stand", "reach", "arms_up"])) if portrait else None
    rotations, family = sample_pose(rng, r, spec.family or family)
    front = portrait or rng.random() < cfg.front_prob
    yaw = rng.normal(0, 25) if front else rng.uniform(-180, 180)
    yaw = yaw if spec.yaw is None else float(spec.yaw)
    roll = rng.uniform(-180, 180) if (not portrait and rng.random() < 0.04) else rng.normal(0, 5)
    rotations[BONE["root"]] = rot_xyz(rng.normal(0, 8), yaw, roll)
    body = r.pose(beta, rotations)
    mpii_extra = np.stack(
        [
            body.keypoints[11:13].mean(0),
            body.keypoints[5:7].mean(0),
            body.joints[BONE["head"]],
            body.head_top,
        ]
    )
    points = np.concatenate([body.keypoints[:17], mpii_extra])
    # Camera frame: the person's left goes to image right when facing the camera, up goes to -y.
    flip = np.array([1.0, -1.0, -1.0])
    verts, points = body.vertices * flip, points * flip
    if portrait:  # head and shoulders / upper body of one person near the camera
        shoulders = float(np.linalg.norm(points[5] - points[6]))
        ppm = rng.uniform(0.3, 0.65) * w / max(shoulders, 0.2)
        anchor = points[_POINT["thorax"]]
        target = (w / 2 + rng.normal(0, 0.1 * w), h * rng.uniform(0.6, 0.95))
    else:
        lo, hi = cfg.height_range
        shrink = cfg.crowd_shrink ** (n - 1)
        ppm = rng.uniform(lo * shrink, hi * shrink) * h / 1.7
        anchor = verts.mean(0)
        target = ((slot + 0.5) / n * w + rng.normal(0, 0.08 * w), h / 2 + rng.normal(0, 0.06 * h))
    depth = focal / ppm
    offset = np.array([(target[0] - w / 2) * depth / focal, (target[1] - h / 2) * depth / focal, depth]) - anchor
    verts, points = verts + offset, points + offset
    uv = project(verts, focal, w / 2, h / 2)
    truncated = False
    if not portrait:
        lo_uv, hi_uv = uv.min(0), uv.max(0)
        size = hi_uv - lo_uv
        shift = np.zeros(2)
        for axis, extent in ((0, w), (1, h)):
            if size[axis] < extent:  # keep inside the frame ...
                shift[axis] = max(0.0, -lo_uv[axis]) - max(0.0, hi_uv[axis] - extent)
        if rng.random() < cfg.truncation_prob:  # ... unless this one is meant to be cut by the border
            axis = int(rng.integers(2))
            shift[axis] += (1 if rng.random() < 0.5 else -1) * size[axis] * rng.uniform(0.2, 0.5)
            truncated = True
        offset = np.array([shift[0] * depth / focal, shift[1] * depth / focal, 0.0])
        verts, points = verts + offset, points + offset
        uv = project(verts, focal, w / 2, h / 2)
    colors, garment, outfit = _outfit(rng, r, jitter=not cfg.smooth_shading)
    info = {"family": family, "yaw": float(yaw), "portrait": bool(portrait), "truncated": truncated, **outfit}
    return _Person(verts, uv, points, project(points, focal, w / 2, h / 2), colors, garment, info)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A multiplicative garment pattern: stripes, checks or blotches."""
    kind = int(rng.integers(3))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    period = float(rng.uniform(3, 10))
    if kind == 0:
        a = rng.uniform(0, math.pi)
        band = (np.floor((xs * math.cos(a) + ys * math.sin(a)) / period) % 2) == 0
    elif kind == 1:
        band = ((np.floor(xs / period) + np.floor(ys / period)) % 2) == 0
    else:
        small = rng.random((max(h // 5, 2), max(w // 5, 2))).astype(np.float32)
        return 0.65 + 0.7 * cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.where(band, np.float32(1.0), np.float32(rng.uniform(0.45, 0.8)))


def _keypoints(person: _Person, index: int, ids: np.ndarray, owner: np.ndarray, depth: np.ndarray, names) -> np.ndarray:
    h, w = ids.shape
    out = np.zeros((len(names), 3), np.float32)
    for k, name in enumerate(names):
        i = _POINT[name]
        x, y = person.kp_uv[i]
        if not (-0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5):
            if np.isfinite([x, y]).all():
                out[k] = (x, y, 0.0)  # outside the image: absent (data/coco.py), not unlabelled
            continue
        px, py = int(round(float(x))), int(round(float(y)))
        win = (slice(max(py - 1, 0), py + 2), slice(max(px - 1, 0), px + 2))
        mine = owner[ids[win]] == index + 1
        z = person.kp_cam[i, 2]
        visible = bool(mine.any()) and bool((z - depth[ids[win]][mine] < _DEPTH_SLACK[name]).any())
        out[k] = (x, y, 2.0 if visible else 1.0)
    return out


def _draw_eyes(img: np.ndarray, person: _Person, kps: np.ndarray, focal: float) -> None:
    """Dark irises and a brow line on the eyes the camera sees: a face reads as a face."""
    for k in (1, 2):
        x, y, v = kps[k]
        if v == 2:
            r = 0.007 * focal / person.kp_cam[k, 2]
            if r >= 0.6:
                cv2.circle(img, (int(x * 16), int(y * 16)), int(r * 16), (30, 30, 40), -1, cv2.LINE_AA, 4)
                up = (person.kp_uv[0] - person.kp_uv[k]) * -0.35
                a, b = person.kp_uv[k] + up * 1.2 - up[::-1] * 0.6, person.kp_uv[k] + up * 1.2 + up[::-1] * 0.6
                cv2.line(
                    img,
                    (int(a[0] * 16), int(a[1] * 16)),
                    (int(b[0] * 16), int(b[1] * 16)),
                    (35, 40, 50),
                    max(int(r * 0.7), 1),
                    cv2.LINE_AA,
                    4,
                )


def render_scene(
    rng: np.random.Generator,
    config: RenderConfig | None = None,
    size: tuple[int, int] | None = None,
    people: Sequence[PersonSpec] | None = None,
) -> tuple[np.ndarray, list[PersonAnnotation]]:
    """One BGR image with 1..N rendered people and their annotations (as `synthetic.render_scene`).

    `size` is (width, height), drawn from the config by default; `people` fixes how many people
    and what of each (PersonSpec), drawn by default. People with no keypoint in the frame are
    drawn but not annotated, as in COCO.
    """
    cfg = config or RenderConfig()
    r = rig()
    if size is None:
        w, h = (int(v) for v in rng.integers(cfg.min_size, cfg.max_size + 1, 2))
    else:
        w, h = int(size[0]), int(size[1])
    focal = w * rng.uniform(0.8, 1.4)
    background = _background(rng, w, h, cfg)
    if people is None:
        portrait = rng.random() < cfg.portrait_prob
        weights = np.asarray(cfg.people_weights, np.float64)
        n = 1 if portrait else int(rng.choice(len(weights), p=weights / weights.sum())) + 1
        specs = [PersonSpec(portrait=portrait)] * n
    else:
        specs, n = list(people), len(people)
    slots = rng.permutation(n)
    people = [_sample_person(rng, r, cfg, w, h, focal, int(slots[i]), n, specs[i]) for i in range(n)]
    order = np.argsort([-p.verts[:, 2].mean() for p in people], kind="stable")
    faces = r.m.faces
    nf = len(faces)
    ids = np.zeros((h, w), np.int32)
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-1.0, 0.3), -1.0])
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.35, 0.6)
    lut_color = [np.zeros((1, 3))]
    lut_depth = [np.full(1, np.inf)]
    lut_owner = [np.zeros(1, np.int32)]
    lut_garment = [np.zeros(1, np.int32)]
    lut_corners = [np.zeros((1, 3, 2))]  # smooth shading: each face's corners in the image, and their shades
    lut_corner_shade = [np.zeros((1, 3))]
    silhouettes = {}
    for slot, i in enumerate(order):
        p = people[i]
        normals = face_normals(p.verts, faces)
        first = 1 + slot * nf
        draw_faces(ids, p.verts, p.uv, faces, normals, first)
        silhouettes[int(i)] = (ids >= first) & (ids < first + nf)
        if cfg.smooth_shading:
            at_vertices = vertex_normals(normals, faces, len(p.verts))
            lut_corner_shade.append((ambient + (1 - ambient) * np.clip(at_vertices @ light, 0, 1))[faces])
            lut_corners.append(p.uv[faces])
            lut_color.append(p.colors)
        else:
            shade = ambient + (1 - ambient) * np.clip(normals @ light, 0, 1)
            lut_color.append(p.colors * shade[:, None])
        lut_depth.append(p.verts[faces].mean(1)[:, 2])
        lut_owner.append(np.full(nf, i + 1, np.int32))
        lut_garment.append(p.garment.astype(np.int32) + 3 * i)
    owner = np.concatenate(lut_owner)
    depth = np.concatenate(lut_depth)
    body = ids > 0
    ys, xs = np.nonzero(body)
    img = background
    if len(ys):
        # Work inside the people's bounding box only: paint the lit faces, pattern the garments.
        y0, y1, x0, x1 = max(ys.min() - 3, 0), ys.max() + 4, max(xs.min() - 3, 0), xs.max() + 4
        roi_ids, roi_body = ids[y0:y1, x0:x1], body[y0:y1, x0:x1]
        if cfg.smooth_shading:
            shade = interpolate_vertex_values(
                roi_ids, (x0, y0), np.concatenate(lut_corners), np.concatenate(lut_corner_shade)
            )
            albedo = np.concatenate(lut_color)[roi_ids]
            layer = np.clip(albedo * shade[..., None], 0, 255).astype(np.uint8)
        else:
            layer = np.clip(np.concatenate(lut_color), 0, 255).astype(np.uint8)[roi_ids]
        garments = np.concatenate(lut_garment)[roi_ids]
        for i in range(n):
            for g in (1, 2):
                if rng.random() < cfg.texture_prob:
                    mask = roi_body & (garments == 3 * i + g)
                    if mask.any():
                        pattern = _texture(rng, *roi_ids.shape)[mask][:, None]
                        layer[mask] = (layer[mask] * pattern).astype(np.uint8)
        # Soften facets and outline: blur the people over their background, keep it near them only.
        roi = img[y0:y1, x0:x1]
        np.copyto(layer, roi, where=~roi_body[..., None])
        layer = cv2.GaussianBlur(layer, (0, 0), rng.uniform(0.5, 1.0))
        near = cv2.dilate(roi_body.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        np.copyto(roi, layer, where=near[..., None])
    coco = [_keypoints(p, i, ids, owner, depth, COCO17.keypoints) for i, p in enumerate(people)]
    for p, kps in zip(people, coco):
        _draw_eyes(img, p, kps, focal)
    img = _degrade(img, rng, cfg)
    annotations = []
    for i, (p, kps) in enumerate(zip(people, coco)):
        mine = silhouettes[i]
        if not (kps[:, 2] > 0).any() or not mine.any():
            continue
        ys, xs = np.nonzero(mine)
        x0, y0, x1, y1 = xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5
        head = p.uv[r.m.faces[r.m.face_part == _HEAD].ravel()]
        hx0, hy0 = np.clip(head.min(0), 0, [w, h])
        hx1, hy1 = np.clip(head.max(0), 0, [w, h])
        annotations.append(
            PersonAnnotation(
                keypoints=kps,
                mpii_joints=_keypoints(p, i, ids, owner, depth, MPII16.keypoints),
                bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                area=float(mine.sum()),
                head_box=[float(hx0), float(hy0), float(hx1), float(hy1)],
                info=p.info,
            )
        )
    return img, annotations


@functools.lru_cache(maxsize=2)
def _grain(std: float) -> tuple[np.ndarray, np.ndarray]:
    """A fixed 512x512 tile of grain (seeded, so output stays deterministic), split by sign."""
    g = np.random.default_rng(7).normal(0.0, std, (512, 512, 1)).repeat(3, 2)
    return np.clip(g, 0, 255).astype(np.uint8), np.clip(-g, 0, 255).astype(np.uint8)


def _degrade(img: np.ndarray, rng: np.random.Generator, cfg: RenderConfig) -> np.ndarray:
    """Camera-like damage: colour cast and exposure, grain, blur, JPEG blocks (uint8 throughout)."""
    gain = rng.uniform(0.85, 1.15, 3)
    out = cv2.convertScaleAbs(img * gain[None, None].astype(np.float32) + np.float32(rng.normal(0, 8)))
    if cfg.noise_std > 0:
        pos, neg = _grain(float(cfg.noise_std))
        h, w = out.shape[:2]
        reps = (-(-h // 512), -(-w // 512), 1)
        if reps != (1, 1, 1):
            pos, neg = np.tile(pos, reps), np.tile(neg, reps)
        y, x = int(rng.integers(0, pos.shape[0] - h + 1)), int(rng.integers(0, pos.shape[1] - w + 1))
        out = cv2.subtract(cv2.add(out, pos[y : y + h, x : x + w]), neg[y : y + h, x : x + w])
    if rng.random() < cfg.blur_prob:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 1.4)))
    if rng.random() < cfg.jpeg_prob:
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 81))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out
