"""Teacher labelling: unlabelled images and videos -> a COCO person-keypoints data set that
`--data coco:DIR` trains on.

    python -m okdhp_edge.data.label footage/ clip.mp4 --teacher blazepose-full --detector default --out data/mine
    summary = label(["footage/"], "runs/x/export/target.onnx", "data/mine", detector=None)

A teacher keypoint becomes a label (v=2) only where the teacher is confident and agrees with
itself (label_filter.py); the rest get v=0 (with their coordinates when the teacher puts them well
outside the frame: absent, not unknown), and a person with too few kept keypoints becomes an
ignore entry (num_keypoints 0). Output: OUT/images/{train,val}/*.jpg,
OUT/annotations/person_keypoints_{train,val}.json, OUT/labelling.json (the settings) and
OUT/progress.jsonl (one line per finished frame: a rerun skips those frames). Every input is
checked before OUT is created; the annotation files are written whole at the end. Evaluation media
(held_out.py) are refused, except a clip whose held-out end falls in its val split and the gap
before it (vtest.avi with --val-fraction 0.2: its val split is the dev set's clip-val scene).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..geometry import outside_frame
from ..skeleton import COCO17
from .base import DatasetError
from .label_filter import DROP_REASONS, FilterConfig, flip_back, judge, mirror_boxes
from .label_sources import Frame, Source, find_sources

__all__ = [
    "LABEL_VERSION",
    "LabelConfig",
    "frame_split",
    "label",
    "label_frame",
    "main",
    "open_teacher",
    "prepare_out",
    "read_progress",
    "teacher_regions",
    "write_coco",
]

PROGRESS = "progress.jsonl"
SETTINGS = "labelling.json"
LABEL_VERSION = 2  # what a label file holds; 2: keypoints well outside the frame keep their place (v=0)


@dataclass
class LabelConfig:
    """Which frames are labelled, how they are split, and what makes a label (`filter`)."""

    every: int = 1  # label every N-th frame of a video (and every N-th image of a folder)
    val_fraction: float = 0.1  # the last part of each source goes to the val split
    val_gap: int = 30  # video frames skipped between a source's train and val parts (no near-duplicates)
    jpeg_quality: int = 95
    # a person the frame's bottom edge cuts is given to the teacher as a region this many box widths
    # tall, reaching past the frame (0: the visible box): see teacher_regions
    cut_body_widths: float = 3.0
    filter: FilterConfig = field(default_factory=FilterConfig)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.cut_body_widths < 0:
            raise ValueError(f"cut_body_widths must be >= 0, got {self.cut_body_widths}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


def open_teacher(teacher: str | os.PathLike, num_threads: int | None = None) -> Any:
    """`blazepose-{lite,full,heavy}` (fetched), a BlazePose landmark .tflite, or anything
    `Predictor` runs; the result has `predict(image, boxes) -> PoseResult` and `skeleton`."""
    from ..runtime import BlazePoseLandmarker, ModelFileError, Predictor
    from ..runtime.detectors.session import open_raw_model
    from ..runtime.landmarker import is_blazepose_landmarker

    name = str(teacher)
    if name.startswith("blazepose-"):
        model = BlazePoseLandmarker.fetch(name.split("-", 1)[1], num_threads)
    else:
        path = Path(teacher).expanduser()
        try:
            if path.suffix.lower() == ".tflite" and is_blazepose_landmarker(
                open_raw_model(path, None, "cpu", num_threads)
            ):
                model = BlazePoseLandmarker(path, num_threads)
            else:
                model = Predictor(path, num_threads=num_threads)
        except ModelFileError as err:
            raise DatasetError(
                f"--teacher {path}: not a pose model the labeller can run ({err}); pass an okdhp_edge export "
                "(.onnx/.tflite with its .json sidecar, or a student .safetensors) or blazepose-full"
            ) from None
    if model.skeleton.num_keypoints != COCO17.num_keypoints:
        raise DatasetError(
            f"--teacher {name}: predicts skeleton {model.skeleton.name!r}; the labeller writes COCO-17 labels"
        )
    return model


def _open_detector(detector: str | os.PathLike | None, num_threads: int | None, tiles: int) -> Any:
    if detector is None:
        return None
    from .teachers.coco_detector import TEACHERS, BoxTeacher

    if str(detector) in TEACHERS:
        if tiles != 1:
            raise DatasetError(f"--detector-tiles {tiles}: tiling is for MediaPipe's detector, not {detector}")
        return BoxTeacher(str(detector), num_threads)
    from ..runtime import Detector

    return Detector(detector, num_threads=num_threads, tiles=tiles)


def _describe(detector: Any) -> str:
    """What decides the boxes, for the settings a resumed run must match."""
    if detector is None:
        return "none (each frame is one person)"
    return repr(detector)  # a Detector's repr names every model, its thresholds and MediaPipe's tiles


def teacher_regions(boxes: np.ndarray, height: int, body_widths: float) -> np.ndarray:
    """The regions the teacher is run on: each box, except that a box reaching the frame's bottom
    edge (a body the frame cuts: head and shoulders near the camera, legs below the frame) is
    extended down to `body_widths` times its width, past the frame, as MediaPipe's detector
    extrapolates the whole body. BlazePose given only the visible part squeezes a whole body into
    it (a close-up's shoulders land on the jaw); 0 keeps the boxes."""
    regions = np.array(boxes, np.float32).reshape(-1, 4)
    if body_widths > 0:
        cut = regions[:, 3] >= height - 2
        regions[cut, 3] = np.maximum(
            regions[cut, 3], regions[cut, 1] + body_widths * (regions[cut, 2] - regions[cut, 0])
        )
    return regions


class _Labeller:
    """One labelling run: the teacher on each frame and its mirror, filtered, written as it goes."""

    def __init__(self, teacher: Any, detector: Any, out: Path, config: LabelConfig) -> None:
        self.teacher, self.detector, self.out, self.config = teacher, detector, out, config
        self.sigmas = np.asarray(COCO17.sigmas)
        self.flip_index = COCO17.flip_index

    def predict(self, frame: Frame) -> dict:
        """The teacher on the frame's people, on its mirror and on its adjacent frames (same boxes)."""
        image = frame.image
        height, width = image.shape[:2]
        boxes = (
            self.detector.detect(image)[:, :4]
            if self.detector is not None
            else np.array([[0, 0, width - 1, height - 1]], np.float32)
        )
        regions = teacher_regions(boxes, height, self.config.cut_body_widths)
        result = self.teacher.predict(image, regions)
        flipped = (
            self.teacher.predict(np.ascontiguousarray(image[:, ::-1]), mirror_boxes(regions, width))
            if len(boxes)
            else result
        )
        neighbours = [
            self.teacher.predict(other, regions).keypoints.astype(np.float64)
            for other in frame.neighbours
            if len(boxes)
        ]
        return {
            "keypoints": result.keypoints.astype(np.float64),
            "scores": result.scores.astype(np.float64),
            "boxes": result.boxes.astype(np.float64),
            "flipped": flip_back(flipped.keypoints, width, self.flip_index),
            "neighbours": neighbours,
        }

    def record(self, frame: Frame, split: str) -> dict:
        """Run the teacher on one frame, judge its people, write the image when anyone is in it;
        returns the frame's progress line."""
        pred = self.predict(frame)
        frame_size = (frame.image.shape[1], frame.image.shape[0])
        keep, reason = judge(
            pred["keypoints"],
            pred["scores"],
            pred["boxes"],
            pred["flipped"],
            pred["neighbours"],
            self.sigmas,
            self.config.filter,
            frame_size,
        )
        absent = outside_frame(pred["keypoints"], frame_size, self.config.filter.outside_margin)
        people, dropped = [], Counter()
        for i, box in enumerate(pred["boxes"]):
            kept = keep[i] if keep[i].sum() >= self.config.filter.min_keypoints else np.zeros_like(keep[i])
            dropped.update(DROP_REASONS[r] for r in reason[i][reason[i] >= 0])
            joints = np.zeros((len(kept), 3))
            placed = kept | (absent[i] & kept.any())  # an ignore entry (nothing kept) carries no places
            joints[placed, :2] = pred["keypoints"][i][placed]
            joints[kept, 2] = 2
            people.append(
                {
                    "box": [round(float(v), 2) for v in box],
                    "keypoints": [round(float(v), 2) for v in joints.ravel()],
                    "num_keypoints": int(kept.sum()),
                    "kept_before_min": int(keep[i].sum()),
                }
            )
        file_name = f"{frame.name}.jpg"
        if people:
            target = self.out / "images" / split / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
            if not ok:
                raise DatasetError(f"{target}: OpenCV could not encode the frame as JPEG")
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(data.tobytes())
            partial.replace(target)
        height, width = frame.image.shape[:2]
        return {
            "name": frame.name,
            "split": split,
            "file_name": file_name,
            "width": width,
            "height": height,
            "people": people,
            "dropped": dict(dropped),
        }


class _GivenBoxes:
    """Stands in for the detector where the people's boxes are known (hand-drawn or checked by eye)."""

    def __init__(self, boxes: np.ndarray) -> None:
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)

    def detect(self, image: np.ndarray) -> np.ndarray:
        return self.boxes


