"""CLI: python -m okdhp_edge.data.rendered --out DIR --images N [--val M] --workers W"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields

from .assets import AssetError
from .generate import generate_dataset
from .scene import RenderConfig

KNOBS = [f for f in fields(RenderConfig) if f.name != "backgrounds"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m okdhp_edge.data.rendered",
        description="Write rendered people as a COCO-17 person-keypoints data set (COCO layout + MPII-layout JSON). "
        "Run it again with the same arguments to finish an interrupted set.",
    )
    p.add_argument("--out", required=True, help="output folder (new, empty, or an unfinished set to resume)")
    p.add_argument("--images", type=int, default=2000, help="training images (default 2000)")
    p.add_argument("--val", type=int, default=200, help="validation images (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers", type=int, default=1, help="processes drawing images (output is identical for any count)"
    )
    p.add_argument("--jpeg-quality", type=int, default=92)
    knobs = p.add_argument_group("generator knobs (RenderConfig; see docs/data.md)")
    knobs.add_argument("--backgrounds", metavar="DIR", help="draw the people on random crops of the photos in DIR")
    for f in KNOBS:
        default = getattr(RenderConfig(), f.name)
        name = f"--{f.name.replace('_', '-')}"
        if isinstance(default, tuple):
            knobs.add_argument(name, type=float, nargs="+", default=None, metavar="V", help=f"default {default}")
        elif isinstance(default, bool):
            knobs.add_argument(name, type=_yes_no, default=None, metavar="true|false", help=f"default {default}")
        else:
            knobs.add_argument(name, type=type(default), default=None, help=f"default {default}")
    return p


def _yes_no(text: str) -> bool:
    """A switch's value on the command line (bool("false") would be True)."""
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"write true or false, not {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in KNOBS if getattr(args, f.name) is not None}
    try:
        config = RenderConfig.with_knobs(overrides, args.backgrounds)
        start = time.perf_counter()
        out = generate_dataset(args.out, args.images, args.val, args.seed, config, args.jpeg_quality, args.workers)
    except (AssetError, ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    took = time.perf_counter() - start
    total = args.images + args.val
    print(f"wrote {total} images to {out} in {took:.1f} s ({total / max(took, 1e-9):.1f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
