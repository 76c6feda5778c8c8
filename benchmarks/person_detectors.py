"""Person detectors on real footage: recall and AP50 against hand-checked boxes, and time per frame.

Runs each candidate on the 20 vtest.avi frames boxed by eye in benchmarks/data/vtest_people.json
(127 people, most 60-110 px tall) and on the whole frame at 2 threads; writes
benchmarks/results/person_detectors.json. The held-out half (frames 430-763) was used neither to
fit the MediaPipe box shape nor to train the project's detector (vtest frames 0-399).

    python benchmarks/person_detectors.py [--detectors okdhp-person,default,yolo.onnx] [--tiles 1,6] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from footage import footage_dir
from okdhp_edge.runtime import Detector
from okdhp_edge.runtime.boxes import iou_matrix

HERE = Path(__file__).parent
LABELS = HERE / "data" / "vtest_people.json"


def read_frames(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames, index = {}, 0
    ok, frame = capture.read()
    while ok and len(frames) < len(wanted):
        if index in wanted:
            frames[index] = frame
        index += 1
        ok, frame = capture.read()
    capture.release()
    return frames


def match(found: np.ndarray, truth: np.ndarray, iou: float) -> np.ndarray:
    """Per detection (in score order): 1 if it is the first to reach `iou` with an unmatched person."""
    hits = np.zeros(len(found))
    taken = np.zeros(len(truth), bool)
    overlap = iou_matrix(found[:, :4], truth)
    for i in np.argsort(-found[:, 4]):
        if not len(truth):
            break
        candidates = np.where(taken, -1, overlap[i])
        j = int(candidates.argmax())
        if candidates[j] >= iou:
            taken[j] = True
            hits[i] = 1
    return hits


def average_precision(scores: np.ndarray, hits: np.ndarray, total: int) -> float:
    """Area under the all-point interpolated precision/recall curve (as VOC 2010+ and COCO at one IoU)."""
    if not total or not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    recall = tp / total
    precision = tp / np.arange(1, len(tp) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * precision).sum())


def scores_of(found: dict[int, np.ndarray], truth: dict[int, np.ndarray], keys: list[int]) -> dict:
    """Recall, AP50 and precision over the frames `keys`."""
    total = sum(len(truth[k]) for k in keys)
    s = np.concatenate([found[k][:, 4] for k in keys])
    h50 = np.concatenate([match(found[k], truth[k], 0.5) for k in keys])
    h30 = np.concatenate([match(found[k], truth[k], 0.3) for k in keys])
    return {
        "people": total,
        "detections": int(len(s)),
        "recall_iou50": round(float(h50.sum()) / total, 3),
        "ap50": round(average_precision(s, h50, total), 3),
        "recall_iou30": round(float(h30.sum()) / total, 3),
        "precision_iou50": round(float(h50.sum()) / max(len(s), 1), 3),
    }


def evaluate(name: str, detector: Detector, frames: dict[int, np.ndarray], truth: dict[int, np.ndarray]) -> dict:
    detector.detect(next(iter(frames.values())))  # warm-up
    times, found = [], {}
    for index, frame in frames.items():
        start = time.perf_counter()
        found[index] = detector.detect(frame)
        times.append(time.perf_counter() - start)
    keys = sorted(truth)
    return {
        "name": name,
        "all_frames": scores_of(found, truth, keys),
        "held_out_frames": scores_of(found, truth, keys[len(keys) // 2:]),
        "ms_per_frame_median": round(float(np.median(times)) * 1000, 1),
        "boxes": {k: v[:, :4].round(1).tolist() for k, v in found.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detectors", default="okdhp-person,default", help="Detector models to evaluate (names or files)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiles", default="1,2,3,4,5,6", help="MediaPipe tile columns to try ('' for none)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "person_detectors.json")
    args = parser.parse_args(argv)

    labels = json.loads(LABELS.read_text())
    truth = {int(k): np.array(v, np.float32).reshape(-1, 4) for k, v in labels["frames"].items()}
    frames = read_frames(footage_dir() / "vtest.avi", set(truth))
    candidates = [(name, Detector(name, num_threads=args.threads)) for name in args.detectors.split(",") if name]
    candidates += [(f"mediapipe-pose-detector tiles={t}", Detector("mediapipe", num_threads=args.threads, tiles=int(t)))
                   for t in args.tiles.split(",") if t]
    results = []
    for name, detector in candidates:
        row = evaluate(name, detector, frames, truth)
        results.append(row)
        for part in ("all_frames", "held_out_frames"):
            r = row[part]
            print(f"{name:38s} {part:16s} recall@0.5 {r['recall_iou50']:.3f}  AP50 {r['ap50']:.3f}  recall@0.3 {r['recall_iou30']:.3f}  "
                  f"precision {r['precision_iou50']:.3f}  {row['ms_per_frame_median']:.1f} ms/frame")
    opencv = {"version": cv2.__version__, "HOGDescriptor": hasattr(cv2, "HOGDescriptor"), "CascadeClassifier": hasattr(cv2, "CascadeClassifier")}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "footage": labels["source"], "labels": str(LABELS.relative_to(HERE.parent)), "threads": args.threads,
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "opencv_builtin_people_detectors": opencv, "results": results,
    }, indent=1) + "\n")
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