def label_frame(
    teacher: Any, frame: Frame, boxes: np.ndarray, out: Path, split: str, config: LabelConfig | None = None
) -> dict:
    """The progress record of one frame whose people are `boxes` (N x 4 xyxy), labelled by `teacher`
    (loaded, see `open_teacher`) with the labeller's rules; writes OUT/images/SPLIT/NAME.jpg when N > 0.
    For sets whose boxes are known, so the detector's misses and false finds stay out of the labels."""
    return _Labeller(teacher, _GivenBoxes(boxes), Path(out), config or LabelConfig()).record(frame, split)


def frame_split(source: Source, index: int, config: LabelConfig) -> str | None:
    """train / val by position in the source; None for the gap frames between them (videos)."""
    if config.val_fraction == 0 or source.length < 2:
        return "train"
    start = int(np.ceil(source.length * (1 - config.val_fraction)))
    start = min(start, source.length - 1)
    if index >= start:
        return "val"
    return None if source.is_video and index >= start - config.val_gap else "train"


def _check_trainable(source: Source, config: LabelConfig) -> None:
    """DatasetError where the source holds evaluation media (held_out.py): a held-out file, or a clip
    whose training frames would reach its held-out part (its val split and gap must cover that)."""
    end = next((i for i in range(source.length) if frame_split(source, i, config) != "train"), source.length)
    source.check_trainable(end)


