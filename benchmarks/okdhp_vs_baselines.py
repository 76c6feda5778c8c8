"""Does online distillation help? The same target student trained three ways, several seeds each.

  single       the target student (trunk + its branch) trained alone
  independent  the full multi-branch network without distillation (no KL, no ensemble loss)
  okdhp        unbalanced OKDHP (the default mode)

Same data, epochs, batch size and lr for every variant ("same budget" = same images seen).
Plus an ablation of the KL temperature and of detaching the ensemble target (okdhp only).
Prints mean +- std of the target student's PCK@0.2, PCK@0.1 and OKS AP and writes JSON.

Full run (tens of minutes on a 2-core CPU):
    python benchmarks/okdhp_vs_baselines.py
A quick check that it works:
    python benchmarks/okdhp_vs_baselines.py --seeds 0 --epochs 1 --train-images 40 --val-images 10 \
        --ablation-temperatures 1.0 --no-detach-ablation
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from okdhp_edge.spec import write_json_atomic  # noqa: E402
from okdhp_edge.train import load_config, train  # noqa: E402

METRICS = ("pck@0.2", "pck@0.1", "ap")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--modes",
        nargs="*",
        default=["single", "independent", "okdhp"],
        choices=["single", "independent", "okdhp"],
        help="baseline rows to run; give none (bare --modes) to run only the ablation rows",
    )
    p.add_argument("--epochs", type=int, help="default: the preset's")
    p.add_argument("--train-images", type=int, help="synthetic training images (default: the preset's)")
    p.add_argument("--val-images", type=int, help="synthetic validation images (default: the preset's)")
    p.add_argument(
        "--ablation-temperatures",
        type=float,
        nargs="*",
        default=[1.0, 0.3, 0.05],
        help="extra okdhp runs at these KL temperatures (the preset's own value is the main okdhp row)",
    )
    p.add_argument(
        "--no-detach-ablation", action="store_true", help="skip the okdhp run with a non-detached ensemble target"
    )
    p.add_argument("--ablation-seeds", type=int, nargs="+", help="seeds for the ablation rows (default: --seeds)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--amp",
        default="off",
        choices=["off", "bf16", "fp16"],
        help="one precision for every run (channels_last too), so variants differ only in what is compared; "
        "default off = fp32, as the committed results",
    )
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench-okdhp-vs-baselines")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "okdhp_vs_baselines.json")
    return p.parse_args(argv)


def variants(args: argparse.Namespace, base_temperature: float) -> list[dict]:
    """(name, mode, loss overrides, seeds) of every row."""
    rows = [{"variant": mode, "mode": mode, "loss": {}, "seeds": args.seeds} for mode in args.modes]
    ablation_seeds = args.ablation_seeds or args.seeds
    for t in args.ablation_temperatures:
        if t != base_temperature:
            rows.append(
                {"variant": f"okdhp T={t:g}", "mode": "okdhp", "loss": {"kl_temperature": t}, "seeds": ablation_seeds}
            )
    if not args.no_detach_ablation:
        rows.append(
            {"variant": "okdhp no-detach", "mode": "okdhp", "loss": {"detach_target": False}, "seeds": ablation_seeds}
        )
    return rows


def run_one(args: argparse.Namespace, variant: dict, seed: int) -> dict:
    overrides: dict = {
        "mode": variant["mode"],
        "system": {"seed": seed, "amp": args.amp, "channels_last": True},
        "loss": dict(variant["loss"]),
        "eval": {"samples": 0},
    }
    data = {k: v for k, v in (("train_images", args.train_images), ("val_images", args.val_images)) if v is not None}
    if data:
        overrides["data"] = data
    if args.epochs is not None:
        overrides["optim"] = {"epochs": args.epochs}
    if args.threads is not None:
        overrides["system"]["threads"] = args.threads
    cfg = load_config(args.preset, overrides=overrides)
    out = args.workdir / f"{variant['variant'].replace(' ', '_').replace('=', '')}-seed{seed}"
    start = time.perf_counter()
    result = train(cfg, out, progress=False)
    row = next(r for r in result.rows if r.target)
    return {
        "seed": seed,
        **{k: row.metrics.get(k) for k in METRICS},
        "student": row.name,
        "time_s": round(time.perf_counter() - start, 1),
        "run": str(out),
    }


def summarize(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = load_config(args.preset)
    rows = variants(args, base.loss.kl_temperature)
    total = sum(len(r["seeds"]) for r in rows)
    done = 0
    for row in rows:
        row["runs"] = []
        for seed in row["seeds"]:
            done += 1
            print(f"[{done}/{total}] {row['variant']} seed {seed}", flush=True)
            row["runs"].append(run_one(args, row, seed))
        for key in METRICS:
            values = [r[key] for r in row["runs"] if r[key] is not None]
            if values:
                row[f"{key}_mean"], row[f"{key}_std"] = summarize(values)
    reference = next((r for r in rows if r["variant"] == "single"), None)
    header = f"{'variant':<20} {'seeds':>5} {'PCK@0.2':>14} {'PCK@0.1':>14} {'AP':>14} {'dPCK@0.2 vs single':>19}"
    lines = [header, "-" * len(header)]
    for row in rows:
        delta = row["pck@0.2_mean"] - reference["pck@0.2_mean"] if reference else float("nan")
        cells = " ".join(
            f"{row.get(k + '_mean', float('nan')):>7.2f} +- {row.get(k + '_std', 0.0):<4.2f}" for k in METRICS
        )
        lines.append(f"{row['variant']:<20} {len(row['runs']):>5} {cells} {delta:>+19.2f}")
    table = "\n".join(lines)
    print(f"\ntarget student of preset {args.preset} (metrics in percent, synthetic validation split)\n{table}")
    write_json_atomic(
        args.out,
        {
            "benchmark": "okdhp_vs_baselines",
            "preset": args.preset,
            "command": " ".join(["python", *sys.argv]),
            "config": base.to_dict()
            | {"overrides": {"epochs": args.epochs, "train_images": args.train_images, "val_images": args.val_images}},
            "rows": rows,
            "table": table,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
