"""`python -m okdhp_edge.detection`: train the okdhp-person detector, then export its runtime files.

The config is okdhp_edge/configs/detector/person-det.yaml, then --config FILE, then the flags below
and --set SECTION.KEY=VALUE (sections model, data, optim, system), as the pose trainer reads its
own. Bad input (a config value, a data folder, a checkpoint, the run folder) is one `error:` line
and exit code 2; Ctrl-C saves checkpoint-last.pt and exits 130, and --resume auto continues.

    python -m okdhp_edge.detection --real coco:data/mine --plate plates/scene.png --zoom 0.3 --out runs/det
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..data.base import DatasetError
from ..export.errors import ConversionError
from ..trainkit.checkpoint import CheckpointError, resume_point
from ..trainkit.config import ConfigError, merge_config, parse_override
from .config import load_det_config
from .train import WEIGHTS_NAME, train_detector

__all__ = ["build_parser", "main"]

DEFAULT_OUT = "runs/person-det"
USAGE_ERROR = 2  # argparse's exit code for bad arguments; bad values, data and checkpoints are the same kind

# flag -> (section, key): each flag is a short form of --set SECTION.KEY=VALUE
FLAGS: dict[str, tuple[str, str]] = {
    "synthetic": ("data", "synthetic"),
    "backgrounds": ("data", "backgrounds"),
    "synthetic_share": ("data", "synthetic_share"),
    "real_first": ("data", "real_first"),
    "plate": ("data", "plate"),
    "zoom": ("data", "zoom"),
    "zoom_out": ("data", "zoom_out"),
    "init": ("model", "init"),
    "steps": ("optim", "steps"),
    "batch": ("optim", "batch_size"),
    "lr": ("optim", "lr"),
    "device": ("system", "device"),
    "amp": ("system", "amp"),
    "channels_last": ("system", "channels_last"),
    "threads": ("system", "threads"),
    "seed": ("system", "seed"),
    "checkpoint_every": ("system", "checkpoint_every"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m okdhp_edge.detection", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = p.add_argument_group("config")
    g.add_argument("--config", metavar="FILE", help="YAML file merged over the default config (same sections)")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="any config value, e.g. --set data.crop=[320,240] (repeatable)",
    )
    g.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    g = p.add_argument_group("data (section data)")
    g.add_argument("--real", action="append", help="labelled real frames, coco:DIR[:SPLIT] (repeatable)")
    g.add_argument(
        "--real-weights", metavar="W,...", help="share of the real crops from each --real entry, in order, e.g. 1,3"
    )
    g.add_argument(
        "--real-first", type=int, help="only the first N frames of each real split (keep a clip's end unseen)"
    )
    g.add_argument("--plate", help="clean plate of the real frames' static camera: motion outside the boxes is ignored")
    g.add_argument("--backgrounds", help="photo folder for the synthetic scenes")
    g.add_argument("--synthetic", type=int, help="rendered scenes (0 = real frames only)")
    g.add_argument("--synthetic-share", type=float, help="share of crops from synthetic scenes")
    g.add_argument("--zoom", type=float, help="share of real crops enlarged around one person")
    g.add_argument(
        "--zoom-out", type=float, help="share of crops showing the whole frame 2-4x smaller (Detector(zoom_out=k))"
    )
    g = p.add_argument_group("recipe (section optim; system.seed; model.init)")
    g.add_argument("--init", metavar="WEIGHTS", help="start from a trained person-det.safetensors (model.init)")
    g.add_argument("--steps", type=int, help="optim.steps")
    g.add_argument("--batch", "--batch-size", dest="batch", type=int, help="optim.batch_size")
    g.add_argument("--lr", type=float, help="optim.lr")
    g.add_argument("--seed", type=int, help="system.seed")
    g = p.add_argument_group("system")
    g.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    g.add_argument("--amp", choices=("off", "bf16", "fp16"), help="mixed precision (fp16: CUDA only)")
    g.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None, help="NHWC memory format (default on)"
    )
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help=f"run folder (default {DEFAULT_OUT})")
    g.add_argument(
        "--resume", metavar="PATH|auto", help="a checkpoint, a run folder, or auto (= --out's checkpoint-last.pt)"
    )
    g.add_argument("--no-export", action="store_true", help="skip writing the runtime ONNX files")
    return p


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave, as a nested config dict, then --set on top."""
    out: dict[str, Any] = {}
    for name, (section, key) in FLAGS.items():
        value = getattr(args, name)
        if value is not None:
            out.setdefault(section, {})[key] = value
    if args.real is not None:
        out.setdefault("data", {})["real"] = args.real
    if args.real_weights is not None:
        try:
            weights = [float(w) for w in args.real_weights.split(",")]
        except ValueError:
            raise ConfigError(
                f"--real-weights {args.real_weights!r}: expected comma-separated numbers, one per --real, e.g. 1,3"
            ) from None
        out.setdefault("data", {})["real_weights"] = weights
    for item in args.set:
        merge_config(out, parse_override(item))
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = overrides_from_args(args)
        out = Path(args.out) if args.out else None
        resume, base = resume_point(args.resume, out or Path(DEFAULT_OUT))
        config = load_det_config(args.config, overrides, base=base)
        if args.print_config:
            print(config.to_yaml(), end="")
            return 0
        out = out or (resume.parent if resume is not None else Path(DEFAULT_OUT))
        weights = train_detector(config, out, resume)
        print(f"weights: {weights}")
        if not args.no_export:
            from .export import export_detector  # the export extra (onnx), not needed to train

            for path in export_detector(weights, calibration=config.data.real, real_first=config.data.real_first):
                print(f"runtime file: {path}")
    except KeyboardInterrupt:
        print("\ninterrupted (exit 130)", file=sys.stderr)
        return 130
    except (ConfigError, CheckpointError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except ConversionError as err:
        print(f"error: {err} (the weights are kept: {out / WEIGHTS_NAME})", file=sys.stderr)
        return 1
    return 0
