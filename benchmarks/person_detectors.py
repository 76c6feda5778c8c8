"""Person detectors on real footage, all side by side in one run: every scene of the real
multi-scene dev set (benchmarks/real_scenes.py) with its frames without people, and vtest.avi's
20 hand-boxed frames; then time per 640x480 frame.

    python benchmarks/person_detectors.py [--detectors default,okdhp-person,mediapipe,yolo.onnx] \
        [--tiles 4,6] [--zoom-out 3] [--teachers nanodet,centernet,ensemble] [--threads 2]

Ground truth is every person box of the dev set (checked by eye), the people the pose teacher
rejected included (the COCO files keep them as entries with no keypoints): a detector must find
them too. Per scene: recall and AP50 at IoU 0.5 on the frames with people, false people per frame
without people, duplicates (a second box on one person or one false find), and boxes smaller than
a face inside someone's box. Overall per use: held-out scenes (never trained on), trainable ones
and clip-val (vtest.avi's own held-out frames) apart. vtest.avi's 20 frames
(benchmarks/data/vtest_people.json, 127 people; frames 430-763 held out) are scored as before,
so figures stay comparable with older runs. Timing: each detector on one frame of every scene
resized to 640x480, detectors interleaved over repeated rounds, median; on a shared machine only
the ratios between detectors carry over. Writes benchmarks/results/person_detectors.json.

Rows named `teacher: ...` are the COCO-trained box teachers (okdhp_edge/data/teachers/: NanoDet,
MobileNetV3-CenterNet and their fused ensemble), converted from TF.js: references for labelling
boxes on new footage, not shippable detectors.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from footage import footage_dir
from real_scenes import (
    MANIFEST,
    OUT,
    USES,
    VTEST_BOXES,
    build,
    describe,
    detector_models,
    vtest_held_out,
    vtest_people,
)
from report import write_result

from okdhp_edge.boxes import iou_matrix, parts_of
from okdhp_edge.data.teachers.coco_detector import BoxTeacher
from okdhp_edge.runtime import Detector
from okdhp_edge.runtime.detector import DEFAULT_MODELS

HERE = Path(__file__).parent
IOU = 0.5  # a detection finds a person at this IoU (VOC's, COCO's AP50)
FACE_SHARE = 1 / 16  # a face's share of a standing person's box: about 1/8 of the height x 1/2 of the width
INSIDE = 0.8  # share of a small box's area within another box for it to count as inside


@dataclass(frozen=True)
class DevFrame:
    """One frame of the dev set with its people's boxes (N, 4) xyxy; N = 0 for a frame without people."""

    name: str
    scene: str
    use: str
    image: Path
    truth: np.ndarray


def load_dev_set(folder: Path) -> tuple[dict, list[DevFrame]]:
    """(scenes.json, frames) of a built dev set; the truth is every COCO annotation of the frame,
    the teacher's ignore entries (no keypoints) included: they are people all the same."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    boxes: dict[str, list] = {}
    for split in ("train", "val"):
        coco = json.loads((folder / "annotations" / f"person_keypoints_{split}.json").read_text(encoding="utf-8"))
        names = {im["id"]: f"images/{split}/{im['file_name']}" for im in coco["images"]}
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            boxes.setdefault(names[ann["image_id"]], []).append([x, y, x + w, y + h])
    frames = [
        DevFrame(
            f["name"],
            scene,
            body["use"],
            folder / f["image"],
            np.array(boxes.get(f["image"], []), np.float32).reshape(-1, 4),
        )
        for scene, body in manifest["scenes"].items()
        for f in body["frames"]
    ]
    return manifest, frames


def read_vtest(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The frames `wanted` of a video, read from the start (seeking is not frame-exact everywhere)."""
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


def assign(found: np.ndarray, truth: np.ndarray, iou: float = IOU) -> np.ndarray:
    """Per detection: the index of the person it finds, or -1. Greedy in score order, as COCO: each
    detection takes the unmatched person it overlaps most, if by at least `iou`."""
    person = np.full(len(found), -1)
    taken = np.zeros(len(truth), bool)
    overlap = iou_matrix(found[:, :4], truth)
    for i in np.argsort(-found[:, 4], kind="stable"):
        if taken.all():
            break
        candidates = np.where(taken, -1, overlap[i])
        j = int(candidates.argmax())
        if candidates[j] >= iou:
            taken[j], person[i] = True, j
    return person


