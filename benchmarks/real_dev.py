"""How well students pose real people: OKS AP against the teacher's labels on held-out real frames,
and latency against the teacher, side by side in one run.

The dev set is rebuilt, never committed: vtest.avi (opencv-doc, 795 frames of pedestrians) labelled
by BlazePose Full with the MediaPipe detector on 6 tiles (`python -m okdhp_edge.data.label`, the
settings below). Its val split is the clip's last 20 %, 30 frames after the last training frame,
so no dev frame sits next to a training frame. Labels are the teacher's confident, flip- and
time-consistent keypoints; AP counts only those.

    python benchmarks/real_dev.py --model shipped=real-tiny \
        --model demo=runs/demo/export/target-int8.onnx [--model okdhp/s0=... --model alone/s0=...]

Rows: every --model, and the teacher on the mirrored frames (its own consistency: the ceiling).
Names GROUP/RUN are also summarised per group (mean and spread), for seed comparisons.
Latency (left out with --accuracy-only, as is the teacher's row; --latency-only leaves out the
scores): one person per call (crop, run, decode), median over interleaved rounds, at each of
--threads (e.g. 1,2; accuracy runs at the first), against BlazePose Full in the same rounds (one
pass per person, as an app runs it; the teacher's labelling runs it twice, the second on the
refined region). Writes benchmarks/results/real_dev.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from footage import LABELLED_CLIP, footage_dir
from report import write_result

from okdhp_edge.data import DatasetError, build_dataset
from okdhp_edge.data.label import LabelConfig, label, open_teacher, teacher_regions
from okdhp_edge.data.label_filter import flip_back, mirror_boxes
from okdhp_edge.eval import Evaluator
from okdhp_edge.runtime.landmarker import BlazePoseLandmarker, LandmarkerConfig
from okdhp_edge.skeleton import COCO17
from okdhp_edge.spec import InputSpec

HERE = Path(__file__).parent
TEACHER = "blazepose-full"
REFERENCE = "blazepose-full"  # the latency yardstick: BlazePose Full, one pass per person
DETECTOR_TILES = 6
LABELLING = LabelConfig(val_fraction=0.2, val_gap=30)


def ensure_dev_set(out: Path, threads: int | None) -> Path:
    """The labelled clip (labelled once, resumable; the same command docs/data.md shows)."""
    if not (out / "annotations" / "person_keypoints_val.json").is_file():
        video = footage_dir() / "vtest.avi"
        label(
            [video],
            TEACHER,
            out,
            detector="mediapipe",  # as weights/real-tiny/data.sh labels vtest.avi (step 2)
            detector_tiles=DETECTOR_TILES,
            config=LABELLING,
            num_threads=threads,
        )
    return out


class Mirrored:
    """The teacher run on the mirrored frame, answered in the frame's own coordinates: its own
    consistency, the ceiling. It gets the regions the labeller gives it (teacher_regions)."""

    def __init__(self, model) -> None:
        self.model, self.skeleton = model, model.skeleton

    def predict(self, image: np.ndarray, boxes: np.ndarray):
        height, width = image.shape[:2]
        regions = teacher_regions(boxes, height, LabelConfig().cut_body_widths)
        result = self.model.predict(np.ascontiguousarray(image[:, ::-1]), mirror_boxes(regions, width))
        flip = list(self.skeleton.flip_index)
        return replace(
            result,
            keypoints=flip_back(result.keypoints, width, flip).astype(np.float32),
            scores=result.scores[:, flip],
            boxes=boxes,
        )


def open_models(items: list[str], threads: int | None, parser: argparse.ArgumentParser) -> dict:
    """--model NAME=PATH arguments -> {NAME: a model the labeller can run}; a bad one is a usage error."""
    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--model {item!r}: write NAME=PATH")
        try:
            models[name] = open_teacher(path, threads)
        except (DatasetError, OSError) as err:
            parser.error(f"--model {item}: {err}")
    return models


def score(model, dataset) -> dict:
    """OKS AP / PCK of `model` on the dev set's labelled people, on the labelled boxes."""
    evaluator = Evaluator(dataset)
    by_image = defaultdict(list)
    for i, sample in enumerate(dataset.samples):
        by_image[sample.image_path].append(i)
    for path, indices in by_image.items():
        image = cv2.imread(str(path))
        boxes = np.stack([dataset.samples[i].bbox for i in indices]).astype(np.float32)
        result = model.predict(image, boxes)
        evaluator.add(result.keypoints, result.scores, np.asarray(indices))
    metrics = evaluator.compute()
    return {
        "ap": metrics["ap"],
        "ap50": metrics["ap50"],
        "ar": metrics["ar"],
        "pck@0.2": metrics["pck@0.2"],
        "people": metrics["samples"],
    }


