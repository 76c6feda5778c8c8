"""What every benchmark writes beside its figures: the machine they hold on, and the result file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

__all__ = ["machine", "write_result"]


def machine() -> dict[str, object]:
    """The CPU, core count, OS and Python a benchmark ran on: its milliseconds hold there only."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def write_result(path: str | os.PathLike, result: dict) -> None:
    """`result` and the machine as JSON at `path` (folders made; written whole, so an interrupted
    run leaves the last complete file), and a line saying where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps({**result, "machine": machine()}, indent=1) + "\n", encoding="utf-8")
    partial.replace(path)
    print(f"wrote {path}")
