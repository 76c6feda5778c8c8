"""export_report.json / export_report.md: one entry per artifact, merged across runs in a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..spec import write_json_atomic

__all__ = ["REPORT_JSON", "REPORT_MD", "markdown_table", "update_report"]

REPORT_JSON = "export_report.json"
REPORT_MD = "export_report.md"


def update_report(out_dir: str | os.PathLike, entry: dict[str, Any]) -> tuple[Path, Path]:
    """Add or replace `entry` (keyed by its artifact file name) and rewrite both report files."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / REPORT_JSON, out_dir / REPORT_MD
    entries: dict[str, Any] = {}
    if json_path.is_file():
        try:
            entries = json.loads(json_path.read_text(encoding="utf-8")).get("artifacts", {})
        except (json.JSONDecodeError, AttributeError):
            entries = {}  # a corrupt report is rebuilt from this run on
    entries[entry["artifact"]] = entry
    write_json_atomic(json_path, {"artifacts": entries})
    tmp = md_path.with_name(md_path.name + ".tmp")
    tmp.write_text("# Export report\n\n" + markdown_table(list(entries.values())) + _notes(entries), encoding="utf-8")
    os.replace(tmp, md_path)
    return json_path, md_path


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return str(value)


def markdown_table(entries: list[dict[str, Any]]) -> str:
    """One row per artifact: size, status, heatmap difference, keypoint agreement, accuracy drop."""
    head = (
        "| artifact | format | precision | size (MB) | status | runner | max abs diff | mean abs diff | "
        "kp agreement % | metric | torch | exported | drop |\n"
    )
    rule = "|" + "---|" * 13 + "\n"
    rows = []
    for e in entries:
        v = e.get("verification", {})
        metric = v.get("metric")
        agreement = next((val for key, val in v.items() if key.startswith("kp_agreement")), None)
        rows.append(
            "| "
            + " | ".join(
                [
                    e["artifact"],
                    e["format"],
                    e["precision"],
                    _fmt(e.get("size_bytes", 0) / 1e6),
                    e["status"],
                    v.get("runner", "not run"),
                    _fmt(v.get("heatmap_max_abs_diff"), 4),
                    _fmt(v.get("heatmap_mean_abs_diff"), 5),
                    _fmt(agreement, 1),
                    metric or "-",
                    _fmt(v.get("torch", {}).get(metric)),
                    _fmt(v.get("exported", {}).get(metric)),
                    _fmt(v.get("drop")),
                ]
            )
            + " |"
        )
    return head + rule + "\n".join(rows) + "\n"


def _notes(entries: dict[str, Any]) -> str:
    lines = []
    for name, e in entries.items():
        for note in e.get("notes", []):
            lines.append(f"- `{name}`: {note}")
        if e.get("failure"):
            lines.append(f"- `{name}`: FAILED: {e['failure']}")
    return ("\n" + "\n".join(lines) + "\n") if lines else ""
