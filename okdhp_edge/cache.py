"""Where okdhp_edge keeps what it fetches or builds once (media, teachers, MediaPipe's detector,
TensorRT engines): one root for the data tools and the runtime alike."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """$OKDHP_EDGE_CACHE, else ~/.cache/okdhp_edge."""
    base = os.environ.get("OKDHP_EDGE_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "okdhp_edge"
