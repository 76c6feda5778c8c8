"""CLI: python -m okdhp_edge.data.synthetic --out DIR --train N --val M --seed S"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields

from .generate import generate_dataset
from .render import SceneConfig

NUMERIC_KNOBS = [f for f in fields(SceneConfig) if f.name != "backgrounds"]  # --backgrounds takes a folder instead


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m okdhp_edge.data.synthetic",
        description="Write a synthetic COCO-17 person-keypoints data set (COCO layout + MPII-layout JSON).",
    )
    p.add_argument("--out", required=True, help="output directory (must be empty or new)")
    p.add_argument("--train", type=int, default=2000, help="number of training images (default 2000)")
    p.add_argument("--val", type=int, default=200, help="number of validation images (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers", type=int, default=1, help="processes drawing images (output is identical for any count)"
    )
    p.add_argument("--jpeg-quality", type=int, default=92)
    p.add_argument("--overwrite", action="store_true", help="replace an existing data set in --out")
    knobs = p.add_argument_group("difficulty knobs (SceneConfig; see docs/data.md)")
    knobs.add_argument(
        "--backgrounds",
        metavar="DIR",
        help="draw the people on random crops of the photos in DIR "
        "(photos without people), instead of generated backgrounds",
    )
    for f in NUMERIC_KNOBS:
        default = getattr(SceneConfig(), f.name)
        if isinstance(default, tuple):
            knobs.add_argument(
                f"--{f.name.replace('_', '-')}",
                type=float,
                nargs=len(default),
                default=None,
                metavar="V",
                help=f"default {' '.join(map(str, default))}",
            )
        else:
            knobs.add_argument(
                f"--{f.name.replace('_', '-')}", type=type(default), default=None, help=f"default {default}"
            )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in NUMERIC_KNOBS if getattr(args, f.name) is not None}
    try:
        config = SceneConfig.with_knobs(overrides, args.backgrounds)
        start = time.perf_counter()
        out = generate_dataset(
            args.out, args.train, args.val, args.seed, config, args.jpeg_quality, args.workers, overwrite=args.overwrite
        )
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    took = time.perf_counter() - start
    total = args.train + args.val
    print(f"wrote {total} images to {out} in {took:.1f} s ({total / max(took, 1e-9):.0f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
