"""`python -m okdhp_edge.train`: unbalanced OKDHP training from the command line (torchrun-ready).

With no arguments: the `tiny` preset on synthetic data on the CPU, finishing in minutes.
Multi-GPU / multi-node: `torchrun --nproc_per_node N -m okdhp_edge.train ...` (batch size is per process).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..data import SOURCES_HELP, DatasetError
from ..trainkit.checkpoint import CheckpointError, resume_point
from .config import (
    AMP_MODES,
    CUDA_GRAPH_MODES,
    MODES,
    ConfigError,
    available_presets,
    load_config,
    merge_config,
    parse_override,
)
from .distributed import DeviceError
from .trainer import NonFiniteLossError, train

USAGE_ERROR = 2  # a bad config, data folder, checkpoint or device, as argparse and the detector trainer exit

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    default = load_config()  # the help quotes the defaults a bare run resolves (ModelConfig's preset, its recipe)
    name = default.model.preset
    p = argparse.ArgumentParser(
        prog="python -m okdhp_edge.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = p.add_argument_group("what to train")
    g.add_argument(
        "--preset", help=f"network + recipe preset (default {name}; valid: {', '.join(available_presets())})"
    )
    g.add_argument("--config", metavar="FILE", help="YAML file merged over the preset's config (same sections)")
    g.add_argument(
        "--mode",
        choices=MODES,
        help="okdhp, independent branches without distillation, or one student alone "
        f"(single); default: the preset's ({default.mode} for {name})",
    )
    g.add_argument("--branches", metavar="SxW,...", help='branch specs, stacks x width each, e.g. "2x64,1x48,1x32"')
    g.add_argument(
        "--compression",
        metavar="F,...",
        help="branch costs as fractions of the largest preset branch, e.g. 1.0,0.5,0.25",
    )
    g.add_argument("--target", type=int, help="index of the branch you deploy (default: the cheapest)")
    g.add_argument(
        "--init",
        metavar="STUDENT,...",
        help="start from trained student .safetensors files or a folder of them "
        "(fine-tuning): each fills the trunk and a branch of its shape, e.g. weights/real-tiny",
    )
    g.add_argument(
        "--data",
        metavar="SOURCE",
        help=f"{SOURCES_HELP}; mixtures joined by +, "
        "e.g. synthetic+coco:DIR (validated on the last part, data.val_source); "
        f"default: the preset's ({default.data.source} for {name})",
    )
    g.add_argument(
        "--data-weights", metavar="W,...", help="mixtures: sampling proportions of the parts in training, e.g. 1,2"
    )
    g = p.add_argument_group("recipe")
    g.add_argument("--epochs", type=int, help=f"default: the preset's ({default.optim.epochs} for {name})")
    g.add_argument(
        "--batch-size", type=int, help=f"per process; default: the preset's ({default.optim.batch_size} for {name})"
    )
    g.add_argument(
        "--lr", type=float, help=f"Adam learning rate; default: the preset's ({default.optim.lr:g} for {name})"
    )
    g.add_argument("--seed", type=int, help=f"default: the preset's ({default.system.seed} for {name})")
    g.add_argument(
        "--workers",
        type=int,
        help=f"data loader worker processes; default: the preset's ({default.data.workers} for {name})",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="any config value, e.g. --set loss.kl_temperature=0.5 (repeatable)",
    )
    g = p.add_argument_group("system")
    g.add_argument(
        "--device",
        help=f"auto (cuda when available), cpu, cuda or cuda:N; default: the preset's ({default.system.device} for "
        f"{name})",
    )
    g.add_argument(
        "--amp",
        choices=AMP_MODES,
        nargs="?",
        const="auto",
        help="mixed precision: auto (bf16 or fp16 on CUDA; on the CPU bf16 where "
        "the CPU has it natively and it measures faster, else fp32), off, bf16, fp16 (CUDA only); "
        f"default: the preset's ({default.system.amp} for {name})",
    )
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC memory format (default: measured at the start of the run)",
    )
    g.add_argument(
        "--threads",
        type=int,
        help="CPU threads per process (default: its share of the cores or 1, whichever measures faster)",
    )
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the network")
    g.add_argument(
        "--cuda-graphs",
        choices=CUDA_GRAPH_MODES,
        help="replay forward, loss and backward from a CUDA graph: auto "
        "(measured against eager at the start of a CUDA run), on, off; default: the preset's (auto)",
    )
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help="run directory (default runs/<preset>-<timestamp>)")
    g.add_argument(
        "--resume",
        metavar="PATH|auto",
        help="continue from a checkpoint, a run directory, or auto (= --out's checkpoint-last.pt)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    g.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave, as a nested config dict."""
    out: dict[str, Any] = {}

    def put(section: str | None, key: str, value: Any) -> None:
        if value is not None:
            (out.setdefault(section, {}) if section else out)[key] = value

    put(None, "mode", args.mode)
    if args.branches is not None:
        put("model", "branches", [b.strip() for b in args.branches.split(",") if b.strip()])
        out["model"]["compression"] = None
    if args.compression is not None:
        try:
            fractions = [float(c) for c in args.compression.split(",") if c.strip()]
        except ValueError:
            raise ConfigError(
                f"--compression {args.compression!r}: expected comma-separated numbers, e.g. 1.0,0.5,0.25"
            ) from None
        put("model", "compression", fractions)
        out["model"]["branches"] = None
    put("model", "target", args.target)
    if args.init is not None:
        put("model", "init", [p.strip() for p in args.init.split(",") if p.strip()])
    put("data", "source", args.data)
    if args.data_weights is not None:
        try:
            put("data", "weights", [float(w) for w in args.data_weights.split(",") if w.strip()])
        except ValueError:
            raise ConfigError(
                f"--data-weights {args.data_weights!r}: expected comma-separated numbers, e.g. 1,2"
            ) from None
    put("data", "workers", args.workers)
    put("optim", "epochs", args.epochs)
    put("optim", "batch_size", args.batch_size)
    put("optim", "lr", args.lr)
    put("system", "seed", args.seed)
    put("system", "device", args.device)
    put("system", "amp", args.amp)
    put("system", "channels_last", args.channels_last)
    put("system", "threads", args.threads)
    put("system", "compile", args.compile)
    put("system", "cuda_graphs", args.cuda_graphs)
    for item in args.set:
        merge_config(out, parse_override(item))
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = overrides_from_args(args)
        out = Path(args.out) if args.out else None
        resume, base = resume_point(args.resume, out)
        cfg = load_config(args.preset, args.config, overrides, base=base)
        out = out or (resume.parent if resume is not None else None)
        if args.print_config:
            print(cfg.to_yaml(), end="")
            return 0
        train(cfg, out, resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("\ninterrupted (exit 130)", file=sys.stderr)
        return 130
    except (ConfigError, CheckpointError, DatasetError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
