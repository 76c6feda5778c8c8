"""`build_dataset(source, split, ...)`: one entry point for synthetic, COCO and MPII data.

Sources: "synthetic" (generated once into a cache directory keyed by its parameters),
"synthetic:DIR" (a set written by the CLI, or generated into DIR when DIR has no such split),
"rendered" and "rendered:DIR" (rendered human bodies, data/rendered; cached and resumed the same way),
"pasted" and "pasted:CUTOUTS" (real cut-out people pasted on the background bank, data/paste.py; COCO-17),
"coco:PATH" and "mpii:PATH", and mixtures of them joined by "+" ("synthetic+coco:DIR": the train
split samples the parts by `weights`, the val split is one part, `val_source`). A synthetic set
carries both COCO-17 and MPII-16 annotations; the skeleton picks which one is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..cache import cache_root
from ..skeleton import Skeleton
from ..spec import InputSpec
from .base import DatasetError, PoseDataset
from .coco import load_coco
from .mixture import MixedDataset, split_sources
from .mpii import load_mpii
from .rendered import AssetError, RenderConfig, ensure_rendered
from .rendered import generate_split as render_split
from .synthetic import GENERATOR_VERSION, SceneConfig, coco_annotation_path, generate_split
from .transforms import AugmentConfig

__all__ = [
    "FILE_SOURCES",
    "GENERATED_SOURCES",
    "SOURCES_HELP",
    "SYNTHETIC_DEFAULT_IMAGES",
    "build_dataset",
    "default_cache_dir",
    "ensure_synthetic",
]

SYNTHETIC_DEFAULT_IMAGES = {"train": 4000, "val": 500}
GENERATED_SOURCES = ("synthetic", "rendered", "pasted")  # made here: alone, or with ":DIR" (pasted: ":CUTOUTS")
FILE_SOURCES = ("coco", "mpii")  # read from ":PATH"
SOURCES_HELP = "synthetic, synthetic:DIR, rendered, rendered:DIR, pasted, pasted:CUTOUTS, coco:PATH or mpii:PATH"


def default_cache_dir() -> Path:
    """$OKDHP_EDGE_CACHE/synthetic, else ~/.cache/okdhp_edge/synthetic."""
    return cache_root() / "synthetic"


def ensure_synthetic(
    split: str,
    num_images: int,
    data_seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    config: SceneConfig | None = None,
) -> Path:
    """Directory holding this synthetic split, generating it on first use.

    The directory name hashes everything that changes the images, so a cached set is reused
    only when it is exactly the one asked for. Generation goes to a temporary sibling that is
    renamed into place, so concurrent or interrupted runs never see half a set.
    """
    if split not in SYNTHETIC_DEFAULT_IMAGES:
        raise DatasetError(f"synthetic: split must be 'train' or 'val', got {split!r}")
    config = config or SceneConfig()
    key = json.dumps(
        {
            "v": GENERATOR_VERSION,
            "seed": int(data_seed),
            "split": split,
            "n": int(num_images),
            "config": asdict(config),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = base / f"{split}-{num_images}-{digest}"
    if coco_annotation_path(final, split).is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=base))
    try:
        generate_split(tmp, split, num_images, data_seed, config)
        try:
            os.rename(tmp, final)
        except OSError:
            if not coco_annotation_path(final, split).is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _synthetic_dir(
    spec: str, split: str, num_images: int | None, data_seed: int, cache_dir, scene: SceneConfig | None
) -> Path:
    n = int(num_images) if num_images is not None else SYNTHETIC_DEFAULT_IMAGES.get(split, 0)
    if n < 1:
        raise DatasetError(f"synthetic: synthetic_images must be >= 1, got {num_images}")
    if spec == "synthetic":
        return ensure_synthetic(split, n, data_seed, cache_dir, scene)
    root = Path(spec.split(":", 1)[1]).expanduser()
    if not coco_annotation_path(root, split).is_file():
        if root.exists() and any(
            p for p in root.iterdir() if p.name not in ("images", "annotations", "annot", "synthetic.json")
        ):
            raise DatasetError(
                f"{root}: has no synthetic {split!r} split and holds other files; pick an empty or new directory"
            )
        generate_split(root, split, n, data_seed, scene)
    return root


def _scene_config(
    overrides: dict[str, Any], backgrounds: str | os.PathLike | None, kind: str = "synthetic"
) -> SceneConfig | RenderConfig | None:
    """The `kind` generator's settings from data.scene and data.backgrounds; None: the defaults."""
    if not overrides and not backgrounds:
        return None
    try:
        return (RenderConfig if kind == "rendered" else SceneConfig).with_knobs(overrides, backgrounds)
    except ValueError as err:
        raise DatasetError(f"data.scene / data.backgrounds: {err}") from None