def latency(models: dict, image: np.ndarray, box: np.ndarray, rounds: int, runs: int) -> dict[str, float]:
    """Median ms per person, the models taking turns round by round so load hits them alike."""
    times = defaultdict(list)
    for model in models.values():
        model.predict(image, box)
    for _ in range(rounds):
        for name, model in models.items():
            for _ in range(runs):
                t0 = time.perf_counter()
                model.predict(image, box)
                times[name].append((time.perf_counter() - t0) * 1000.0)
    return {name: statistics.median(t) for name, t in times.items()}


def groups(rows: dict[str, dict]) -> dict[str, dict]:
    """GROUP/RUN rows -> per group mean and sample spread of AP and PCK."""
    members = defaultdict(list)
    for name, row in rows.items():
        if "/" in name:
            members[name.split("/", 1)[0]].append(row)
    out = {}
    for group, rs in members.items():
        out[group] = {"runs": len(rs)}
        for key in ("ap", "pck@0.2"):
            values = [r[key] for r in rs]
            out[group][key] = statistics.mean(values)
            out[group][f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a pose model Predictor runs (.onnx/.tflite export, student .safetensors); repeatable",
    )
    parser.add_argument("--data", type=Path, default=LABELLED_CLIP, help="the labelled clip (built here when missing)")
    parser.add_argument("--threads", default="2", help="thread counts, e.g. 1,2 (accuracy runs at the first)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=40, help="timed calls per model per round")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "real_dev.json")
    parser.add_argument(
        "--accuracy-only",
        action="store_true",
        help="score the models only: no teacher ceiling (a mirrored teacher pass) and no latency (minutes each)",
    )
    parser.add_argument("--latency-only", action="store_true", help="time the models only, no scores")
    args = parser.parse_args()
    if args.accuracy_only and args.latency_only:
        parser.error("--accuracy-only and --latency-only leave nothing to do: give one of them")
    try:
        thread_counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads {args.threads!r}: write thread counts such as 2 or 1,2")

    data = ensure_dev_set(args.data, thread_counts[0])
    dataset = build_dataset(f"coco:{data}", "val", InputSpec(width=96, height=128), COCO17)
    models = open_models(args.model, thread_counts[0], parser)
    teacher = None if args.accuracy_only else open_teacher(TEACHER, thread_counts[0])
    scored = {} if args.latency_only else dict(models)
    if teacher is not None and not args.latency_only:
        scored["teacher-mirrored"] = Mirrored(teacher)
    rows = {}
    for name, model in scored.items():
        rows[name] = score(model, dataset)
        print(
            f"{name:24s} AP {rows[name]['ap']:5.1f}  AP50 {rows[name]['ap50']:5.1f}  PCK@0.2 "
            f"{rows[name]['pck@0.2']:5.1f}",
            flush=True,
        )

    ms: dict[str, dict[str, float]] = {}  # threads -> model -> ms per person
    if teacher is not None:
        sample = max(dataset.samples, key=lambda s: s.bbox[3] - s.bbox[1])  # the tallest dev person
        image, box = cv2.imread(str(sample.image_path)), sample.bbox[None].astype(np.float32)
        for threads in thread_counts:
            first = threads == thread_counts[0]  # the models and teacher opened above run at this count
            opened = models if first else open_models(args.model, threads, parser)
            timed = {name: m for name, m in opened.items() if "/" not in name}
            # BlazePose as an app runs it: one pass per person (the labeller adds a second, refined one)
            one_pass = BlazePoseLandmarker.fetch("full", threads, LandmarkerConfig(refine_roi=False))
            reference = {
                REFERENCE: one_pass,
                "teacher (two passes)": teacher if first else open_teacher(TEACHER, threads),
            }
            ms[str(threads)] = latency({**timed, **reference}, image, box, args.rounds, args.runs)
            for name, value in ms[str(threads)].items():
                ratio = value / ms[str(threads)][REFERENCE]
                print(f"{threads} thread(s) {name:24s} {value:6.2f} ms/person ({ratio:.2f}x {REFERENCE})")

    result = {
        "dev_set": {
            "source": "opencv-doc vtest.avi",
            "teacher": TEACHER,
            "detector_tiles": DETECTOR_TILES,
            "labelling": {"val_fraction": LABELLING.val_fraction, "val_gap": LABELLING.val_gap},
            "images": len({s.image_path for s in dataset.samples}),
            "people": len(dataset),
        },
        "models": {name: item.partition("=")[2] for name, item in zip(models, args.model)},
        "scores": rows,
        "groups": groups(rows),
        "latency_ms": ms,
        "latency_vs_blazepose_full": {
            threads: {name: value / by_model[REFERENCE] for name, value in by_model.items()}
            for threads, by_model in ms.items()
        },
        "threads": thread_counts,
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
