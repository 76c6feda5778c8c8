"""Real footage with people for the video benchmarks and tests: Debian's opencv-doc package
(vtest.avi, basketball1.png, messi5.jpg), fetched with apt-get into a cache, never committed.

    python benchmarks/footage.py            # prints the folder holding the media
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

CACHE_ROOT = Path(os.environ.get("OKDHP_EDGE_CACHE", Path.home() / ".cache" / "okdhp_edge"))
CACHE = CACHE_ROOT / "opencv-doc"
LABELLED_CLIP = CACHE_ROOT / "real" / "vtest-blazepose-full"  # vtest.avi labelled by the teacher (real_dev.py builds it)
DATA = "usr/share/doc/opencv-doc/examples/data"
FILES = ("vtest.avi", "basketball1.png", "messi5.jpg")


def footage_dir() -> Path:
    """The folder with the media; downloads and unpacks the package once. Raises RuntimeError
    (with the reason) where apt-get or dpkg cannot deliver it."""
    target = CACHE / DATA
    if all((target / f).is_file() for f in FILES):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"`apt-get download opencv-doc` failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]} (try `apt-get update`)")
        deb = next(Path(tmp).glob("opencv-doc_*.deb"))
        proc = subprocess.run(["dpkg", "-x", str(deb), str(CACHE)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"dpkg -x {deb.name} failed: {proc.stderr.strip()}")
    missing = [f for f in FILES if not (target / f).is_file()]
    if missing:
        raise RuntimeError(f"opencv-doc unpacked into {CACHE} but {missing} are not in {DATA}")
    return target


def read_clip(path: Path, start: int = 0, frames: int | None = None, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """BGR frames of a video from `start`, `frames` of them (None: to the end), resized to `size`
    (width, height) when given."""
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = []
    ok, frame = capture.read()
    while ok and (frames is None or len(out) < frames):
        out.append(frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        ok, frame = capture.read()
    capture.release()
    return out


if __name__ == "__main__":
    print(footage_dir())
