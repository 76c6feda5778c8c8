"""One Predictor shared by threads: this SDK's per-thread LiteRT interpreters against one
interpreter behind a lock (the other way to make LiteRT thread-safe), calls per second.

Each round runs THREADS threads x CALLS predict calls (one person, 640x480 frame) on one shared
Predictor, first as the runtime does it, then with every call serialised by a lock; rounds
alternate so both see the same machine load. Prints the median of the rounds.

    python benchmarks/runtime_threads.py MODEL.tflite [MODEL ...] --threads 4 --calls 50 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from report import write_result

from okdhp_edge.runtime import Predictor
from okdhp_edge.runtime.benchmark import synthetic_frame


def calls_per_second(predictor: Predictor, threads: int, calls: int, lock: threading.Lock | None) -> float:
    frame, boxes = synthetic_frame(640, 480, 1)
    guard = lock or nullcontext()
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for _ in range(calls):
            with guard:
                predictor.predict(frame, boxes)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    return threads * calls / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help=".tflite artifacts (any artifact works)")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing one Predictor (default 4)")
    parser.add_argument("--calls", type=int, default=50, help="predict calls per thread and round (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per mode (default 5)")
    parser.add_argument("--num-threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "runtime_threads.json")
    args = parser.parse_args(argv)
    rows = []
    for model in args.models:
        predictor = Predictor(model, num_threads=args.num_threads)
        calls_per_second(predictor, args.threads, 2, None)  # warm-up: every thread's interpreter exists
        shared, locked = [], []
        for _ in range(args.rounds):
            shared.append(calls_per_second(predictor, args.threads, args.calls, None))
            locked.append(calls_per_second(predictor, args.threads, args.calls, threading.Lock()))
        row = {
            "model": model.name,
            "backend": predictor.backend.describe(),
            "threads": args.threads,
            "num_threads": args.num_threads,
            "per_thread_calls_per_s": statistics.median(shared),
            "locked_calls_per_s": statistics.median(locked),
        }
        rows.append(row)
        print(
            f"{model.name}: per-thread interpreters {row['per_thread_calls_per_s']:.1f} calls/s, "
            f"one interpreter behind a lock {row['locked_calls_per_s']:.1f} calls/s "
            f"({args.threads} threads, {os.cpu_count()} CPUs)"
        )
    write_result(args.json, {"rounds": args.rounds, "results": rows})


if __name__ == "__main__":
    main()
