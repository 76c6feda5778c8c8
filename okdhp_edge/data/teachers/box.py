"""Teacher person boxes on real footage, for training a detector: image folders and videos -> a
COCO detection set (person boxes with the teacher's scores).

    python -m okdhp_edge.data.teachers.box footage/ clip.mp4 --out data/boxes [--teacher centernet] [--every 5]
    python -m okdhp_edge.data.teachers.box cartoons/ animals/ --nobody --out data/negatives

`--nobody` writes the frames with no boxes and runs no teacher: hard negatives a teacher would box
(a drawn character, a mannequin), known by eye to hold nobody.

Output: OUT/images/{train,val}/*.jpg, OUT/annotations/instances_{train,val}.json (category 1,
person; each box's teacher score in "score"), OUT/boxing.json (the settings) and OUT/progress.jsonl
(one line per finished frame: a rerun resumes). Splits follow the labeller (the last part of each
source is val, with a gap in videos). Evaluation media (data/held_out.py, matched by content) are
refused: they are never trained on; a clip whose end is held out is boxed up to `--stop`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..label import LabelConfig, frame_split, prepare_out, read_progress
from ..label_sources import Source, find_sources
from .coco_detector import TEACHERS, BoxTeacher, BoxTeacherConfig

__all__ = ["Nobody", "box", "main"]

PROGRESS = "progress.jsonl"
SETTINGS = "boxing.json"


class Nobody:
    """The teacher of frames known to hold nobody: it finds no one."""

    def detect(self, image: np.ndarray) -> np.ndarray:
        return np.zeros((0, 5), np.float32)

    def __repr__(self) -> str:
        return "Nobody() (--nobody: frames known to hold no people)"


def _trainable(sources: list[Source], stop: int | None) -> list[Source]:
    """The sources, videos cut at `stop`; DatasetError where one holds evaluation media (held_out.py)."""
    kept = []
    for source in sources:
        source.check_trainable(stop)
        if source.is_video and stop is not None:
            source = replace(source, length=min(source.length, stop))
        kept.append(source)
    return kept


def _write(out: Path, records: list[dict]) -> dict[str, int]:
    """OUT/annotations/instances_{split}.json from the finished frames, written whole."""
    counts = {}
    for split in ("train", "val"):
        images, annotations = [], []
        for record in (r for r in records if r["split"] == split):
            images.append({"id": len(images) + 1, "file_name": record["file"], **record["size"]})
            for x1, y1, x2, y2, score in record["boxes"]:
                w, h = round(x2 - x1, 2), round(y2 - y1, 2)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": len(images),
                        "category_id": 1,
                        "iscrowd": 0,
                        "bbox": [x1, y1, w, h],
                        "area": round(w * h, 2),
                        "score": score,
                    }
                )
        target = out / "annotations" / f"instances_{split}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        category = {"id": 1, "name": "person", "supercategory": "person"}
        partial.write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": [category]}), encoding="utf-8"
        )
        partial.replace(target)
        counts[split] = len(images)
    return counts


def box(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    teacher: str | Any = "centernet",
    config: LabelConfig | None = None,
    num_threads: int | None = None,
    stop: int | None = None,
) -> dict[str, Any]:
    """Box the people of `sources` (videos: frames before `stop`) with `teacher` (a TEACHERS name or a
    loaded BoxTeacher) into `out`; returns {"frames": {split: n}, "boxes": n}."""
    config = config or LabelConfig()
    out = Path(out).expanduser()
    found = _trainable(find_sources(sources), stop)
    model = teacher if hasattr(teacher, "detect") else BoxTeacher(teacher, num_threads)
    settings = {
        "sources": [str(s.path.resolve()) for s in found],
        "teacher": repr(model),
        "every": config.every,
        "val_fraction": config.val_fraction,
        "val_gap": config.val_gap,
        "stop": stop,
    }
    prepare_out(out, settings, SETTINGS)
    done = read_progress(out / PROGRESS)
    with open(out / PROGRESS, "a", encoding="utf-8") as log:
        for source in found:
            for frame in source.frames(config.every):
                if frame.index >= source.length:
                    break
                split = frame_split(source, frame.index, config)
                if frame.name in done or split is None:
                    continue
                file = f"{split}/{frame.name}.jpg"
                (out / "images" / split).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out / "images" / file), frame.image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
                boxes = [[round(float(v), 2) for v in row] for row in model.detect(frame.image)]
                height, width = frame.image.shape[:2]
                record = {"name": frame.name, "split": split, "file": file, "size": {"width": width, "height": height}}
                record["boxes"] = boxes
                log.write(json.dumps(record) + "\n")
                log.flush()
                done[frame.name] = record
    prefixes = {s.prefix for s in found}
    records = [r for r in done.values() if r["name"].rsplit("-", 1)[0] in prefixes]
    return {"frames": _write(out, records), "boxes": sum(len(r["boxes"]) for r in records)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m okdhp_edge.data.teachers.box", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sources", nargs="+", metavar="SRC", help="image folders and video files")
    parser.add_argument("--out", required=True, help="output folder (new, empty, or an earlier run's to resume)")
    parser.add_argument("--teacher", default="centernet", choices=TEACHERS, help="centernet: the best on the dev set")
    parser.add_argument("--score-threshold", type=float, default=BoxTeacherConfig.score_threshold)
    parser.add_argument("--every", type=int, default=1, help="box every N-th frame of a video or folder")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument(
        "--stop", type=int, default=None, help="videos: only frames before this one (a clip's end held out)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--nobody", action="store_true", help="the sources hold no people: write their frames with no boxes, no teacher"
    )
    args = parser.parse_args(argv)
    try:
        config = BoxTeacherConfig(score_threshold=args.score_threshold)
        teacher = Nobody() if args.nobody else BoxTeacher(args.teacher, args.threads, config)
        summary = box(
            args.sources,
            args.out,
            teacher=teacher,
            config=LabelConfig(every=args.every, val_fraction=args.val_fraction),
            stop=args.stop,
        )
    except ValueError as err:  # DatasetError, FetchError, TfjsError: each names the file and the fix
        sys.exit(f"error: {err}")
    print(json.dumps({**summary, "settings": "nobody" if args.nobody else asdict(config)}))


if __name__ == "__main__":
    main()
