"""ONNX Runtime's intra-op spinning off, "run" (spin inside a run, stop at its end; the runtime's
default) and on, in the detector's and the pose student's sessions alike: the student on one
person, on all the people found (several at once run as parts on one-thread sessions, which never
spin), and a detector and the student alternating as PoseTracker runs them; at 1 and 2 threads.
Decides the runtime's default (backends/onnx_session.py, OKDHP_EDGE_ORT_SPINNING; docs/runtime.md Threads).

One vtest.avi frame (640x480, frame 400), the shipped detector `okdhp-person` and a pose student
(`--model`: the bundled `real-tiny` or an edge student's INT8 .onnx) on the people the detector
finds. Every setting's Detector and Predictor are opened first (OKDHP_EDGE_ORT_SPINNING is read
when a session opens); then each round times every setting once, in an order that rotates between
rounds, so all see the same machine load. Prints and writes the median over rounds of each round's
median call time.

    python benchmarks/ort_spinning.py [--model EDGE-INT8.onnx] [--rounds 7] [--calls 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from footage import footage_dir, read_clip
from report import write_result

from okdhp_edge.runtime import Detector, Predictor
from okdhp_edge.runtime.backends.onnx_session import SPINNING_ENV

HERE = Path(__file__).parent
MODES = {"off": "0", "run": "run", "on": "1"}  # setting -> OKDHP_EDGE_ORT_SPINNING
SETTINGS = [(spin, threads) for threads in (1, 2) for spin in MODES]


def open_pair(model: str, spin: str, threads: int) -> tuple[Detector, Predictor]:
    try:
        os.environ[SPINNING_ENV] = MODES[spin]
        return Detector("okdhp-person", num_threads=threads), Predictor(model, backend="onnx", num_threads=threads)
    finally:
        del os.environ[SPINNING_ENV]


def median_ms(pair: tuple[Detector, Predictor], frame, boxes, calls: int, detect: bool) -> float:
    """Median ms of `calls` pose calls on `boxes`, each after a detection on the frame when `detect`."""
    detector, predictor = pair
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        predictor.predict(frame, detector.detect(frame)[:, :4] if detect else boxes)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="real-tiny", help="pose student: a bundled name or an .onnx file")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=40, help="timed calls per setting and round")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "ort_spinning.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()  # other jobs on a shared machine: the figures are read against it
    frame = read_clip(footage_dir() / "vtest.avi", start=400, frames=1, size=(640, 480))[0]
    pairs = {s: open_pair(args.model, *s) for s in SETTINGS}
    boxes = pairs[SETTINGS[0]][0].detect(frame)[:, :4]
    for detector, predictor in pairs.values():  # warm-up
        detector.detect(frame)
        predictor.predict(frame, boxes)
    one: dict[tuple[str, int], list[float]] = {s: [] for s in SETTINGS}
    alone: dict[tuple[str, int], list[float]] = {s: [] for s in SETTINGS}
    both: dict[tuple[str, int], list[float]] = {s: [] for s in SETTINGS}
    for r in range(args.rounds):
        for s in SETTINGS[r % len(SETTINGS) :] + SETTINGS[: r % len(SETTINGS)]:
            one[s].append(median_ms(pairs[s], frame, boxes[:1], args.calls, detect=False))
            alone[s].append(median_ms(pairs[s], frame, boxes, args.calls, detect=False))
            both[s].append(median_ms(pairs[s], frame, boxes, args.calls, detect=True))
    rows = []
    for spin, threads in SETTINGS:
        row = {
            "spinning": spin,
            "threads": threads,
            "one_person_ms": statistics.median(one[spin, threads]),
            "pose_alone_ms": statistics.median(alone[spin, threads]),
            "detect_and_pose_ms": statistics.median(both[spin, threads]),
        }
        rows.append(row)
        print(
            f"spinning {spin:4} {threads} thread(s): one person {row['one_person_ms']:.2f} ms, "
            f"pose alone {row['pose_alone_ms']:.2f} ms, "
            f"detector + pose {row['detect_and_pose_ms']:.2f} ms"
        )
    for threads in (1, 2):
        off = next(r for r in rows if r["spinning"] == "off" and r["threads"] == threads)
        for other in ("run", "on"):
            row = next(r for r in rows if r["spinning"] == other and r["threads"] == threads)
            print(
                f"{threads} thread(s), off / {other}: one person {off['one_person_ms'] / row['one_person_ms']:.2f}, "
                f"pose alone {off['pose_alone_ms'] / row['pose_alone_ms']:.2f}, "
                f"detector + pose {off['detect_and_pose_ms'] / row['detect_and_pose_ms']:.2f}"
            )
    report = {
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "model": args.model,
        "people": int(len(boxes)),
        "rounds": args.rounds,
        "calls": args.calls,
        "results": rows,
    }
    write_result(args.json, report)


if __name__ == "__main__":
    main()