def read_progress(path: Path) -> dict[str, dict]:
    """Finished frames by name. A line cut short by an interruption is dropped from the file (that
    frame is redone), so the lines appended next start on a line of their own."""
    done, clean = {}, True
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        clean = text.endswith("\n") or not text
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                done[entry["name"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                clean = False
        if not clean:
            partial = path.with_name(path.name + ".part")
            partial.write_text("".join(json.dumps(r) + "\n" for r in done.values()), encoding="utf-8")
            partial.replace(path)
    return done


def prepare_out(out: Path, settings: dict, name: str = SETTINGS) -> None:
    """A new or empty OUT, or one a run with the same settings (stored in OUT/`name`) started (then it resumes)."""
    stored = out / name
    if stored.is_file():
        before = json.loads(stored.read_text(encoding="utf-8"))
        if before != settings:
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            raise DatasetError(
                f"{out}: labelled earlier with other settings ({', '.join(changed)}); use a new --out, or the same "
                "settings to resume"
            )
        return
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: is a file; --out must be a folder (new, empty, or an earlier labelling run's)")
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: not empty and not a labelling output; pick a new or empty --out")
    out.mkdir(parents=True, exist_ok=True)
    partial = out / (name + ".part")
    partial.write_text(json.dumps(settings, indent=1), encoding="utf-8")
    partial.replace(stored)


def write_coco(out: Path, records: list[dict]) -> dict[str, int]:
    """OUT/annotations/person_keypoints_{train,val}.json from progress records (frames without
    people left out); images per split."""
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO17.keypoints),
        "skeleton": [[a + 1, b + 1] for a, b in COCO17.limbs],
    }
    counts = {}
    for split in ("train", "val"):
        images, annotations = [], []
        for record in (r for r in records if r["split"] == split and r["people"]):
            image_id = len(images) + 1
            images.append(
                {"id": image_id, "file_name": record["file_name"], "width": record["width"], "height": record["height"]}
            )
            for person in record["people"]:
                x1, y1, x2, y2 = person["box"]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": 1,
                        "iscrowd": 0,
                        "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                        "area": round((x2 - x1) * (y2 - y1), 2),
                        "keypoints": person["keypoints"],
                        "num_keypoints": person["num_keypoints"],
                    }
                )
        target = out / "annotations" / f"person_keypoints_{split}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": [category]}), encoding="utf-8"
        )
        partial.replace(target)
        counts[split] = len(images)
    return counts


