"""A clean plate of a static camera: the per-pixel median of frames spread over a clip, in which
people who move through the scene vanish (each pixel shows them in fewer than half the frames).
It is the photo that `data.backgrounds` / `--backgrounds` draws synthetic people on.

    python -m okdhp_edge.data.plate clip.mp4 --out plates/scene.png --every 10
    plate = median_plate("clip.mp4", every=10)  # (H, W, 3) uint8 BGR

Frames are read with the labeller's readers (label_sources.py), so a source that labels also
makes a plate, and bad input fails the same way, before anything is written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from itertools import takewhile
from pathlib import Path

import cv2
import numpy as np

from .base import DatasetError
from .label_sources import Source, find_sources

__all__ = ["MAX_FRAMES", "median_plate", "main"]

# The median settles well before this many well-spread frames, and the frames are held in memory
# together: 64 frames of 1080p video take about 400 MB.
MAX_FRAMES = 64


def _step(source: Source, start: int, stop: float, every: int, max_frames: int) -> int:
    """`every`, widened to a multiple of it where the range holds more than `max_frames` frames,
    so that the frames kept spread over the whole range."""
    if every < 1 or start < 0 or max_frames < 3:
        raise ValueError(
            f"need every >= 1, start >= 0 and max_frames >= 3 (got every={every}, start={start}, "
            f"max_frames={max_frames})"
        )
    wanted = len(range(start, int(min(stop, source.length)), every))
    return every * max(math.ceil(wanted / max_frames), 1)


def _median_plate(
    source_path: str | os.PathLike, start: int, stop: int | None, every: int, max_frames: int
) -> tuple[np.ndarray, Source, list[int]]:
    """The plate, the source it came from and the frame indices it used."""
    source = find_sources([source_path])[0]
    end = math.inf if stop is None else stop  # a video's reported length can be short
    step = _step(source, start, end, every, max_frames)
    stack: np.ndarray | None = None
    used: list[int] = []
    for frame in takewhile(lambda f: f.index < end, source.frames(step, start)):
        if stack is None:  # the rows not filled are never touched, so take no memory
            stack = np.empty((max_frames, *frame.image.shape), np.uint8)
        elif frame.image.shape != stack.shape[1:]:
            where = source.images[frame.index] if not source.is_video else f"{source.path} frame {frame.index}"
            raise DatasetError(
                f"{where}: {frame.image.shape[1]}x{frame.image.shape[0]}, but the first frame is "
                f"{stack.shape[2]}x{stack.shape[1]}; a plate needs one camera view: pass frames of one size"
            )
        stack[len(used)] = frame.image
        used.append(frame.index)
        if len(used) == len(stack):
            break
    if len(used) < 3:
        raise DatasetError(
            f"{source.path}: frames {start}..{'end' if stop is None else stop} every {every} give {len(used)} "
            f"readable frame(s) of {source.length}; a median plate needs at least 3: widen --start/--stop or lower "
            "--every"
        )
    plate = np.median(stack[: len(used)], axis=0, overwrite_input=True)
    return np.rint(plate).astype(np.uint8), source, used


def median_plate(
    source: str | os.PathLike, *, start: int = 0, stop: int | None = None, every: int = 10, max_frames: int = MAX_FRAMES
) -> np.ndarray:
    """(H, W, 3) uint8 BGR: the per-pixel median of frames start, start+every, ... (< stop) of a
    video file or of a folder's images (sorted by name, all one size). Where that selects more
    than `max_frames`, the step grows to keep at most `max_frames` spread over the whole range
    (they are held in memory together). Raises DatasetError naming the file and the fix."""
    return _median_plate(source, start, stop, every, max_frames)[0]


def _write_png(image: np.ndarray, out: Path) -> None:
    """Whole or not at all: encode, write beside the target, rename."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise DatasetError(f"{out}: OpenCV could not encode the plate as PNG")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    partial.write_bytes(data.tobytes())
    partial.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m okdhp_edge.data.plate", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", metavar="SRC", help="a video file, or a folder of frames (sorted by name, one size)")
    parser.add_argument("--out", required=True, help="the plate, a .png file (its folder is created)")
    parser.add_argument("--start", type=int, default=0, help="first frame (default 0)")
    parser.add_argument("--stop", type=int, default=None, help="frames before this one (default: to the end)")
    parser.add_argument("--every", type=int, default=10, help="use every N-th frame (default 10)")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=MAX_FRAMES,
        help=f"at most this many frames, spread over the range (held in memory; default {MAX_FRAMES})",
    )
    args = parser.parse_args(argv)
    out = Path(args.out).expanduser()
    try:
        if out.suffix.lower() != ".png" or out.is_dir():
            raise DatasetError(f"--out {out}: must be a .png file (the plate is stored losslessly)")
        plate, source, used = _median_plate(args.source, args.start, args.stop, args.every, args.max_frames)
        _write_png(plate, out)
    except (DatasetError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"plate of {source.path}: median of {len(used)} frames from {used[0]} to {used[-1]}, "
        f"{plate.shape[1]}x{plate.shape[0]} -> {out}"
    )
    print(f"draw synthetic people on it (every image in {out.parent} is used as a background):")
    print(f"  python -m okdhp_edge.train --config CONFIG --set data.backgrounds={out.parent}")
    print(f"  python -m okdhp_edge.data.synthetic --out DIR --backgrounds {out.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
