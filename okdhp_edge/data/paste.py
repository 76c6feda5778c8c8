"""Real people in new places: cut-outs (cutouts.py) pasted onto background photos (backgrounds.py)
at new scales, positions, flips and colours, partly covered by each other and by objects, or cut
by the frame, written as a COCO person-keypoints set (the `pasted` data source).

Keypoints move with their cut-out: a cut-out of width w resized to w' maps x to
(x + 0.5) * w'/w - 0.5 (cv2.resize's pixel-centre rule), then shifts by the integer paste offset.
A keypoint is v=1 where a later layer (a person or an object) owns its pixel in the final image,
v=0 outside the image (coordinates zeroed) or where the teacher gave none, else it keeps v=2.
Image i of a split is drawn from its own stream seeded by (seed, split, i), so a set does not
depend on its size or on how many processes drew it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..skeleton import COCO17
from .backgrounds import MANIFEST as BANK_MANIFEST
from .base import DatasetError
from .cutouts import MANIFEST as CUTOUT_MANIFEST
from .cutouts import load_cutouts
from .synthetic import background_photos, coco_annotation_path

__all__ = [
    "PASTE_VERSION",
    "PasteConfig",
    "ensure_pasted",
    "generate_pasted",
    "paste_person",
    "pasted_dir",
    "render_pasted",
]

PASTE_VERSION = 1
SPLITS = {"train": 1, "val": 2}
OBJECT = 255  # owner id of occluding objects; people are 1, 2, ...


@dataclass
class PasteConfig:
    """Knobs of the pasted scenes; `cutouts` and `backgrounds` are the banks' folders."""

    cutouts: str = ""
    backgrounds: str = ""
    min_size: int = 256  # image width and height are drawn from [min_size, max_size]
    max_size: int = 384
    people_weights: tuple[float, ...] = (0.35, 0.35, 0.2, 0.1)  # P(1 person), P(2), ...
    max_upscale: float = 1.5  # pasted height / the cut-out's own height, at most (no blown-up blur)
    min_scale: float = 0.35
    min_height: int = 24  # pasted people at least this tall (pixels)
    flip_prob: float = 0.5
    colour_jitter: float = 0.15  # brightness, contrast and per-channel gain spread
    truncation_prob: float = 0.15  # share of people pushed partly out of the frame
    occluder_prob: float = 0.3  # per person: an object (a patch of a photo) pasted over one of its keypoints
    crop_range: tuple[float, float] = (0.3, 1.0)  # background crop side / photo side
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        if not 64 <= self.min_size <= self.max_size:
            raise ValueError(f"PasteConfig: need 64 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        if not self.people_weights or min(self.people_weights) < 0 or sum(self.people_weights) <= 0:
            raise ValueError("PasteConfig.people_weights must hold non-negative weights, not all 0")
        if not 0 < self.min_scale <= 1 <= self.max_upscale:
            raise ValueError(
                f"PasteConfig: need 0 < min_scale <= 1 <= max_upscale, got {self.min_scale}, {self.max_upscale}"
            )
        if not 0 < self.crop_range[0] <= self.crop_range[1] <= 1:
            raise ValueError(f"PasteConfig.crop_range must be within (0, 1], got {self.crop_range}")


@dataclass
class Layer:
    """One pasted thing: its colour, alpha (float 0-1) and top-left corner in the image."""

    rgb: np.ndarray
    alpha: np.ndarray
    x: int
    y: int


def paste_person(
    rgba: np.ndarray, keypoints: np.ndarray, size: tuple[int, int], offset: tuple[int, int], flip: bool
) -> tuple[Layer, np.ndarray]:
    """The cut-out (RGBA crop with (17, 3) keypoints in its pixels) mirrored when `flip`, resized to
    `size` (w, h) and placed with its top-left at `offset`: the layer and the keypoints in image
    pixels (v kept; left and right swapped when mirrored)."""
    height, width = rgba.shape[:2]
    points = np.array(keypoints, np.float64)
    if flip:
        rgba = rgba[:, ::-1]
        points[:, 0] = width - 1 - points[:, 0]
        points = points[list(COCO17.flip_index)]
    w, h = size
    interp = cv2.INTER_AREA if w < width else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(rgba), (w, h), interpolation=interp)
    points[:, 0] = (points[:, 0] + 0.5) * (w / width) - 0.5 + offset[0]
    points[:, 1] = (points[:, 1] + 0.5) * (h / height) - 0.5 + offset[1]
    layer = Layer(resized[..., :3].astype(np.float32), resized[..., 3].astype(np.float32) / 255.0, *offset)
    return layer, points


