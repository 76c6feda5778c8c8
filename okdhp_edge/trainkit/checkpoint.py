"""Atomic, pickle-free training checkpoints.

Everything in a checkpoint is a tensor, a number, a string, a list or a dict (RNG states
included), so it loads with `torch.load(weights_only=True)`: opening a checkpoint never runs code.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointError", "capture_rng", "load_checkpoint", "resolve_resume", "restore_rng", "save_checkpoint"]

CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or from an incompatible run."""


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states as weights_only-safe values."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """torch.save to `path.tmp`, fsync, then rename: a crash leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"version": CHECKPOINT_VERSION, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by save_checkpoint (weights_only: never unpickles objects)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError for bad files
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({type(err).__name__}: {err}); it is truncated, corrupt or not an "
            "okdhp_edge training checkpoint - resume from another checkpoint or start a new run"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not an okdhp_edge training checkpoint (no model/config entries)")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state['version']} is newer than this okdhp-edge; upgrade it"
        )
    return state


def resolve_resume(resume: str | None, out_dir: Path | None) -> Path | None:
    """`--resume PATH` or `--resume auto` (= OUT/checkpoint-last.pt if it exists, else a fresh start)."""
    if resume is None:
        return None
    if resume == "auto":
        if out_dir is None:
            raise CheckpointError("--resume auto needs --out DIR (the run directory holding checkpoint-last.pt)")
        candidate = out_dir / "checkpoint-last.pt"
        return candidate if candidate.is_file() else None
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoint-last.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; pass a checkpoint-*.pt file, a run directory, or auto")
    return path


def resume_point(resume: str | None, out_dir: Path | None) -> tuple[Path | None, dict[str, Any] | None]:
    """`--resume` resolved (`resolve_resume`) and the checkpoint's config to build the run on (None:
    a fresh run); a `--resume auto` that finds nothing says so and starts afresh."""
    path = resolve_resume(resume, out_dir)
    if resume == "auto" and path is None:
        print(f"--resume auto: no checkpoint-last.pt in {out_dir}; starting a new run", file=sys.stderr)
    return path, (load_checkpoint(path)["config"] if path is not None else None)
