"""Which code trained a file: the version plus the git commit, recorded in every trained file's JSON."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["TRAINING_CODE", "code_version"]

TRAINING_CODE = [
    f"okdhp_edge/{part}" for part in ("*.py", "configs", "data", "detection", "eval", "models", "train", "trainkit")
]


def code_version() -> str:
    """okdhp_edge's version, plus the git commit (and '+dirty' for uncommitted changes to the code a
    run imports) when it runs from a checkout: what a trained file's JSON names as the code that trained it."""
    from .. import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", *TRAINING_CODE],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    if commit.returncode != 0:
        return __version__
    return f"{__version__} ({commit.stdout.strip()}{'+dirty' if dirty.stdout.strip() else ''})"