def _rendered_dir(spec: str, split: str, num_images: int | None, data_seed: int, cache_dir, config) -> Path:
    """The folder of a rendered split ("rendered": the cache; "rendered:DIR": DIR), generated or resumed."""
    n = int(num_images) if num_images is not None else SYNTHETIC_DEFAULT_IMAGES.get(split, 0)
    if n < 1:
        raise DatasetError(f"rendered: synthetic_images must be >= 1, got {num_images}")
    try:
        if spec == "rendered":
            return ensure_rendered(split, n, data_seed, cache_dir, config)
        root = Path(spec.split(":", 1)[1]).expanduser()
        if not coco_annotation_path(root, split).is_file():
            render_split(root, split, n, data_seed, config)
        return root
    except (AssetError, ValueError) as err:
        raise DatasetError(f"{spec}: {err}") from None


def build_dataset(
    source: str,
    split: str,
    input_spec: InputSpec,
    skeleton: Skeleton,
    *,
    heatmap_stride: int = 4,
    sigma: float = 2.0,
    absent_weight: float = 0.0,
    train: bool = False,
    augment: AugmentConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    synthetic_images: int | None = None,
    seed: int = 0,
    data_seed: int = 0,
    detections: str | os.PathLike | None = None,
    min_box_score: float = 0.0,
    weights: list[float] | None = None,
    val_source: str | None = None,
    backgrounds: str | os.PathLike | None = None,
    scene: dict[str, Any] | None = None,
) -> PoseDataset | MixedDataset:
    """A top-down PoseDataset for `split` ("train" or "val") of `source`.

    `seed` seeds augmentation; `data_seed` seeds the synthetic generator (keep it fixed so
    runs with different seeds are scored on the same validation images). `synthetic_images`
    is the image count of the requested split (default 4000 train / 500 val). `detections`
    (COCO sources) takes person boxes from a detection results JSON instead of ground truth.
    With `train=True` and no `augment`, AugmentConfig() defaults apply.
    A mixture "A+B": split "train" is a MixedDataset drawing from the parts' train splits in the
    proportions `weights` (default equal); split "val" is the val split of `val_source` (one of the
    parts; default the last, e.g. the real data in synthetic+coco:DIR). `backgrounds`: generated
    synthetic people are drawn on crops of the photos in this folder (SceneConfig.backgrounds);
    `scene`: other SceneConfig fields for the generated data (data.scene in a training config).
    """
    if split not in ("train", "val"):
        raise DatasetError(f"split must be 'train' or 'val', got {split!r}")
    parts = split_sources(source)
    kinds = {part.split(":", 1)[0] for part in parts}
    render = _scene_config(scene or {}, backgrounds, "rendered") if "rendered" in kinds else None
    scene = _scene_config(scene or {}, backgrounds) if "synthetic" in kinds or "rendered" not in kinds else None
    options = dict(
        heatmap_stride=heatmap_stride,
        sigma=sigma,
        absent_weight=absent_weight,
        train=train,
        augment=augment,
        cache_dir=cache_dir,
        synthetic_images=synthetic_images,
        seed=seed,
        data_seed=data_seed,
        scene=scene,
        render=render,
        backgrounds=backgrounds,
    )
    if len(parts) > 1 or weights is not None or val_source is not None:
        val_part = val_source if val_source is not None else parts[-1]
        if val_part not in parts:
            raise DatasetError(f"val_source {val_source!r} is not one of the data sources {parts}")
        if split == "val":
            return _build_one(
                val_part, split, input_spec, skeleton, detections=detections, min_box_score=min_box_score, **options
            )
        return MixedDataset([_build_one(part, split, input_spec, skeleton, **options) for part in parts], weights, seed)
    return _build_one(
        source, split, input_spec, skeleton, detections=detections, min_box_score=min_box_score, **options
    )


