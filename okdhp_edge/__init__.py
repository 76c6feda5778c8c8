"""okdhp-edge: online knowledge distillation for human pose, from training to edge devices.

The package root is the torch-free core (skeletons, crop geometry, heatmap codec, specs);
`okdhp_edge.models`, `.train` and `.export` need torch, `okdhp_edge.runtime` never does.
"""

from .codec import HeatmapCodec, decode_heatmaps, flip_heatmaps
from .geometry import apply_affine, box_to_center_size, crop_affine, invert_affine, warp_crop
from .skeleton import COCO17, MPII16, Skeleton, get_skeleton
from .spec import ArchSpec, InputSpec, ModelSpec, SpecError

__version__ = "0.1.0"

__all__ = [
    "ArchSpec",
    "COCO17",
    "HeatmapCodec",
    "InputSpec",
    "MPII16",
    "ModelSpec",
    "Skeleton",
    "SpecError",
    "apply_affine",
    "box_to_center_size",
    "crop_affine",
    "decode_heatmaps",
    "flip_heatmaps",
    "get_skeleton",
    "invert_affine",
    "warp_crop",
]
