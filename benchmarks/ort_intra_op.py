"""One intra-op thread or two for a student's ONNX Runtime session on the CPU: one crop per call,
and six crops run as two parallel halves (what a `Predictor` with num_threads=2 does), the sessions
opened as the runtime opens them (spinning while a run lasts, unless OKDHP_EDGE_ORT_SPINNING says
otherwise). Decides the two sessions of okdhp_edge/runtime/backends/onnx.py: one call on
num_threads threads, concurrent parts on one thread each.

The settings of a model are timed in rounds that rotate their order, so all see the same machine
load; prints and writes the median over rounds of each round's median call time.

    python benchmarks/ort_intra_op.py [MODEL.onnx ...] [--rounds 10] [--calls 50]

Default model: the bundled `real-tiny`. The edge students' INT8 files come from
`python -m okdhp_edge.export STUDENT --format onnx --precision int8` (benchmarks/export_matrix.py
--keep DIR writes them all).
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from report import write_result

from okdhp_edge.runtime import bundled_models
from okdhp_edge.runtime.backends import read_embedded_spec
from okdhp_edge.runtime.backends.onnx_session import open_session, spinning

HERE = Path(__file__).parent
SETTINGS = [(threads, crops) for crops in (1, 6) for threads in (1, 2)]  # (intra-op threads, crops per call)


def time_model(path: Path, rounds: int, calls: int) -> dict[str, float]:
    sessions = {t: open_session(path, ["CPUExecutionProvider"], t, "re-export it") for t in (1, 2)}
    spec = read_embedded_spec(path)
    w, h = spec.input_size
    name = sessions[1].get_inputs()[0].name
    shape = (h, w, 3) if spec.export_info.input_layout == "NHWC" else (3, h, w)
    batch = np.random.default_rng(0).random((6, *shape), dtype=np.float32)
    pool = ThreadPoolExecutor(1)

    def call(threads: int, crops: int) -> None:
        session = sessions[threads]
        if crops == 1:
            session.run(None, {name: batch[:1]})
            return
        other = pool.submit(session.run, None, {name: batch[3:]})  # the two halves at once
        session.run(None, {name: batch[:3]})
        other.result()

    for setting in SETTINGS:
        for _ in range(10):
            call(*setting)
    medians: dict[tuple[int, int], list[float]] = {s: [] for s in SETTINGS}
    for r in range(rounds):
        order = SETTINGS[r % len(SETTINGS) :] + SETTINGS[: r % len(SETTINGS)]
        for setting in order:
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                call(*setting)
                times.append(time.perf_counter() - start)
            medians[setting].append(statistics.median(times))
    pool.shutdown()
    return {
        "macs": spec.macs,
        **{f"intra{t}_crops{c}_ms": round(statistics.median(v) * 1e3, 3) for (t, c), v in medians.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, default=[bundled_models("onnx")["real-tiny"]])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=50, help="timed calls per setting and round")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "ort_intra_op.json")
    args = parser.parse_args()
    results = {}
    for path in args.models:
        row = results[path.name] = time_model(path, args.rounds, args.calls)
        print(
            f"{path.name:<28} {row['macs'] / 1e9:.3f} GMACs | 1 crop: 1 thread {row['intra1_crops1_ms']:.2f} ms, "
            f"2 threads {row['intra2_crops1_ms']:.2f} | 6 crops in 2 halves: 1 thread each "
            f"{row['intra1_crops6_ms']:.2f}, 2 threads each {row['intra2_crops6_ms']:.2f}",
            flush=True,
        )
    settings = {"rounds": args.rounds, "calls": args.calls, "spinning": spinning()}
    write_result(args.json, {"settings": settings, "results": results})


if __name__ == "__main__":
    main()
