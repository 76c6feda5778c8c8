"""The end-of-run table: one row per branch (and the ensemble) with cost and accuracy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["HeadRow", "format_table", "metric_columns"]


@dataclass
class HeadRow:
    head: str  # b0, b1, ..., ensemble, or ref (the mean-pose reference)
    name: str  # student name (what students/ holds) or "ensemble (training net)"
    stacks: int | None  # total stacks of the student (trunk + branch)
    width: int | None  # branch width
    params: int
    macs: int
    compression_rate: float | None
    target: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gmacs"] = round(self.gmacs, 4)
        out.update({k: v for k, v in self.metrics.items() if isinstance(v, (int, float))})
        return out


def metric_columns(rows: list[HeadRow]) -> list[str]:
    """Scalar metrics present in the rows, in a fixed order (PCK first, then the AP family)."""
    order = ["pck@0.2", "pck@0.1", "pckh@0.5", "ap", "ap50", "ap75", "ar"]
    present = {k for r in rows for k, v in r.metrics.items() if isinstance(v, (int, float))}
    return [k for k in order if k in present]


def format_table(rows: list[HeadRow]) -> str:
    metrics = metric_columns(rows)
    header = ["head", "student", "stacks", "width", "params (M)", "GMACs", "compression", *[m.upper() for m in metrics]]
    lines = [header]
    for r in rows:
        lines.append(
            [
                r.head + (" *" if r.target else ""),
                r.name,
                "-" if r.stacks is None else str(r.stacks),
                "-" if r.width is None else str(r.width),
                f"{r.params / 1e6:.3f}",
                f"{r.gmacs:.3f}",
                "-" if r.compression_rate is None else f"{r.compression_rate:.2f}",
                *[f"{r.metrics[m]:.1f}" if isinstance(r.metrics.get(m), (int, float)) else "-" for m in metrics],
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append(
        "* = target student (the one to deploy); ref = the mean training pose in every box, what a network must beat;"
        " metrics in percent on the validation split"
    )
    return "\n".join(text)
