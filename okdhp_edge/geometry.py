"""Crop geometry for top-down pose: person box -> crop window -> network input, and back.

Conventions (used everywhere in the package):
- Points are in pixel-index coordinates, the ones OpenCV uses: pixel i covers [i - 0.5, i + 0.5].
- A crop window is (center, size): center (x, y) in image pixels and size (w, h) in image
  pixels, already at the network input's aspect ratio.
- The window's center lands on the middle of the output, ((W - 1) / 2, (H - 1) / 2), so
  mirroring the crop (x -> W - 1 - x) is the same as mirroring the window: flip test is exact.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "box_to_center_size",
    "crop_affine",
    "invert_affine",
    "apply_affine",
    "outside_frame",
    "warp_crop",
]


def box_to_center_size(
    box_xyxy: np.ndarray | list[float],
    aspect_ratio: float,
    padding: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Grow a person box to the input's aspect ratio (width / height) and pad it.

    Returns (center, size) as float32 arrays of shape (2,).
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box_xyxy, dtype=np.float64).reshape(4))
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"box {[x1, y1, x2, y2]} has non-finite coordinates")
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    size = np.array([w * padding, h * padding], dtype=np.float32)
    return center, size


def crop_affine(
    center: np.ndarray,
    size: np.ndarray,
    output_size: tuple[int, int],
    rotation_deg: float = 0.0,
) -> np.ndarray:
    """2x3 matrix taking image points into the (output_w, output_h) crop.

    The window `size` (w, h) maps onto the output. `rotation_deg` turns the content
    counter-clockwise in the crop, with the sign convention of cv2.getRotationMatrix2D.
    """
    out_w, out_h = output_size
    scale = out_w / float(size[0])
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta) * scale, math.sin(theta) * scale
    # Rotation + scale about the window center, then move the center to the output middle.
    linear = np.array([[cos, sin], [-sin, cos]], dtype=np.float64)
    offset = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0]) - linear @ np.asarray(center, np.float64)
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (crop -> image)."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64)).astype(np.float32)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to points of shape (..., 2); returns float32 of the same shape."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    out = pts @ m[:, :2].T + m[:, 2]
    return out.astype(np.float32)


def outside_frame(keypoints: np.ndarray, frame_size: tuple[int, int], margin: float) -> np.ndarray:
    """(N, K) True where a keypoint lies more than `margin` x the frame height outside the frame."""
    width, height = frame_size
    pad = margin * height
    x, y = np.asarray(keypoints)[..., 0], np.asarray(keypoints)[..., 1]
    return (x < -pad) | (x > width - 1 + pad) | (y < -pad) | (y > height - 1 + pad)


def warp_crop(
    image: np.ndarray,
    matrix: np.ndarray,
    output_size: tuple[int, int],
    border_value: float = 0.0,
) -> np.ndarray:
    """Cut the crop described by `matrix` out of `image` (bilinear, constant border)."""
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float32),
        (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border_value, border_value, border_value),
    )
