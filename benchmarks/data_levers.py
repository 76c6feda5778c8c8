"""Which training data carries to scenes no run saw: the default training command (`tiny`, minutes
of CPU) run once per data source ("lever") and seed, each student scored on the real multi-scene
dev set (real_scenes.py) per scene and over its held-out scenes.

    python benchmarks/data_levers.py                                  # every lever, seeds 0 and 1
    python benchmarks/data_levers.py --lever synthetic --lever rendered --seeds 0

Each run trains into runs/levers/<lever>-s<seed> with the same speed switches as `make demo`;
a finished run (its target student written) is scored again, not retrained, and an interrupted
one resumes from its last checkpoint. Results: benchmarks/results/data_levers.json (every seed's
figures) and a table of OKS AP / PCK@0.2 per scene, means over the seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from real_scenes import MANIFEST, OUT, SceneSetError, build, score  # noqa: E402

from okdhp_edge.data.backgrounds import default_bank_dir  # noqa: E402
from okdhp_edge.data.label import open_teacher  # noqa: E402

RUNS = HERE.parent / "runs" / "levers"
RESULTS = HERE / "results" / "data_levers.json"
SPEED = ("--amp", "bf16", "--channels-last")  # make demo's DEMO_SPEED, less its --threads 2 (--threads)
BANK = str(default_bank_dir())  # python -m okdhp_edge.data.backgrounds --out <it>
# name -> the train command's data arguments; the default command's data is the first
LEVERS: dict[str, tuple[str, ...]] = {
    "synthetic": ("--data", "synthetic"),
    "rendered": ("--data", "rendered"),
    "rendered-bank": ("--data", "rendered", "--set", f"data.backgrounds={BANK}"),
    # the renderer before 2026-12-08 (one shade per face), the shipped students' recipe
    "rendered-bank-flat": (
        "--data",
        "rendered",
        "--set",
        f"data.backgrounds={BANK}",
        "--set",
        "data.scene.smooth_shading=false",
    ),
    "rendered-bank+pasted": (
        "--data",
        "rendered+pasted",
        "--set",
        f"data.backgrounds={BANK}",
        "--set",
        "data.val_source=rendered",
    ),
    "synthetic+rendered": ("--data", "synthetic+rendered", "--set", "data.val_source=rendered"),
}


def train(lever: str, seed: int, runs: Path = RUNS, threads: int = 2) -> Path:
    """The lever's student (trained now unless a finished run is there)."""
    out = runs / f"{lever}-s{seed}"
    student = out / "students" / "target.safetensors"
    if student.is_file():
        return student
    command = [sys.executable, "-m", "okdhp_edge.train", "--out", str(out), "--seed", str(seed), "--no-progress"]
    command += [*LEVERS[lever], *SPEED, "--threads", str(threads), "--resume", "auto"]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    return student


def _threads(student: Path) -> int | None:
    """The torch threads the run of `student` trained with (its config.yaml)."""
    config = yaml.safe_load((student.parents[1] / "config.yaml").read_text(encoding="utf-8"))
    return config["system"]["threads"]


def _summary(rows: dict[str, dict], levers: list[str], seeds: list[int]) -> dict[str, dict]:
    """Per lever and scene: OKS AP and PCK@0.2 of each seed and their means."""
    scenes = list(next(iter(rows.values())))
    return {
        lever: {
            scene: {metric: [rows[f"{lever}-s{s}"][scene][metric] for s in seeds] for metric in ("ap", "pck@0.2")}
            for scene in scenes
        }
        for lever in levers
    }


def _table(summary: dict[str, dict], manifest: dict) -> str:
    """Mean over seeds of AP / PCK@0.2 per scene (held-out scenes marked *). Near-zero APs on scenes
    of 2-6 people move by tens of points with one person; PCK@0.2 shows more where the AP is ~0."""
    scenes = list(next(iter(summary.values())))
    mark = {s: "*" if manifest["scenes"].get(s, {}).get("use") == "held-out" else "" for s in scenes}
    lines = ["| data | " + " | ".join(f"{s}{mark[s]}" for s in scenes) + " |", "|---|" + "---:|" * len(scenes)]
    for lever, row in summary.items():
        cells = [f"{statistics.fmean(row[s]['ap']):.1f} / {statistics.fmean(row[s]['pck@0.2']):.1f}" for s in scenes]
        lines.append(f"| {lever} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lever", action="append", choices=tuple(LEVERS), help="repeatable; default: all")
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run (make demo: 2)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    levers = args.lever or list(LEVERS)
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        manifest = (
            json.loads((OUT / MANIFEST).read_text(encoding="utf-8")) if (OUT / MANIFEST).is_file() else build(OUT)
        )
    except SceneSetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    students = {f"{lever}-s{seed}": train(lever, seed, args.runs, args.threads) for lever in levers for seed in seeds}
    rows = score({name: open_teacher(str(path), 1) for name, path in students.items()}, OUT)
    summary = _summary(rows, levers, seeds)
    table = _table(summary, manifest)
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": "python benchmarks/" + Path(__file__).name + " " + " ".join(argv or sys.argv[1:]),
        "train": {lever: ["python", "-m", "okdhp_edge.train", *LEVERS[lever], *SPEED] for lever in levers},
        # threads change how sums round; each run's own (an earlier run may have used others)
        "threads": {name: _threads(path) for name, path in students.items()},
        "seeds": seeds,
        "held_out": manifest["held_out"],
        "summary": summary,
        "scores": rows,
        "table": table,
    }
    args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
