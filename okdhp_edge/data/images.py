"""Cheap image-file checks done up front, and the one image reader the loaders use.

Decoding every image of a large set before training is too slow, so the up-front check reads
only a file's first and last bytes: it finds missing, empty, non-image and truncated files.
Anything that still fails to decode later is handled lazily by the dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

__all__ = ["check_image_file", "read_image"]

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
)


def check_image_file(path: str | os.PathLike) -> str | None:
    """None when the file looks like a complete image, else why not (for the skip summary)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if size == 0:
        return "empty file"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(size - 1024, 0))
            tail = f.read()
    except OSError as err:
        return f"unreadable ({err.strerror})"
    kind = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if kind is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = "webp"
    if kind is None:
        return "not a JPEG/PNG/BMP/WebP file"
    if kind == "jpeg" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end marker)"
    if kind == "png" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)"
    return None


def read_image(path: str | os.PathLike) -> np.ndarray | None:
    """BGR uint8 (H, W, 3), or None when the file cannot be decoded."""
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if image is None or image.size == 0:
        return None
    return image