def _pasted_dir(source, split, num_images, data_seed, cache_dir, backgrounds, skeleton: Skeleton) -> Path:
    """'pasted' / 'pasted:CUTOUTS': real cut-outs pasted on the background bank (paste.py), COCO-17 only."""
    from .paste import pasted_dir

    if skeleton.num_keypoints != 17:
        raise DatasetError(f"{source}: the cut-outs carry COCO-17 keypoints; train it with a COCO-17 skeleton")
    n = int(num_images) if num_images is not None else SYNTHETIC_DEFAULT_IMAGES.get(split, 0)
    if n < 1:
        raise DatasetError(f"{source}: synthetic_images must be >= 1, got {num_images}")
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return pasted_dir(source, split, n, data_seed, base, backgrounds)


def _build_one(
    source: str,
    split: str,
    input_spec: InputSpec,
    skeleton: Skeleton,
    *,
    heatmap_stride: int,
    sigma: float,
    absent_weight: float,
    train: bool,
    augment: AugmentConfig | None,
    cache_dir: str | os.PathLike | None,
    synthetic_images: int | None,
    seed: int,
    data_seed: int,
    scene: SceneConfig | None = None,
    render: RenderConfig | None = None,
    backgrounds: str | os.PathLike | None = None,
    detections: str | os.PathLike | None = None,
    min_box_score: float = 0.0,
) -> PoseDataset:
    """One source's split (build_dataset without mixtures)."""
    kind, _, path = source.partition(":")
    if kind == "synthetic":
        root = _synthetic_dir(source, split, synthetic_images, data_seed, cache_dir, scene)
        kind = "mpii" if skeleton.num_keypoints == 16 else "coco"
    elif kind == "rendered":
        root = _rendered_dir(source, split, synthetic_images, data_seed, cache_dir, render)
        kind = "mpii" if skeleton.num_keypoints == 16 else "coco"
    elif kind == "pasted":
        root = _pasted_dir(source, split, synthetic_images, data_seed, cache_dir, backgrounds, skeleton)
        kind = "coco"
    elif kind in ("coco", "mpii") and path:
        root = Path(path).expanduser()
    else:
        raise DatasetError(f"unknown data source {source!r}; use {SOURCES_HELP}, or A+B mixtures of them")
    options = dict(
        heatmap_stride=heatmap_stride, sigma=sigma, absent_weight=absent_weight, train=train, augment=augment, seed=seed
    )
    if kind == "coco":
        data = load_coco(root, split, skeleton, detections, min_box_score)
        return PoseDataset(
            data.samples,
            skeleton,
            "coco",
            input_spec,
            annotation_file=data.annotation_file,
            num_skipped=data.num_skipped,
            source=f"{source} [{split}]",
            detections=Path(detections) if detections is not None else None,
            **options,
        )
    if detections is not None:
        raise DatasetError(f"{source}: detection boxes are supported for COCO-layout data only")
    data = load_mpii(root, split, skeleton)
    return PoseDataset(
        data.samples,
        skeleton,
        "mpii",
        input_spec,
        annotation_file=data.annotation_file,
        num_skipped=data.num_skipped,
        source=f"{source} [{split}]",
        **options,
    )
