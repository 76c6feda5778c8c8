"""`python -m okdhp_edge.train.ensemble RUN`: the FAU ensemble of an okdhp run, from its checkpoint.

An okdhp run writes RUN/ensemble.safetensors + .json when it finishes; this writes the same file
from a checkpoint: for a run trained before runs did, an unfinished run, or checkpoint-best.pt.
The ensemble is a model file like a student: `python -m okdhp_edge.export RUN/ensemble.safetensors`
exports it and `Predictor` (so the labeller's `--teacher`) runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..models import BranchSpec, EnsembleNet, StudentFileError, get_preset
from ..spec import ModelSpec
from ..trainkit.checkpoint import CheckpointError, load_checkpoint
from .config import ConfigError, TrainConfig
from .network import run_provenance, write_ensemble

__all__ = ["ensemble_from_checkpoint", "main"]


def ensemble_from_checkpoint(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None
) -> tuple[Path, ModelSpec]:
    """Write `out_dir/ensemble.*` (default: the checkpoint's run directory) from a checkpoint or a
    run directory (its checkpoint-last.pt); returns the weights path and the spec."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoint-last.pt"
    state = load_checkpoint(path)
    network = state.get("network") or {}
    if network.get("mode") != "okdhp":
        raise CheckpointError(
            f"{path}: a {network.get('mode')!r} run has no trained FAU ensemble; only okdhp runs train one"
        )
    cfg = TrainConfig.from_dict(state["config"], str(path))
    preset = get_preset(network["preset"])
    spec = preset.network_spec([BranchSpec(*b) for b in network["branches"]])
    model = EnsembleNet(spec)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: its weights do not fit the network it records ({err})") from None
    epochs = int(state["epoch"])
    last = (state.get("history") or [{}])[-1]
    metrics = last.get("val", {}).get("ensemble") if last.get("epoch") == epochs - 1 else None
    provenance = {**run_provenance(cfg, path.parent.name, epochs), "checkpoint": path.name}
    return write_ensemble(model, preset, spec, Path(out_dir) if out_dir else path.parent, provenance, metrics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m okdhp_edge.train.ensemble",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint", help="a run directory (its checkpoint-last.pt) or a checkpoint-*.pt of an okdhp run"
    )
    parser.add_argument(
        "--out", metavar="DIR", help="where ensemble.safetensors + .json go (default: the run directory)"
    )
    args = parser.parse_args(argv)
    try:
        weights, spec = ensemble_from_checkpoint(args.checkpoint, args.out)
    except (CheckpointError, ConfigError, StudentFileError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{spec.name}: {spec.params / 1e6:.2f} M params, {spec.macs / 1e9:.3f} GMACs -> {weights} (+ "
        f"{weights.with_suffix('.json').name})"
    )
    print(f"export it: python -m okdhp_edge.export {weights} --format onnx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
