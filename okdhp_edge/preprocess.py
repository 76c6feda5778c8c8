"""Image -> network input, shared by validation data, export calibration and the runtime.

One function builds the crops so that a model is calibrated, evaluated and deployed on
exactly the same pixels.
"""

from __future__ import annotations

import numpy as np

from .geometry import box_to_center_size, crop_affine, invert_affine, warp_crop
from .spec import InputSpec

__all__ = ["crop_people", "normalize"]


def crop_people(
    image: np.ndarray,
    boxes_xyxy: np.ndarray,
    spec: InputSpec,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one network-sized crop per box (no rotation).

    Returns crops (N, H, W, C) in the image's own channel order and dtype, and the
    crop->image affines (N, 2, 3) that map decoded keypoints back to the image.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    size = (spec.width, spec.height)
    crops, back = [], []
    for box in boxes:
        center, window = box_to_center_size(box, spec.width / spec.height, spec.crop_padding)
        matrix = crop_affine(center, window, size)
        crops.append(warp_crop(image, matrix, size))
        back.append(invert_affine(matrix))
    channels = image.shape[2] if image.ndim == 3 else 1
    if not crops:
        return np.zeros((0, spec.height, spec.width, channels), image.dtype), np.zeros((0, 2, 3), np.float32)
    crops_arr = np.stack(crops)
    if crops_arr.ndim == 3:
        crops_arr = crops_arr[..., None]
    return crops_arr, np.stack(back).astype(np.float32)


def normalize(crops: np.ndarray, spec: InputSpec, bgr: bool = True) -> np.ndarray:
    """uint8 crops (N, H, W, 3) -> float32 network input in the spec's colour order and layout."""
    x = np.asarray(crops)
    if x.ndim == 3:
        x = x[None]
    order = (2, 1, 0) if bgr == (spec.color.upper() == "RGB") else (0, 1, 2)
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    n, h, w, _ = x.shape
    nchw = spec.layout.upper() == "NCHW"
    # Channel by channel into a preallocated output: no float copy of the whole batch and no
    # transpose, which made normalisation the largest pre-processing cost at runtime.
    out = np.empty((n, 3, h, w) if nchw else (n, h, w, 3), np.float32)
    for c, src in enumerate(order):
        dst = out[:, c] if nchw else out[..., c]
        np.subtract(x[..., src], mean[c], out=dst, dtype=np.float32)
        np.divide(dst, std[c], out=dst)
    return out
