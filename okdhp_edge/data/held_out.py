"""The guard that keeps evaluation media out of training data built from real frames.

Held-out media are recognised by content (a file's sha256), not by name, so a renamed or
re-fetched copy is refused too. The list is okdhp_edge/data/held_out.json.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from .base import DatasetError

__all__ = ["HELD_OUT_FILE", "check_trainable", "file_digest", "held_out_media"]

HELD_OUT_FILE = Path(__file__).with_name("held_out.json")


@functools.lru_cache(maxsize=None)
def held_out_media() -> dict[str, tuple[str, int]]:
    """sha256 prefix -> (file name, first held-out frame)."""
    data = json.loads(HELD_OUT_FILE.read_text(encoding="utf-8"))
    return {m["sha256"]: (m["file"], int(m["from_frame"])) for m in data["media"]}


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of the file's sha256 (the form held_out.json and real_scenes.json use)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def check_trainable(path: str | os.PathLike, stop: int | None = None) -> None:
    """DatasetError unless `path` may be trained on: not a held-out file, and for a clip whose
    later frames are held out, `stop` (frames before it are used) is given and at most where they start."""
    held = held_out_media().get(file_digest(path))
    if held is None:
        return
    name, start = held
    if start == 0:
        raise DatasetError(
            f"{path}: is {name}, a held-out evaluation file ({HELD_OUT_FILE.name}); it is never trained on nor used "
            "as a background, plate or cut-out source: pick other media"
        )
    if stop is None or stop > start:
        raise DatasetError(
            f"{path}: is {name}, whose frames from {start} on are held out ({HELD_OUT_FILE.name}); use frames before "
            f"{start} only (stop <= {start})"
        )
