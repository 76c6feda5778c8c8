"""A small painter's-algorithm rasteriser: triangles filled far to near into an integer id map.

Each pixel keeps the id of the nearest face drawn over it; colours, depths and owners are then
looked up per id, so shading, compositing and the visibility test share one pass of drawing.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["draw_faces", "face_normals", "project"]


def project(points: np.ndarray, focal: float, cx: float, cy: float) -> np.ndarray:
    """Pinhole projection of camera-frame points (x right, y down, z away) to pixels."""
    z = np.maximum(points[:, 2], 1e-3)
    return np.stack([points[:, 0] * focal / z + cx, points[:, 1] * focal / z + cy], 1)


def face_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = verts[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-12)


def draw_faces(
    ids: np.ndarray, verts_cam: np.ndarray, uv: np.ndarray, faces: np.ndarray, normals: np.ndarray, first_id: int
) -> None:
    """Fill the faces turned towards the camera into `ids` (int32), far first, id = first_id + face index.

    Faces wholly outside the image are skipped; coordinates use cv2's 4-bit sub-pixel shift.
    """
    h, w = ids.shape
    centres = verts_cam[faces].mean(1)
    front = np.einsum("fi,fi->f", normals, centres) < 0
    tri = uv[faces]
    lo, hi = tri.min(1), tri.max(1)
    inside = (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < w) & (lo[:, 1] < h)
    keep = np.nonzero(front & inside)[0]
    keep = keep[np.argsort(-centres[keep, 2], kind="stable")]
    pts = np.round(tri[keep] * 16).astype(np.int32)
    fill = cv2.fillConvexPoly
    for f, p in zip((keep + first_id).tolist(), pts):
        fill(ids, p, f, cv2.LINE_8, 4)
