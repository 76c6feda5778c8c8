"""Latency benchmark for exported students through the runtime `Predictor`.

    python -m okdhp_edge.runtime.benchmark MODEL [MODEL ...] [--backend B] [--threads N] [--batch B] [--json out.json]

Times the whole `predict` call on a synthetic frame with B person boxes and reports the median
and 90th percentile latency, frames and people per second, and the share of the time spent in
pre-processing (checks, crops, normalisation) and post-processing (decoding) outside the network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import BackendUnavailableError, InputError, ModelFileError
from .predictor import Predictor

__all__ = ["BenchmarkResult", "benchmark", "build_parser", "main"]


@dataclass
class BenchmarkResult:
    model: str
    backend: str
    device: str
    precision: str
    batch: int
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
    if batch < 1 or runs < 1 or warmup < 0:
        raise ValueError("batch and runs must be >= 1 and warmup >= 0")
    predictor = Predictor(model, backend=backend, device=device, num_threads=threads, max_batch=batch)
    frame, boxes = synthetic_frame(*frame_size, batch)
    for _ in range(warmup):
        predictor.predict(frame, boxes, flip_test=flip_test)
    times = []
    for _ in range(runs):
        predictor.predict(frame, boxes, flip_test=flip_test)
        times.append(predictor.last_times)
    total = np.array([t.total for t in times])
    pre = sum(t.preprocess for t in times)
    post = sum(t.postprocess for t in times)
    median = float(np.median(total))
    return BenchmarkResult(
        model=str(model),
        backend=predictor.backend.name,
        device=predictor.backend.device,
        precision=predictor.backend.info.precision,
        batch=batch,
        threads=threads,
        flip_test=flip_test,
        runs=runs,
        median_ms=median * 1e3,
        p90_ms=float(np.percentile(total, 90)) * 1e3,
        inference_median_ms=float(np.median([t.inference for t in times])) * 1e3,
        fps=1.0 / median,
        people_per_s=batch / median,
        preprocess_share=pre / float(total.sum()),
        postprocess_share=post / float(total.sum()),
    )


def format_table(results: list[BenchmarkResult]) -> str:
    header = (
        f"{'model':<34} {'backend':<12} {'prec':<5} {'B':>2} {'median ms':>9} {'p90 ms':>8} {'FPS':>7} "
        f"{'pre %':>6} {'post %':>6}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(
            f"{Path(r.model).name[:34]:<34} {r.backend:<12} {r.precision:<5} {r.batch:>2} {r.median_ms:>9.2f} "
            f"{r.p90_ms:>8.2f} "
            f"{r.fps:>7.1f} {100 * r.preprocess_share:>6.1f} {100 * r.postprocess_share:>6.1f}"
        )
    return "\n".join(rows)


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame size {text!r} is not WIDTHxHEIGHT") from None
    return w, h


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
    parser.add_argument("--threads", type=int, help="CPU threads for the backend (default: the backend's own)")
    parser.add_argument("--batch", type=int, default=1, help="people per frame (default 1)")
    parser.add_argument("--runs", type=int, default=50, help="timed predict calls per model (default 50)")
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
    results = []
    for model in args.models:
        try:
            results.append(
                benchmark(
                    model,
                    args.backend,
                    args.device,
                    args.threads,
                    args.batch,
                    args.runs,
                    args.warmup,
                    args.flip_test,
                    args.frame,
                )
            )
        except (ModelFileError, BackendUnavailableError, InputError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{model}: {results[-1].median_ms:.2f} ms median", file=sys.stderr)
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        }
        payload = {"machine": machine, "frame": list(args.frame), "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