def _composite(image: np.ndarray, owner: np.ndarray, layer: Layer, owner_id: int) -> np.ndarray:
    """Blend the layer in place; returns the part of its alpha > 0.5 inside the image, as a full-size mask."""
    H, W = image.shape[:2]
    h, w = layer.alpha.shape
    x0, y0, x1, y1 = max(layer.x, 0), max(layer.y, 0), min(layer.x + w, W), min(layer.y + h, H)
    footprint = np.zeros((H, W), bool)
    if x0 >= x1 or y0 >= y1:
        return footprint
    a = layer.alpha[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x, None]
    rgb = layer.rgb[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x]
    region = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.clip(region * (1 - a) + rgb * a, 0, 255).astype(np.uint8)
    solid = a[..., 0] > 0.5
    owner[y0:y1, x0:x1][solid] = owner_id
    footprint[y0:y1, x0:x1] = solid
    return footprint


def _jitter(rgb: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    """Brightness, contrast and white-balance shift: the same person under other light and cameras."""
    if spread <= 0:
        return rgb
    gain = 1 + rng.uniform(-spread, spread, 3) * 0.5
    contrast = 1 + rng.uniform(-spread, spread)
    brightness = rng.uniform(-spread, spread) * 64
    mean = rgb.reshape(-1, 3).mean(0)
    return np.clip((rgb - mean) * contrast + mean * gain + brightness, 0, 255)


@functools.lru_cache(maxsize=64)
def _read(path: str, flags: int) -> np.ndarray:
    image = cv2.imread(path, flags)
    if image is None:
        raise DatasetError(f"{path}: cannot be decoded (corrupt or truncated); rebuild its bank")
    if flags == cv2.IMREAD_UNCHANGED and (image.ndim != 3 or image.shape[2] != 4):
        raise DatasetError(f"{path}: not an RGBA cut-out; rebuild the cut-out bank")
    return image


def _background(
    rng: np.random.Generator, photos: tuple[str, ...], w: int, h: int, crop_range: tuple[float, float]
) -> np.ndarray:
    """A random crop of a random photo with the image's aspect, resized to (w, h), maybe mirrored."""
    photo = _read(photos[int(rng.integers(len(photos)))], cv2.IMREAD_COLOR)
    ph, pw = photo.shape[:2]
    side = rng.uniform(*crop_range)
    cw, ch = min(pw, max(int(pw * side), 8)), min(ph, max(int(pw * side * h / w), 8))
    if ch > ph:
        cw, ch = max(int(cw * ph / ch), 8), ph
    x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    crop = photo[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if cw > w else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp)


def _place(rng: np.random.Generator, size: tuple[int, int], frame: tuple[int, int], cut: list[bool], truncate: bool):
    """Top-left corner: inside the frame, or partly out when `truncate`; a side the source frame cut
    stays at or beyond the matching image edge (the person does not end in mid-air)."""
    (w, h), (W, H) = size, frame
    out = 0.5 if truncate else 0.0
    x = int(rng.integers(math.floor(-w * out), max(W - w + math.ceil(w * out), math.floor(-w * out)) + 1))
    y = int(rng.integers(math.floor(-h * out), max(H - h + math.ceil(h * out), math.floor(-h * out)) + 1))
    left, top, right, bottom = cut
    if bottom:
        y = max(y, H - h)
    elif top:
        y = min(y, 0)
    if right:
        x = max(x, W - w)
    elif left:
        x = min(x, 0)
    return x, y


def _occluder(rng: np.random.Generator, photos: tuple[str, ...], centre: np.ndarray, size: float) -> Layer:
    """A patch of a background photo in an ellipse or a box, centred near a keypoint."""
    side = max(int(size), 6)
    w, h = side, max(int(side * rng.uniform(0.5, 2.0)), 6)
    patch = _background(rng, photos, w, h, (0.1, 0.4))
    alpha = np.zeros((h, w), np.float32)
    if rng.random() < 0.5:
        cv2.ellipse(
            alpha, (w // 2, h // 2), (max(w // 2, 1), max(h // 2, 1)), float(rng.uniform(0, 180)), 0, 360, 1.0, -1
        )
    else:
        alpha[:] = 1.0
    x = int(round(centre[0] - w / 2 + rng.uniform(-0.3, 0.3) * w))
    y = int(round(centre[1] - h / 2 + rng.uniform(-0.3, 0.3) * h))
    return Layer(patch.astype(np.float32), alpha, x, y)


def render_pasted(
    rng: np.random.Generator, cutouts: list[dict], photos: tuple[str, ...], cfg: PasteConfig
) -> tuple[np.ndarray, list[dict]]:
    """One image and its people: dicts with keypoints (17, 3), bbox (COCO xywh of the pasted
    silhouette inside the image), area (its pixels) and the cut-out's file."""
    W, H = (int(v) for v in rng.integers(cfg.min_size, cfg.max_size + 1, 2))
    image = _background(rng, photos, W, H, cfg.crop_range)
    owner = np.zeros((H, W), np.uint8)
    weights = np.asarray(cfg.people_weights, np.float64)
    count = int(rng.choice(len(weights), p=weights / weights.sum())) + 1
    picks = [cutouts[int(rng.integers(len(cutouts)))] for _ in range(count)]
    plans = []
    for cut in picks:
        rgba = _read(cut["path"], cv2.IMREAD_UNCHANGED)
        rows = np.flatnonzero(rgba[..., 3].max(1) > 127)
        native = max(int(rows[-1] - rows[0] + 1) if len(rows) else rgba.shape[0], 1)
        low = max(cfg.min_scale, cfg.min_height / native)
        high = min(cfg.max_upscale, 0.95 * H / native, 0.95 * W / rgba.shape[1])
        scale = high if low >= high else math.exp(rng.uniform(math.log(low), math.log(high)))
        plans.append((cut, rgba, scale))
    plans.sort(key=lambda p: p[2] * p[1].shape[0])  # small (far) people first, near ones on top
    people = []
    for n, (cut, rgba, scale) in enumerate(plans, start=1):
        flip = bool(rng.random() < cfg.flip_prob)
        size = (max(int(round(rgba.shape[1] * scale)), 1), max(int(round(rgba.shape[0] * scale)), 1))
        sides = list(cut["cut"])
        if flip:
            sides[0], sides[2] = sides[2], sides[0]
        offset = _place(rng, size, (W, H), sides, bool(rng.random() < cfg.truncation_prob))
        layer, points = paste_person(rgba, cut["keypoints"], size, offset, flip)
        layer.rgb = _jitter(layer.rgb, rng, cfg.colour_jitter)
        footprint = _composite(image, owner, layer, n)
        people.append({"points": points, "footprint": footprint, "file": cut["file"]})
        labelled = np.flatnonzero(points[:, 2] > 0)
        if len(labelled) and rng.random() < cfg.occluder_prob:
            centre = points[labelled[int(rng.integers(len(labelled)))], :2]
            _composite(image, owner, _occluder(rng, photos, centre, size[1] * rng.uniform(0.15, 0.35)), OBJECT)
    return image, [_annotate(p, n, owner) for n, p in enumerate(people, start=1) if p["footprint"].any()]


def _annotate(person: dict, owner_id: int, owner: np.ndarray) -> dict:
    H, W = owner.shape
    points = person["points"].copy()
    for k, (x, y, v) in enumerate(points):
        col, row = int(round(x)), int(round(y))
        if v <= 0 or not (0 <= col < W and 0 <= row < H):
            points[k] = 0
        elif owner[row, col] not in (0, owner_id):
            points[k, 2] = 1
    rows, cols = np.nonzero(person["footprint"])
    x0, y0, x1, y1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
    return {
        "keypoints": points,
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "area": float(len(rows)),
        "file": person["file"],
    }


# --- writing sets ------------------------------------------------------------------------------


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([PASTE_VERSION, 7, int(seed), SPLITS[split], int(index)])


@functools.lru_cache(maxsize=4)
def _banks(cutouts: str, backgrounds: str, split: str) -> tuple[list[dict], tuple[str, ...]]:
    """The split's cut-outs and the photos (loaded once per process)."""
    bank = [c for c in load_cutouts(cutouts) if c["split"] == split]
    if not bank:
        raise DatasetError(f"{cutouts}: the cut-out bank has no {split!r} cut-outs; add sources and rebuild it")
    try:
        photos = background_photos(backgrounds)
    except ValueError as err:
        raise DatasetError(f"pasted: {err}; build the bank with `python -m okdhp_edge.data.backgrounds`") from None
    return bank, photos


def _draw_one(job: tuple[str, str, int, int, PasteConfig]) -> None:
    """Image `index` and its part file; skipped when both are already there (resume)."""
    root, split, seed, index, cfg = job
    part = Path(root) / "parts" / split / f"{index:06d}.json"
    if part.is_file():
        return
    cutouts, photos = _banks(cfg.cutouts, cfg.backgrounds, split)
    image, people = render_pasted(image_rng(seed, split, index), cutouts, photos, cfg)
    target = Path(root) / "images" / split / f"{index:06d}.jpg"
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise DatasetError(f"{target}: OpenCV could not encode the image")
    target.write_bytes(data.tobytes())
    record = {
        "width": image.shape[1],
        "height": image.shape[0],
        "people": [{**p, "keypoints": [round(float(v), 2) for v in p["keypoints"].ravel()]} for p in people],
    }
    part.with_suffix(".part").write_text(json.dumps(record), encoding="utf-8")
    part.with_suffix(".part").replace(part)


def generate_pasted(
    root: str | Path, split: str, num_images: int, seed: int, cfg: PasteConfig, workers: int = 1
) -> dict:
    """Draw (or finish drawing) one split into `root`; the COCO file is written last, whole."""
    if split not in SPLITS:
        raise DatasetError(f"pasted: split must be 'train' or 'val', got {split!r}")
    if num_images < 1:
        raise DatasetError(f"pasted: need at least 1 image, got {num_images}")
    root = Path(root)
    for sub in ("images", "parts"):
        (root / sub / split).mkdir(parents=True, exist_ok=True)
    _banks(cfg.cutouts, cfg.backgrounds, split)  # bad banks fail here, before any worker starts
    jobs = [(str(root), split, int(seed), i, cfg) for i in range(num_images)]
    if workers > 1:
        # spawn, not fork: a caller that already runs threads (torch) can deadlock a forked child
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_draw_one, jobs, chunksize=16))
    else:
        for job in jobs:
            _draw_one(job)
    images, annotations = [], []
    for i in range(num_images):
        record = json.loads((root / "parts" / split / f"{i:06d}.json").read_text(encoding="utf-8"))
        images.append({"id": i + 1, "file_name": f"{i:06d}.jpg", "width": record["width"], "height": record["height"]})
        for person in record["people"]:
            v = np.asarray(person["keypoints"]).reshape(-1, 3)[:, 2]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": person["bbox"],
                    "area": person["area"],
                    "keypoints": person["keypoints"],
                    "num_keypoints": int((v > 0).sum()),
                    "cutout": person["file"],
                }
            )
    coco = {
        "info": {"description": "okdhp-edge pasted real people", "version": PASTE_VERSION, "seed": int(seed)},
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(COCO17.keypoints),
                "skeleton": [[a + 1, b + 1] for a, b in COCO17.limbs],
            }
        ],
    }
    target = coco_annotation_path(root, split)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_suffix(".part").write_text(json.dumps(coco, separators=(",", ":")), encoding="utf-8")
    target.with_suffix(".part").replace(target)
    return coco


