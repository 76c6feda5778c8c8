"""Data: synthetic people, COCO and MPII top-down loaders, augmentation (torch-free).

`build_dataset(source, split, input_spec, skeleton, ...)` returns a map-style `PoseDataset`
that a torch DataLoader can batch; see docs/data.md for layouts and options.
"""

from .base import DatasetError, PoseDataset, Sample
from .coco import load_coco
from .factory import (
    FILE_SOURCES,
    GENERATED_SOURCES,
    SOURCES_HELP,
    SYNTHETIC_DEFAULT_IMAGES,
    build_dataset,
    default_cache_dir,
    ensure_synthetic,
)
from .mpii import load_mpii
from .synthetic import SceneConfig, generate_dataset, render_scene
from .transforms import AugmentConfig, TopDownTransform

__all__ = [
    "AugmentConfig",
    "DatasetError",
    "FILE_SOURCES",
    "GENERATED_SOURCES",
    "PoseDataset",
    "SOURCES_HELP",
    "SYNTHETIC_DEFAULT_IMAGES",
    "Sample",
    "SceneConfig",
    "TopDownTransform",
    "build_dataset",
    "default_cache_dir",
    "ensure_synthetic",
    "generate_dataset",
    "load_coco",
    "load_mpii",
    "render_scene",
]