def label(
    sources: list[str | os.PathLike],
    teacher: str | os.PathLike | Any,
    out: str | os.PathLike,
    *,
    detector: str | os.PathLike | Any | None = None,
    detector_tiles: int = 1,
    config: LabelConfig | None = None,
    num_threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Label `sources` with `teacher` into `out` (see the module docstring); returns the summary.

    teacher: a name/path for `open_teacher`, or a loaded model with `predict` and `skeleton`.
    detector: None (each frame is one person), a name Detector takes ("default", "okdhp-person",
    "mediapipe"), a COCO box teacher ("nanodet", "centernet", "ensemble"; teachers/coco_detector.py),
    a detector file, or a loaded `Detector`; `detector_tiles` as Detector's `tiles`
    (MediaPipe's detector, small people).
    """
    config = config or LabelConfig()
    out = Path(out).expanduser()
    found = find_sources(sources)
    for source in found:
        _check_trainable(source, config)
    model = teacher if hasattr(teacher, "predict") else open_teacher(teacher, num_threads)
    finder = detector if hasattr(detector, "detect") else _open_detector(detector, num_threads, detector_tiles)
    settings = {
        "labels": LABEL_VERSION,
        "sources": [str(s.path.resolve()) for s in found],
        "teacher": str(getattr(model, "model_path", teacher)),
        "detector": _describe(finder),
        "config": asdict(config),
    }
    prepare_out(out, settings)
    done = read_progress(out / PROGRESS)
    labeller = _Labeller(model, finder, out, config)
    total = sum(len(range(0, s.length, config.every)) for s in found)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="labelling", unit="frame")
    with open(out / PROGRESS, "a", encoding="utf-8") as log:
        for source in found:
            for frame in source.frames(config.every):
                if bar is not None:
                    bar.update(1)
                split = frame_split(source, frame.index, config)
                if frame.name in done or split is None:
                    continue
                record = labeller.record(frame, split)
                log.write(json.dumps(record) + "\n")
                log.flush()
                done[frame.name] = record
    if bar is not None:
        bar.close()
    prefixes = {s.prefix for s in found}
    records = [r for r in done.values() if r["name"].rsplit("-", 1)[0] in prefixes]
    counts = write_coco(out, records)
    return _summary(records, counts)


def _summary(records: list[dict], images: dict[str, int]) -> dict[str, Any]:
    people = [p for r in records for p in r["people"]]
    dropped = Counter()
    for r in records:
        dropped.update(r["dropped"])
    ignored = [p for p in people if p["num_keypoints"] == 0]
    kept = sum(p["num_keypoints"] for p in people)
    return {
        "frames": len(records),
        "images": images,
        "people": len(people),
        "people_labelled": len(people) - len(ignored),
        "people_ignored": len(ignored),
        "keypoints": 17 * len(people),
        "keypoints_kept": kept,
        "dropped": {r: int(dropped.get(r, 0)) for r in DROP_REASONS},
        "dropped_with_ignored_people": int(sum(p["kept_before_min"] for p in ignored)),
    }


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    total = max(summary["keypoints"], 1)
    print(
        f"{summary['frames']} frames, {summary['people']} people ({summary['people_labelled']} labelled, "
        f"{summary['people_ignored']} ignore entries); images train {summary['images']['train']}, val "
        f"{summary['images']['val']}"
    )
    print(
        f"keypoints kept {summary['keypoints_kept']} of {summary['keypoints']} "
        f"({100 * summary['keypoints_kept'] / total:.1f} %); dropped: "
        + ", ".join(f"{k} {v} ({100 * v / total:.1f} %)" for k, v in summary["dropped"].items())
        + f", with ignored people {summary['dropped_with_ignored_people']}"
    )
    print(f"train on it: python -m okdhp_edge.train --data coco:{out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m okdhp_edge.data.label", description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", metavar="SRC", help="image folders and video files")
    parser.add_argument(
        "--teacher", required=True, help="blazepose-full|blazepose-lite|blazepose-heavy, or a pose model Predictor runs"
    )
    parser.add_argument(
        "--detector",
        default=None,
        help="'default' (okdhp-any), 'okdhp-person', 'mediapipe', a COCO box teacher "
        "('nanodet', 'centernet', 'ensemble'), or a YOLO .onnx/.tflite; omitted: each frame is one person",
    )
    parser.add_argument(
        "--detector-tiles",
        type=int,
        default=1,
        help="MediaPipe's detector: also run on N tile columns (small, far people)",
    )
    parser.add_argument("--out", required=True, help="output folder (new, empty, or an earlier run's to resume)")
    parser.add_argument("--every", type=int, default=1, help="label every N-th frame")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--min-score", type=float, default=FilterConfig.min_score)
    parser.add_argument("--flip-agreement", type=float, default=FilterConfig.flip_agreement)
    parser.add_argument("--temporal-agreement", type=float, default=FilterConfig.temporal_agreement)
    parser.add_argument("--min-keypoints", type=int, default=FilterConfig.min_keypoints)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        config = LabelConfig(
            every=args.every,
            val_fraction=args.val_fraction,
            filter=FilterConfig(
                min_score=args.min_score,
                flip_agreement=args.flip_agreement,
                temporal_agreement=args.temporal_agreement,
                min_keypoints=args.min_keypoints,
            ),
        )
        summary = label(
            args.sources,
            args.teacher,
            args.out,
            detector=args.detector,
            detector_tiles=args.detector_tiles,
            config=config,
            num_threads=args.threads,
        )
    except (DatasetError, ValueError, RuntimeError) as err:  # RuntimeError: a backend that is not installed
        print(f"error: {err}", file=sys.stderr)
        return 2
    _print_summary(summary, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
