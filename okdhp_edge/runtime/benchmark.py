"""Latency benchmark for exported students through the runtime `Predictor`.

    python -m okdhp_edge.runtime.benchmark MODEL [MODEL ...] [--people 1,3,6] [--threads 1,2] [--json out.json]

Times whole `predict` calls on a synthetic frame with P person boxes for every model x threads x
people combination, interleaved in rounds (each round runs every combination, in alternating
order) so that load from other work on a shared machine falls on all of them alike, and reports
per combination the median and 90th percentile latency, the time per person, its ratio to one
person alone on the same threads, frames and people per second, and the share of the time spent
in pre-processing (checks, crops, normalisation) and post-processing (decoding) outside the network.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import BackendUnavailableError, InputError, ModelFileError
from .predictor import Predictor
from .result import StageTimes

__all__ = ["BenchmarkResult", "benchmark", "build_parser", "main", "sweep"]


@dataclass
class BenchmarkResult:
    model: str
    backend: str
    device: str
    precision: str
    batch: int  # people per frame, all in one predict call
    threads: int | None
    flip_test: bool
    runs: int
    median_ms: float
    p90_ms: float
    inference_median_ms: float
    fps: float  # frames (predict calls) per second at the median latency
    people_per_s: float
    preprocess_share: float  # fraction of total time, 0..1
    postprocess_share: float
    ms_per_person: float  # median_ms / batch
    # ms_per_person / the median of 1 person on the same model and threads (None without that run)
    per_person_vs_one: float | None = None

    @property
    def overhead_share(self) -> float:
        return self.preprocess_share + self.postprocess_share


def synthetic_frame(width: int, height: int, people: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured BGR frame and `people` person-shaped boxes spread across it."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    slot = width / people
    boxes = np.array(
        [[i * slot + 0.1 * slot, 0.1 * height, (i + 1) * slot - 0.1 * slot, 0.95 * height] for i in range(people)],
        np.float32,
    )
    return frame, boxes


def sweep(
    models: Sequence[str | os.PathLike],
    threads: Sequence[int | None] = (None,),
    people: Sequence[int] = (1,),
    backend: str | None = None,
    device: str = "auto",
    runs: int = 50,
    rounds: int = 10,
    warmup: int = 5,
    flip_test: bool = False,
    frame_size: tuple[int, int] = (640, 480),
) -> list[BenchmarkResult]:
    """Time `runs` predict calls per model x threads x people, spread over `rounds` interleaved rounds.

    One Predictor per model and thread count serves every people count, so the combinations differ
    only in the number of boxes; `warmup` untimed calls per combination come first.
    """
    if min(people, default=0) < 1 or runs < 1 or rounds < 1 or warmup < 0:
        raise ValueError("people and runs must be >= 1, rounds >= 1 and warmup >= 0")
    predictors = {
        (m, t): Predictor(m, backend=backend, device=device, num_threads=t, max_batch=max(people))
        for m, t in itertools.product(models, threads)
    }
    frames = {p: synthetic_frame(*frame_size, p) for p in people}
    combos = list(itertools.product(models, threads, people))
    for m, t, p in combos:
        for _ in range(warmup):
            predictors[m, t].predict(*frames[p], flip_test=flip_test)
    times: dict[tuple[str | os.PathLike, int | None, int], list[StageTimes]] = {c: [] for c in combos}
    per_round = -(-runs // rounds)
    for r in range(rounds):
        for m, t, p in combos if r % 2 == 0 else combos[::-1]:
            predictor, timed = predictors[m, t], times[m, t, p]
            for _ in range(min(per_round, runs - len(timed))):
                predictor.predict(*frames[p], flip_test=flip_test)
                timed.append(predictor.last_times)
    results = {c: _summarise(str(c[0]), predictors[c[:2]], c[1], c[2], flip_test, times[c]) for c in combos}
    for (m, t, _), result in results.items():
        alone = results.get((m, t, 1))
        if alone is not None:
            result.per_person_vs_one = result.ms_per_person / alone.median_ms
    return list(results.values())


def benchmark(
    model: str | os.PathLike,
    backend: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    batch: int = 1,
    runs: int = 50,
    warmup: int = 5,
    flip_test: bool = False,
    frame_size: tuple[int, int] = (640, 480),
) -> BenchmarkResult:
    """Time `runs` predict calls (after `warmup` untimed ones) with `batch` people per frame."""
    return sweep([model], [threads], [batch], backend, device, runs, 1, warmup, flip_test, frame_size)[0]


def _summarise(
    model: str, predictor: Predictor, threads: int | None, people: int, flip_test: bool, times: list[StageTimes]
) -> BenchmarkResult:
    total = np.array([t.total for t in times])
    median = float(np.median(total))
    return BenchmarkResult(
        model=model,
        backend=predictor.backend.name,
        device=predictor.backend.device,
        precision=predictor.backend.info.precision,
        batch=people,
        threads=threads,
        flip_test=flip_test,
        runs=len(times),
        median_ms=median * 1e3,
        p90_ms=float(np.percentile(total, 90)) * 1e3,
        inference_median_ms=float(np.median([t.inference for t in times])) * 1e3,
        fps=1.0 / median,
        people_per_s=people / median,
        preprocess_share=sum(t.preprocess for t in times) / float(total.sum()),
        postprocess_share=sum(t.postprocess for t in times) / float(total.sum()),
        ms_per_person=median * 1e3 / people,
    )


def format_table(results: list[BenchmarkResult]) -> str:
    header = (
        f"{'model':<34} {'backend':<12} {'prec':<5} {'thr':>3} {'P':>2} {'median ms':>9} {'p90 ms':>8} "
        f"{'ms/person':>9} {'vs 1':>5} {'FPS':>7} {'pre %':>6} {'post %':>6}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        ratio = "-" if r.per_person_vs_one is None else f"{r.per_person_vs_one:.2f}"
        rows.append(
            f"{Path(r.model).name[:34]:<34} {r.backend:<12} {r.precision:<5} {r.threads or '-':>3} {r.batch:>2} "
            f"{r.median_ms:>9.2f} {r.p90_ms:>8.2f} {r.ms_per_person:>9.2f} {ratio:>5} {r.fps:>7.1f} "
            f"{100 * r.preprocess_share:>6.1f} {100 * r.postprocess_share:>6.1f}"
        )
    return "\n".join(rows)


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame size {text!r} is not WIDTHxHEIGHT") from None
    return w, h


def _counts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every count must be >= 1")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m okdhp_edge.runtime.benchmark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="exported model(s) or .safetensors student(s)")
    parser.add_argument("--backend", help="force a backend (default: from each model's suffix)")
    parser.add_argument(
        "--device",
        default="auto",
        help="where the backend runs: auto (default; the backend's fastest for this file), cpu, cuda, "
        "tensorrt, coreml; Core ML also ane, gpu (see docs/runtime.md)",
    )
    parser.add_argument(
        "--threads",
        type=_counts,
        metavar="N[,N...]",
        help="CPU threads for the backend, one or a list to compare (default: the backend's own)",
    )
    parser.add_argument(
        "--people",
        "--batch",
        type=_counts,
        default=[1],
        metavar="P[,P...]",
        help="people per frame, one or a list to compare, e.g. 1,3,6 (default 1)",
    )
    parser.add_argument("--runs", type=int, default=50, help="timed predict calls per combination (default 50)")
    parser.add_argument(
        "--rounds", type=int, default=10, help="interleaved rounds the runs are spread over (default 10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed calls first, for lazy initialisation (default 5)"
    )
    parser.add_argument(
        "--flip-test", action="store_true", help="also run the mirrored crops and average (2x the inference)"
    )
    parser.add_argument(
        "--frame", type=_frame_size, default=(640, 480), metavar="WxH", help="frame size (default 640x480)"
    )
    parser.add_argument("--json", type=Path, help="also write the results (and machine info) as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = sweep(
            args.models,
            args.threads or [None],
            args.people,
            args.backend,
            args.device,
            args.runs,
            args.rounds,
            args.warmup,
            args.flip_test,
            args.frame,
        )
    except (ModelFileError, BackendUnavailableError, InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        }
        payload = {
            "machine": machine,
            "frame": list(args.frame),
            "rounds": args.rounds,
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