def _bank_digest(folder: str, manifest: str) -> str:
    """What the set depends on in a bank: its manifest (which files, from where)."""
    path = Path(folder) / manifest
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "none"


def ensure_pasted(split: str, num_images: int, seed: int, cache_dir: str | os.PathLike, cfg: PasteConfig) -> Path:
    """The folder holding this pasted split, drawn on first use; named by a hash of everything that
    changes its images (config, banks' manifests, seed, count). Drawing goes to a `.partial`
    sibling that a rerun finishes, renamed into place when whole."""
    key = json.dumps(
        {
            "v": PASTE_VERSION,
            "seed": int(seed),
            "split": split,
            "n": int(num_images),
            "config": asdict(cfg),
            "cutouts": _bank_digest(cfg.cutouts, CUTOUT_MANIFEST),
            "backgrounds": _bank_digest(cfg.backgrounds, BANK_MANIFEST),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    base = Path(cache_dir).expanduser()
    final = base / f"pasted-{split}-{num_images}-{digest}"
    if coco_annotation_path(final, split).is_file():
        return final
    partial = base / f".{final.name}.partial"
    generate_pasted(partial, split, num_images, seed, cfg)
    shutil.rmtree(partial / "parts", ignore_errors=True)
    try:
        os.rename(partial, final)
    except OSError:
        if not coco_annotation_path(final, split).is_file():  # not a lost race: a real failure
            raise
        shutil.rmtree(partial, ignore_errors=True)
    return final


def pasted_dir(
    source: str,
    split: str,
    num_images: int,
    seed: int,
    cache_dir: str | os.PathLike,
    backgrounds: str | os.PathLike | None = None,
) -> Path:
    """The data layer's `pasted` source: 'pasted' (the default cut-out bank) or 'pasted:DIR' (a cut-out
    bank folder), on the photos in `backgrounds` (default: the background bank)."""
    from .backgrounds import default_bank_dir
    from .cutouts import default_cutout_dir

    _, _, bank = source.partition(":")
    cutouts = Path(bank).expanduser() if bank else default_cutout_dir()
    photos = Path(backgrounds).expanduser() if backgrounds else default_bank_dir()
    return ensure_pasted(split, num_images, seed, cache_dir, PasteConfig(cutouts=str(cutouts), backgrounds=str(photos)))
