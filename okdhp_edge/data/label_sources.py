"""Frames to label: image folders and video files, checked before anything is written.

Each source is read in order; a frame's name (`<stem>-<path hash>-<frame index>`) is stable across
runs, which is what lets a labelling run resume.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .base import DatasetError
from .held_out import check_trainable

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Frame", "Source", "find_sources"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass
class Frame:
    name: str  # stable id, also the image file's stem
    index: int  # frame number in its source (image: position in the sorted folder)
    image: np.ndarray  # BGR uint8
    neighbours: tuple[np.ndarray, ...] = ()  # video: the frames just before and after it


@dataclass
class Source:
    """A folder of images or a video; `frames(every, start)` yields every `every`-th frame from `start`."""

    path: Path
    is_video: bool
    length: int  # frames (video: as the container reports) or images
    images: tuple[Path, ...] = ()

    def check_trainable(self, stop: int | None = None) -> None:
        """DatasetError where this source holds evaluation media (held_out.py): any of its images, or
        the video when its frames before `stop` (all: None) reach a held-out part."""
        if self.is_video:
            check_trainable(self.path, stop)
            return
        for path in self.images:
            check_trainable(path)

    @property
    def prefix(self) -> str:
        digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:8]
        return f"{self.path.stem}-{digest}"

    def frames(self, every: int, start: int = 0) -> Iterator[Frame]:
        if not self.is_video:
            for i in range(start, len(self.images), every):
                image = cv2.imread(str(self.images[i]), cv2.IMREAD_COLOR)
                if image is None:
                    warnings.warn(
                        f"{self.images[i]}: OpenCV cannot read this image (corrupt or truncated); skipped", stacklevel=2
                    )
                    continue
                yield Frame(f"{self.prefix}-{i:06d}", i, image)
            return
        capture = cv2.VideoCapture(str(self.path))
        try:
            before = current = None
            i = 0
            while True:
                ok, image = capture.read()
                image = image if ok else None
                if current is not None and i - 1 >= start and (i - 1 - start) % every == 0:
                    yield Frame(
                        f"{self.prefix}-{i - 1:06d}", i - 1, current, tuple(f for f in (before, image) if f is not None)
                    )
                if image is None:
                    return
                before, current = current, image
                i += 1
        finally:
            capture.release()


def _video(path: Path) -> Source:
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        length = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if ok else 0
    finally:
        capture.release()
    if not ok or frame is None:
        raise DatasetError(
            f"{path}: OpenCV cannot read a frame of this video (corrupt, empty, or a codec this OpenCV build lacks); "
            "re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`, or extract its frames into a folder"
        )
    return Source(path, True, max(length, 1))


def find_sources(paths: list[str | os.PathLike]) -> list[Source]:
    """Check every SRC and describe it; raises DatasetError naming the first bad one and the fix."""
    if not paths:
        raise DatasetError("no sources given: pass image folders and/or video files")
    sources = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            images = tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
            if not images:
                raise DatasetError(
                    f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a folder of frames or a "
                    "video file"
                )
            sources.append(Source(path, False, len(images), images))
        elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            sources.append(_video(path))
        elif path.is_file():
            raise DatasetError(
                f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}); pass a video file or the folder that holds the "
                "images"
            )
        else:
            raise DatasetError(f"{path}: no such file or folder")
    return sources
