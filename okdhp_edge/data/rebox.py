"""A labelled set whose people also carry the box a person detector draws around them.

    python -m okdhp_edge.data.rebox ~/.cache/okdhp_edge/real/webcam-blazepose-full --detector okdhp-any \
        --out ~/.cache/okdhp_edge/real/webcam-blazepose-full-anybox

The labeller's box spans a person's keypoints (for a webcam's subject: eyes to shoulders, out to
the frame's sides); a detector boxes the visible person (hair to the frame's edge). A top-down
student crops around the box it is given, and one that learnt only the first kind scores a near
person's shoulders low in the crops of the second (docs/runtime.md). So every training person the
detector finds gets a second annotation with the same keypoints and the detector's box, matched by
the share of the person's labelled keypoints inside it; the val split is copied unchanged, and the
images are linked, not copied. Output: OUT/annotations/person_keypoints_{train,val}.json,
OUT/images -> SRC/images, OUT/rebox.json (what was added).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..spec import write_json_atomic
from .base import DatasetError

__all__ = ["MIN_INSIDE", "rebox"]

OUTPUTS = ("annotations", "images", "rebox.json")  # what a run writes into --out
MIN_INSIDE = 0.5  # share of a person's labelled keypoints a detector box must hold to be that person's


def _matching_box(keypoints: list[float], boxes: np.ndarray) -> np.ndarray | None:
    """The box holding the largest share of the labelled keypoints (at least MIN_INSIDE), or None."""
    k = np.asarray(keypoints, np.float32).reshape(-1, 3)
    points = k[k[:, 2] > 0, :2]
    if not len(points) or not len(boxes):
        return None
    x, y = points[:, 0, None], points[:, 1, None]
    inside = ((x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])).mean(0)
    best = int(np.argmax(inside))
    return boxes[best] if inside[best] >= MIN_INSIDE else None


def rebox(src: str | os.PathLike, out: str | os.PathLike, detector: Any) -> dict[str, int]:
    """Write `out` from the labelled set `src` (python -m okdhp_edge.data.label's layout), adding a
    second annotation per training person that `detector` (anything with `detect(image)` -> (N, 4+)
    boxes) finds; returns {"people": n, "added": n}."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    annotations = src / "annotations"
    if not (annotations / "person_keypoints_train.json").is_file():
        raise DatasetError(
            f"{src}: no annotations/person_keypoints_train.json; pass a folder written by python -m "
            "okdhp_edge.data.label"
        )
    if out.exists() and any(p.name not in OUTPUTS for p in out.iterdir()):  # its own earlier run is rewritten
        raise DatasetError(f"{out}: holds other files; pick a new or empty --out")
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    if not (out / "images").exists():
        os.symlink((src / "images").resolve(), out / "images", target_is_directory=True)
    counts = {"people": 0, "added": 0}
    for split in ("train", "val"):
        path = annotations / f"person_keypoints_{split}.json"
        if not path.is_file():
            continue
        coco = json.loads(path.read_text(encoding="utf-8"))
        if split == "train":
            people: dict[int, list[dict]] = {}
            for ann in coco["annotations"]:
                people.setdefault(ann["image_id"], []).append(ann)
            added = []
            for image in coco["images"]:
                frame = cv2.imread(str(src / "images" / split / image["file_name"]), cv2.IMREAD_COLOR)
                if frame is None:
                    raise DatasetError(f"{src / 'images' / split / image['file_name']}: cannot read the image")
                boxes = np.asarray(detector.detect(frame), np.float32).reshape(-1, 5)[:, :4]
                for ann in people.get(image["id"], []):
                    box = _matching_box(ann["keypoints"], boxes)
                    if box is None:
                        continue
                    x1, y1, x2, y2 = (round(float(v), 2) for v in box)
                    w, h = round(x2 - x1, 2), round(y2 - y1, 2)
                    added.append({**ann, "bbox": [x1, y1, w, h], "area": round(w * h, 2)})
            first = len(coco["annotations"])
            for i, ann in enumerate(added):
                ann["id"] = first + i + 1
            counts = {"people": first, "added": len(added)}
            coco["annotations"] += added
        write_json_atomic(out / "annotations" / path.name, coco)
    write_json_atomic(out / "rebox.json", {"source": str(src), "detector": repr(detector), **counts})
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m okdhp_edge.data.rebox", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="a labelled set (python -m okdhp_edge.data.label --out)")
    parser.add_argument("--out", required=True, help="the new set's folder")
    parser.add_argument("--detector", default="okdhp-any", help="a name or file Detector takes (default okdhp-any)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    from ..runtime import Detector

    try:
        counts = rebox(args.src, args.out, Detector(args.detector, num_threads=args.threads))
    except ValueError as err:  # DatasetError, ModelFileError: each names the file and the fix
        sys.exit(f"error: {err}")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
