"""Synthetic people: the offline default data set (numpy + OpenCV only, deterministic per seed).

`render_scene(rng)` draws one image with its annotations (for demos and export calibration);
`generate_dataset(out_dir, num_train, num_val, seed)` writes a COCO-layout set that every COCO
tool reads, with MPII-layout JSON beside it. CLI: `python -m okdhp_edge.data.synthetic`.
"""

from .generate import (
    GENERATOR_VERSION,
    coco_annotation_path,
    generate_dataset,
    generate_split,
    image_rng,
    mpii_annotation_path,
)
from .render import COCO_POINTS, MPII_POINTS, PersonAnnotation, SceneConfig, background_photos, render_scene

__all__ = [
    "COCO_POINTS",
    "GENERATOR_VERSION",
    "MPII_POINTS",
    "PersonAnnotation",
    "SceneConfig",
    "background_photos",
    "coco_annotation_path",
    "generate_dataset",
    "generate_split",
    "image_rng",
    "mpii_annotation_path",
    "render_scene",
]
