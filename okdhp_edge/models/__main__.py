"""`python -m okdhp_edge.models`: parameter / MAC table of every preset's branches."""

from __future__ import annotations

import argparse

from .cost import count_cost, meta_device
from .ensemble import EnsembleNet
from .presets import PRESETS, get_preset
from .student import branch_costs


def preset_table(names: list[str]) -> str:
    rows = [("preset", "network", "input", "params (M)", "GMACs", "compression")]
    for name in names:
        preset = get_preset(name)
        net_spec = preset.network_spec()
        with meta_device:
            net = EnsembleNet(net_spec)
        train_cost = count_cost(net, preset.input_size)
        size = f"{preset.input_size[0]}x{preset.input_size[1]}"
        rows.append(
            (
                name,
                f"training net (trunk {preset.trunk_stacks}x{preset.trunk_channels} + FAU)",
                size,
                f"{train_cost.mparams:.2f}",
                f"{train_cost.gmacs:.2f}",
                "-",
            )
        )
        costs = branch_costs(net_spec, preset.input_size)
        largest = max(c.macs for c in costs)
        for b, (branch, cost) in enumerate(zip(net_spec.branches, costs)):
            stacks = preset.trunk_stacks + branch.stacks
            rows.append(
                (
                    "",
                    f"student b{b}: {stacks} stacks, branch {branch.stacks}x{branch.channels}",
                    size,
                    f"{cost.mparams:.2f}",
                    f"{cost.gmacs:.3f}",
                    f"{cost.macs / largest:.2f}",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m okdhp_edge.models", description=__doc__)
    parser.add_argument(
        "presets", nargs="*", default=list(PRESETS), help=f"presets to list (default: all of {', '.join(PRESETS)})"
    )
    args = parser.parse_args(argv)
    for name in args.presets:
        if name not in PRESETS:
            parser.error(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    print(preset_table(args.presets))


if __name__ == "__main__":
    main()
