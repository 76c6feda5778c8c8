"""Runtime latency of exported students: the Predictor end to end, per artifact, side by side.

Exports each student of a preset (trained ones from --students, else untrained ones: latency
does not depend on the weights) to ONNX FP32/INT8 and TFLite FP32/INT8, then times
`Predictor.predict` on one 640x480 frame with one person, every artifact at every thread count
interleaved in --rounds rounds (machines are noisy: each round sees the same load), and reports
the share spent in pre- and post-processing (goal: at most 15 % for the smallest edge student on
ONNX INT8).

    python benchmarks/runtime_latency.py                       # edge preset, untrained students
    python benchmarks/runtime_latency.py --students runs/x/students --runs 200 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import asdict
from pathlib import Path

from report import write_result

FORMATS = (("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="edge")
    parser.add_argument("--students", type=Path, help="directory of trained students (*.safetensors)")
    parser.add_argument("--branches", default="all", help="comma-separated branch indices, or 'all'")
    parser.add_argument("--runs", type=int, default=100, help="timed calls per artifact and thread count")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the runs are spread over")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "runtime_latency.json")
    args = parser.parse_args(argv)

    from export_matrix import find_students  # same student selection as the export matrix

    from okdhp_edge.export import export
    from okdhp_edge.models import get_preset
    from okdhp_edge.runtime.benchmark import format_table, sweep

    work = Path(tempfile.mkdtemp(prefix="okdhp-runtime-bench-"))
    every = range(len(get_preset(args.preset).branches))
    keep = list(every) if args.branches == "all" else [int(b) for b in args.branches.split(",")]
    students, _ = find_students(args.students, args.preset, keep, work)
    if args.students:
        students = [s for i, s in enumerate(students) if i in keep]
    artifacts = [
        export(
            student,
            format=fmt,
            precision=precision,
            out_dir=work / "exports",
            calib_images=args.calib_images,
            verify_images=0,
        ).artifact
        for student in students
        for fmt, precision in FORMATS
    ]
    threads = [int(t) for t in args.threads.split(",")]
    results = sweep(artifacts, threads=threads, runs=args.runs, rounds=args.rounds, warmup=10)
    print("\n" + format_table(results))
    write_result(
        args.json,
        {
            "preset": args.preset,
            "trained": bool(args.students),
            "threads": threads,
            "runs": args.runs,
            "rounds": args.rounds,
            "results": [asdict(r) for r in results],
        },
    )


if __name__ == "__main__":
    main()