def duplicates(found: np.ndarray, truth: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Per detection: a second box on one person or one false find. A detection that finds nobody
    and overlaps, at IoU 0.5, a person another box found, or a higher-scoring box (on a frame
    without people: the same false person twice, which suppression failed to merge)."""
    missed = person < 0
    found_people = truth[np.unique(person[~missed])]
    on_found = iou_matrix(found[:, :4], found_people).max(1, initial=0.0) >= IOU
    rank = np.empty(len(found), int)
    rank[np.argsort(-found[:, 4], kind="stable")] = np.arange(len(found))
    better = rank[None, :] < rank[:, None]
    on_better = np.where(better, iou_matrix(found[:, :4], found[:, :4]), 0.0).max(1, initial=0.0) >= IOU
    return missed & (on_found | on_better)


def small_inside(found: np.ndarray, truth: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Per detection: a box smaller than a face inside someone's box (an eye, a hand reported as a
    person). A detection that finds nobody, at most FACE_SHARE of the area of another detection or
    of a person, with at least INSIDE of its area within that box."""
    boxes = found[:, :4].astype(np.float64)
    inside = parts_of(boxes, np.concatenate([boxes, truth.astype(np.float64).reshape(-1, 4)]), FACE_SHARE, INSIDE)
    inside[np.arange(len(boxes)), np.arange(len(boxes))] = False
    return (person < 0) & inside.any(axis=1)


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


def summarize(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Scores over (found (N, 5), truth (M, 4)) frame pairs. Recall, AP50 and precision count frames
    with people only (None without any); false people per empty frame counts frames without people
    only (None without any): the two goals are separate. Duplicates and small boxes inside someone's
    box count every frame, and may overlap each other."""
    people = [p for p in pairs if len(p[1])]
    empty = [p for p in pairs if not len(p[1])]
    assigned = [assign(f, t) for f, t in pairs]
    total = sum(len(t) for _, t in people)
    scores = np.concatenate([f[:, 4] for f, _ in people] + [np.zeros(0)])
    hits = np.concatenate([a >= 0 for (_, t), a in zip(pairs, assigned) if len(t)] + [np.zeros(0, bool)])
    return {
        "frames": len(pairs),
        "people": total,
        "detections": sum(len(f) for f, _ in pairs),
        "recall_iou50": round(float(hits.sum()) / total, 3) if total else None,
        "ap50": round(average_precision(scores, hits.astype(float), total), 3) if total else None,
        "precision_iou50": round(float(hits.sum()) / max(len(scores), 1), 3) if total else None,
        "empty_frames": len(empty),
        "false_per_empty_frame": round(sum(len(f) for f, _ in empty) / len(empty), 3) if empty else None,
        "duplicates": int(sum(duplicates(f, t, a).sum() for (f, t), a in zip(pairs, assigned))),
        "small_inside": int(sum(small_inside(f, t, a).sum() for (f, t), a in zip(pairs, assigned))),
    }


SWEEP = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)  # score thresholds of the operating-point table


def score_sweep(found: dict[str, np.ndarray], dev: list[DevFrame], use: str) -> dict[str, dict]:
    """The `use` scenes scored again with only the boxes at or above each threshold of SWEEP: what
    raising Detector(score_threshold=...) would trade between people found and false people."""
    frames = [f for f in dev if f.use == use]
    return {f"{t:.2f}": summarize([(found[f.name][found[f.name][:, 4] >= t], f.truth) for f in frames]) for t in SWEEP}


def evaluate(
    detector: Detector,
    dev: list[DevFrame],
    images: dict[str, np.ndarray],
    vtest: dict[int, np.ndarray],
    vtest_truth: dict[int, np.ndarray],
) -> dict:
    """One detector's scores: per dev-set scene, per use, and on vtest.avi's 20 frames; with its boxes."""
    found = {f.name: detector.detect(images[f.name]) for f in dev}
    scenes = {f.scene: f.use for f in dev}
    vtest_found = {k: detector.detect(frame) for k, frame in vtest.items()}
    keys = sorted(vtest_truth)
    return {
        "scenes": {s: summarize([(found[f.name], f.truth) for f in dev if f.scene == s]) for s in scenes},
        "overall": {
            use: summarize([(found[f.name], f.truth) for f in dev if f.use == use])
            for use in USES
            if use in scenes.values()
        },
        "vtest": {
            "all_frames": summarize([(vtest_found[k], vtest_truth[k]) for k in keys]),
            "held_out_frames": summarize([(vtest_found[k], vtest_truth[k]) for k in vtest_held_out(vtest_truth)]),
        },
        "held_out_score_sweep": score_sweep(found, dev, "held-out") if "held-out" in scenes.values() else {},
        "boxes": {name: np.round(boxes, 2).tolist() for name, boxes in found.items()},
    }


def time_per_frame(detectors: dict[str, Detector], frames: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Median ms per frame of each detector; detectors interleaved frame by frame and their order
    rotated each round, so a burst of load from other jobs hits all of them alike."""
    names = list(detectors)
    times: dict[str, list[float]] = {n: [] for n in names}
    for name in names:
        detectors[name].detect(frames[0])  # warm-up
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for frame in frames:
            for name in order:
                start = time.perf_counter()
                detectors[name].detect(frame)
                times[name].append(time.perf_counter() - start)
    return {n: round(float(np.median(t)) * 1000, 2) for n, t in times.items()}


def _cell(row: dict) -> str:
    if row["recall_iou50"] is not None:
        return f"{row['recall_iou50']:.2f} / {row['ap50']:.2f}"
    return f"{row['false_per_empty_frame']:.1f} false"


def tables(results: dict[str, dict], manifest: dict, timing: dict[str, float], base: str) -> str:
    """Markdown: per scene (recall / AP50 at IoU 0.5, or false people per frame without people),
    then overall per use with duplicates, small boxes inside someone's box and time."""
    names = list(results)
    first = results[names[0]]
    lines = ["| scene (use, people) | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---:|" * len(names)]
    for scene, row in first["scenes"].items():
        use = manifest["scenes"][scene]["use"]
        what = f"{row['people']} people" if row["people"] else f"{row['frames']} frames, nobody"
        lines.append(
            f"| {scene} ({'**held-out**' if use == 'held-out' else use}, {what}) | "
            + " | ".join(_cell(results[n]["scenes"][scene]) for n in names)
            + " |"
        )
    uses = list(first["overall"])
    lines += [
        "",
        "| detector | " + " | ".join(f"{u} recall / AP50" for u in uses) + " | vtest held-out recall / AP50 | "
        "false people per empty frame (held-out / trainable) | duplicates | small boxes inside a person | ms per "
        "640x480 frame | time vs "
        f"`{base}` |",
        "|---|" + "---:|" * (len(uses) + 6),
    ]
    for name in names:
        overall, vtest = results[name]["overall"], results[name]["vtest"]["held_out_frames"]
        empty = " / ".join(
            f"{overall[u]['false_per_empty_frame']:.2f}"
            for u in ("held-out", "trainable")
            if overall.get(u, {}).get("empty_frames")
        )
        lines.append(
            f"| `{name}` | " + " | ".join(_cell(overall[u]) for u in uses) + f" | {_cell(vtest)} | {empty} | "
            f"{sum(r['duplicates'] for r in overall.values())} | {sum(r['small_inside'] for r in overall.values())} | "
            f"{timing[name]:.1f} | {timing[name] / timing[base]:.1f}x |"
        )
    sweep = first["held_out_score_sweep"]
    if sweep:
        lines += [
            "",
            f"`{names[0]}` on the held-out scenes, keeping only boxes scoring at least:",
            "",
            "| score threshold | " + " | ".join(sweep) + " |",
            "|---|" + "---:|" * len(sweep),
            "| recall / AP50 | " + " | ".join(_cell(r) for r in sweep.values()) + " |",
            "| false people per empty frame | "
            + " | ".join(f"{r['false_per_empty_frame']:.2f}" for r in sweep.values())
            + " |",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--detectors",
        default="default,okdhp-person+mediapipe,okdhp-person,mediapipe",
        help="Detector models (names or files), comma-separated; A+B: one Detector merging both",
    )
    parser.add_argument(
        "--tiles", default="4,6", help="also MediaPipe's detector with these tile columns ('' for none)"
    )
    parser.add_argument(
        "--zoom-out",
        default="",
        help="also each detector but MediaPipe's alone with these Detector(zoom_out=K) factors, e.g. 3 ('' for none)",
    )
    parser.add_argument(
        "--teachers",
        default="nanodet,centernet,ensemble",
        help="COCO box teachers to score beside the detectors, as reference rows ('' for none)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds over one 640x480 frame per scene")
    parser.add_argument("--dev-set", type=Path, default=OUT, help="the built dev set (built there when missing)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "person_detectors.json")
    args = parser.parse_args(argv)

    if not (args.dev_set / MANIFEST).is_file():
        build(args.dev_set)
    manifest, dev = load_dev_set(args.dev_set)
    images = {f.name: cv2.imread(str(f.image), cv2.IMREAD_COLOR) for f in dev}
    vtest_truth = vtest_people()
    vtest = read_vtest(footage_dir() / "vtest.avi", set(vtest_truth))

    names = [n for n in args.detectors.split(",") if n]
    detectors = {
        (f"{' + '.join(DEFAULT_MODELS)} (default)" if n == "default" else n): Detector(
            detector_models(n), num_threads=args.threads
        )
        for n in names
    }
    detectors |= {
        f"{n} zoom_out={k}": Detector(detector_models(n), num_threads=args.threads, zoom_out=float(k))
        for k in args.zoom_out.split(",")
        if k
        for n in names
        if n != "mediapipe"
    }
    detectors |= {
        f"mediapipe tiles={t}": Detector("mediapipe", num_threads=args.threads, tiles=int(t))
        for t in args.tiles.split(",")
        if t
    }
    detectors |= {f"teacher: {t}": BoxTeacher(t, num_threads=args.threads) for t in args.teachers.split(",") if t}
    results = {}
    for name, detector in detectors.items():
        results[name] = evaluate(detector, dev, images, vtest, vtest_truth)
        print(f"scored {name}", flush=True)
    firsts = {}
    for f in dev:
        firsts.setdefault(f.scene, cv2.resize(images[f.name], (640, 480), interpolation=cv2.INTER_AREA))
    timing = time_per_frame(detectors, list(firsts.values()), args.rounds)
    base = "okdhp-person" if "okdhp-person" in detectors else next(iter(detectors))
    table = tables(results, manifest, timing, base)
    print(table)

    write_result(
        args.json,
        {
            "dev_set": describe(args.dev_set, manifest),
            "vtest": {
                "footage": json.loads(VTEST_BOXES.read_text(encoding="utf-8"))["source"],
                "labels": str(VTEST_BOXES.relative_to(HERE.parent)),
                "held_out_frames": "430-763",
            },
            "scoring": {"iou": IOU, "face_share": FACE_SHARE, "inside": INSIDE},
            "threads": args.threads,
            "opencv_builtin_people_detectors": {
                "version": cv2.__version__,
                "HOGDescriptor": hasattr(cv2, "HOGDescriptor"),
                "CascadeClassifier": hasattr(cv2, "CascadeClassifier"),
            },
            "timing": {
                "frames": f"{len(firsts)} (the first of each scene, resized to 640x480)",
                "rounds": args.rounds,
                "note": "shared, noisy machine: compare the ratios, not the milliseconds",
                "ms_per_frame": timing,
                "ratio_to": base,
                "ratios": {n: round(t / timing[base], 2) for n, t in timing.items()},
            },
            "results": [{"name": name, **row} for name, row in results.items()],
            "table": table,
        },
    )


if __name__ == "__main__":
    main()
