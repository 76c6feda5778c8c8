"""A small painter's-algorithm rasteriser: triangles filled far to near into an integer id map.

Each pixel keeps the id of the nearest face drawn over it; colours, depths and owners are then
looked up per id, so shading, compositing and the visibility test share one pass of drawing.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["draw_faces", "face_normals", "interpolate_vertex_values", "project", "vertex_normals"]


def project(points: np.ndarray, focal: float, cx: float, cy: float) -> np.ndarray:
    """Pinhole projection of camera-frame points (x right, y down, z away) to pixels."""
    z = np.maximum(points[:, 2], 1e-3)
    return np.stack([points[:, 0] * focal / z + cx, points[:, 1] * focal / z + cy], 1)


def face_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = verts[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-12)


def vertex_normals(face_normal: np.ndarray, faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Unit normals at the vertices: the mean of the normals of the faces around each one."""
    corners = faces.ravel()
    summed = np.stack([np.bincount(corners, np.repeat(face_normal[:, k], 3), num_vertices) for k in range(3)], axis=1)
    return summed / (np.linalg.norm(summed, axis=1, keepdims=True) + 1e-12)


def interpolate_vertex_values(
    ids: np.ndarray, origin: tuple[int, int], corners_uv: np.ndarray, corner_values: np.ndarray
) -> np.ndarray:
    """Per pixel of the id map `ids` (whose top-left pixel is `origin` = (x, y) in the image), the
    value at its face's three corners (`corner_values[id]`, shape (ids, 3)) interpolated at the
    pixel centre by barycentric weights from the corners' image positions (`corners_uv[id]`, shape
    (ids, 3, 2)): Gouraud shading, so a body is lit smoothly instead of facet by facet."""
    ys, xs = np.nonzero(ids)
    out = np.zeros(ids.shape, np.float32)
    if not len(ys):
        return out
    face = ids[ys, xs]
    a, b, c = (corners_uv[face, k] for k in range(3))
    point = np.stack([xs + origin[0], ys + origin[1]], 1).astype(np.float64)
    v0, v1, v2 = b - a, c - a, point - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    denom = d00 * d11 - d01 * d01
    safe = np.where(np.abs(denom) > 1e-9, denom, 1.0)
    wb = np.where(np.abs(denom) > 1e-9, (d11 * d20 - d01 * d21) / safe, 1 / 3)
    wc = np.where(np.abs(denom) > 1e-9, (d00 * d21 - d01 * d20) / safe, 1 / 3)
    weights = np.clip(np.stack([1 - wb - wc, wb, wc], 1), 0, 1)  # a pixel centre just past an edge
    weights /= weights.sum(1, keepdims=True) + 1e-12
    out[ys, xs] = (weights * corner_values[face]).sum(1)
    return out


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
