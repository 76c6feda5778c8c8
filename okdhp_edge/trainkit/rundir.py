"""A run folder's shared layout: `config.yaml` (the resolved config, loadable with `--config`),
`metrics.jsonl` (one JSON row per logged epoch or step) and `checkpoint-last.pt` beside them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import ConfigError

__all__ = ["check_out_dir", "write_metrics", "write_run_config"]


def check_out_dir(out_dir: Path) -> None:
    """Fail before any work when the run folder cannot be made or written (a file in its place, a
    read-only parent), rather than after the first hour of training."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {out_dir}: {existing} is a file, not a folder; pass --out a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out_dir}: {existing} is not writable; pass --out a folder you can write to")


def write_run_config(out_dir: Path, yaml_text: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml_text, encoding="utf-8")


def write_metrics(out_dir: Path, rows: list[dict]) -> None:
    """All rows so far, written to a temporary file and renamed: a crash never leaves half a line."""
    lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    tmp = out_dir / "metrics.jsonl.tmp"
    tmp.write_text(lines, encoding="utf-8")
    tmp.replace(out_dir / "metrics.jsonl")
