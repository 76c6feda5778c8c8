"""Write synthetic people to disk as a COCO person-keypoints data set (plus MPII-layout JSON).

Image i of a split is drawn from its own random stream seeded by (seed, split, i), so a set is
reproducible, does not depend on how many images were asked for or how many processes drew
it, and train and val never share an image.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from ...skeleton import COCO17
from ...spec import write_json_atomic
from .render import PersonAnnotation, SceneConfig, render_scene

__all__ = [
    "GENERATOR_VERSION",
    "SPLITS",
    "MPII_FILES",
    "image_rng",
    "generate_dataset",
    "generate_split",
    "coco_annotation_path",
    "mpii_annotation_path",
    "write_annotations",
]

GENERATOR_VERSION = 1
SPLITS = {"train": 1, "val": 2}
MPII_FILES = {"train": "train.json", "val": "valid.json"}


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one image: independent of set size and worker count."""
    return np.random.default_rng([GENERATOR_VERSION, int(seed), SPLITS[split], int(index)])


def coco_annotation_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / "annotations" / f"person_keypoints_{split}.json"


def mpii_annotation_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / "annot" / MPII_FILES[split]


def _render_one(job: tuple[str, str, int, int, SceneConfig, int]) -> tuple[int, int, list[PersonAnnotation]]:
    root, split, seed, index, config, quality = job
    image, people = render_scene(image_rng(seed, split, index), config)
    path = Path(root) / "images" / split / f"{index:06d}.jpg"
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode synthetic image {path}")
    path.write_bytes(buf.tobytes())
    return image.shape[1], image.shape[0], people


def _coco_category() -> dict:
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO17.keypoints),
        "skeleton": [[a + 1, b + 1] for a, b in COCO17.limbs],  # COCO numbers keypoints from 1
    }


def generate_split(
    root: str | os.PathLike,
    split: str,
    num_images: int,
    seed: int = 0,
    config: SceneConfig | None = None,
    jpeg_quality: int = 92,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Render one split into `root` and write its COCO and MPII annotation files last.

    Returns the COCO annotation dict. Writing the annotations after every image means a crash
    leaves a directory the loaders refuse (no annotation file) rather than a silently short set.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1 for split {split!r}, got {num_images}")
    config = config or SceneConfig()
    root = Path(root)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    jobs = [(str(root), split, int(seed), i, config, int(jpeg_quality)) for i in range(num_images)]
    if workers > 1:
        # spawn, not fork: a caller that already runs threads (torch, JAX) can deadlock a forked child.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = _progress(pool.map(_render_one, jobs, chunksize=16), num_images, split, progress)
            results = list(results)
    else:
        results = list(_progress(map(_render_one, jobs), num_images, split, progress))
    info = {"description": "okdhp-edge synthetic people", "version": GENERATOR_VERSION, "seed": int(seed)}
    return write_annotations(root, split, results, info)


def write_annotations(
    root: str | os.PathLike, split: str, results: list[tuple[int, int, list[PersonAnnotation]]], info: dict
) -> dict:
    """Write the COCO and MPII annotation files of a split whose images are `images/<split>/<index:06d>.jpg`.

    `results[i]` is (width, height, people) of image i; `info` goes into the COCO "info" block.
    Returns the COCO annotation dict.
    """
    root = Path(root)
    images, annotations, mpii = [], [], []
    for index, (width, height, people) in enumerate(results):
        image_id = index + 1
        file_name = f"{index:06d}.jpg"
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for person in people:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [round(v, 2) for v in person.bbox],
                    "area": person.area,
                    "keypoints": [round(float(v), 2) for v in person.keypoints.reshape(-1)],
                    "num_keypoints": person.num_keypoints,
                }
            )
            joints = person.mpii_joints
            labelled = joints[:, 2] > 0
            if labelled.any():
                x, y, w, h = person.bbox
                mpii.append(
                    {
                        "image": f"{split}/{file_name}",
                        "image_id": image_id,
                        "center": [round(x + w / 2, 2), round(y + h / 2, 2)],
                        "scale": round(max(w, h) / 200.0, 4),
                        "joints": [
                            [round(float(a), 2), round(float(b), 2)] if v else [-1.0, -1.0]
                            for (a, b, _), v in zip(joints, labelled)
                        ],
                        "joints_vis": [int(v) for v in labelled],
                        "head_box": [round(v, 2) for v in person.head_box],
                    }
                )
    coco = {
        "info": {**info, "split": split},
        "images": images,
        "annotations": annotations,
        "categories": [_coco_category()],
    }
    write_json_atomic(mpii_annotation_path(root, split), mpii)
    _write_compact_json(coco_annotation_path(root, split), coco)
    return coco


def _write_compact_json(path: Path, data: dict) -> None:
    """Like write_json_atomic but without indentation: COCO files get large."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)


def _progress(iterable, total: int, split: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=f"synthetic {split}", unit="img", leave=False)


def generate_dataset(
    out_dir: str | os.PathLike,
    num_train: int,
    num_val: int,
    seed: int = 0,
    config: SceneConfig | None = None,
    jpeg_quality: int = 92,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a train and a val split under `out_dir` (layout in docs/data.md); returns out_dir.

    A split with 0 images is not written. Refuses a non-empty directory unless `overwrite`.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pick a new directory or pass overwrite=True (--overwrite)")
        for sub in ("images", "annotations", "annot"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    config = config or SceneConfig()
    counts = {"train": int(num_train), "val": int(num_val)}
    if min(counts.values()) < 0 or max(counts.values()) == 0:
        raise ValueError(f"need at least one image and no negative counts, got train={num_train} val={num_val}")
    stats = {}
    for split, n in counts.items():
        if n:
            coco = generate_split(out, split, n, seed, config, jpeg_quality, workers, progress)
            stats[split] = {"images": n, "people": len(coco["annotations"])}
    write_json_atomic(
        out / "synthetic.json",
        {
            "generator_version": GENERATOR_VERSION,
            "seed": int(seed),
            "splits": stats,
            "config": asdict(config),
            "jpeg_quality": int(jpeg_quality),
        },
    )
    return out
