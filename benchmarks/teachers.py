"""Which teacher labels best: BlazePose Lite, Full and Heavy, and Full + Heavy averaged (#23 item 2).

Each teacher runs on every labelled person of the real multi-scene dev set (the regions the
labeller gives it, `teacher_regions`) and on the mirrored frame, and is judged as the labeller
judges it (okdhp_edge/data/label_filter.py):

- kept: the share of all keypoints the labeller's filter keeps (score, agreement with the mirror,
  not far outside the frame): how many labels each teacher yields;
- self-agreement: the teacher against its own mirror on the keypoints the dev set labels (OKS, share
  of people at OKS >= t, mean over 0.50:0.95): how sure it is, the ceiling a student of it can
  reach in agreement with it;
- against the dev set's labels (BlazePose Full's kept keypoints): how much a switch of teacher would
  move the reference every student is scored against;
- ms per person, the teachers taking turns.

    python benchmarks/teachers.py
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from real_dev import Mirrored
from real_scenes import MANIFEST, OUT
from rendered_vs_teacher import oks_summary
from report import write_result

from okdhp_edge.boxes import oks_matrix
from okdhp_edge.data.label import LabelConfig, open_teacher, teacher_regions
from okdhp_edge.data.label_filter import FilterConfig, judge
from okdhp_edge.skeleton import COCO17

HERE = Path(__file__).resolve().parent
TEACHERS = ("blazepose-lite", "blazepose-full", "blazepose-heavy")
ENSEMBLE = ("blazepose-full", "blazepose-heavy")  # averaged keypoints and scores


class Averaged:
    """Several teachers' answers averaged keypoint by keypoint (positions and scores)."""

    def __init__(self, models: list) -> None:
        self.models, self.skeleton = models, models[0].skeleton

    def predict(self, image: np.ndarray, regions: np.ndarray):
        results = [m.predict(image, regions) for m in self.models]
        return replace(
            results[0],
            keypoints=np.mean([r.keypoints for r in results], 0).astype(np.float32),
            scores=np.mean([r.scores for r in results], 0).astype(np.float32),
        )


def people(folder: Path) -> list[dict]:
    """Every labelled person of the dev set: image path, scene, use, box, labelled keypoints (K, 3)."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    scene_of = {f["name"]: (s, body["use"]) for s, body in manifest["scenes"].items() for f in body["frames"]}
    found = []
    for split in ("train", "val"):
        coco = json.loads((folder / "annotations" / f"person_keypoints_{split}.json").read_text(encoding="utf-8"))
        files = {i["id"]: folder / "images" / split / i["file_name"] for i in coco["images"]}
        for ann in coco["annotations"]:
            path = files[ann["image_id"]]
            scene, use = scene_of[path.stem]
            x, y, w, h = ann["bbox"]
            found.append(
                {
                    "image": path,
                    "scene": scene,
                    "use": use,
                    "box": np.array([[x, y, x + w, y + h]], np.float32),
                    "label": np.asarray(ann["keypoints"], np.float64).reshape(-1, 3),
                }
            )
    return found


def run_teacher(model, person: dict, image: np.ndarray) -> dict:
    """One teacher on one person and on the mirror; the labeller's keep-mask; ms of the first pass."""
    height, width = image.shape[:2]
    regions = teacher_regions(person["box"], height, LabelConfig().cut_body_widths)
    start = time.perf_counter()
    seen = model.predict(image, regions)
    ms = (time.perf_counter() - start) * 1000.0
    flipped = Mirrored(model).predict(image, person["box"]).keypoints.astype(np.float64)  # on the same regions
    sigmas = np.asarray(COCO17.sigmas)
    keep, _ = judge(
        seen.keypoints.astype(np.float64),
        seen.scores.astype(np.float64),
        seen.boxes.astype(np.float64),
        flipped,
        [],
        sigmas,
        FilterConfig(),
        (width, height),
    )
    label = person["label"]
    labelled = label[:, 2] > 0
    x0, y0, x1, y1 = person["box"][0]
    area = np.array([max((x1 - x0) * (y1 - y0), 1.0)])
    return {
        "kept": keep[0],
        "self": oks_matrix(seen.keypoints.astype(np.float64), flipped, area, sigmas, labelled[None])[0, 0],
        "labels": oks_matrix(label[None, :, :2], seen.keypoints.astype(np.float64), area, sigmas, labelled[None])[0, 0],
        "ms": ms,
        "labelled": bool(labelled.any()),
    }


def summarize(rows: list[dict]) -> dict:
    rows = [r for r in rows if r["labelled"]]
    return {
        "kept_share": round(float(np.mean([r["kept"].mean() for r in rows])), 3),
        "self_agreement": oks_summary(np.array([r["self"] for r in rows])),
        "against_labels": oks_summary(np.array([r["labels"] for r in rows])),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev-set", type=Path, default=OUT, help="the built real multi-scene dev set")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "teachers.json")
    args = parser.parse_args(argv)
    models = {name: open_teacher(name, args.threads) for name in TEACHERS}
    models[" + ".join(ENSEMBLE)] = Averaged([models[n] for n in ENSEMBLE])
    rows = defaultdict(list)
    for person in people(args.dev_set):
        image = cv2.imread(str(person["image"]), cv2.IMREAD_COLOR)
        for name, model in models.items():  # taking turns person by person: load hits them alike
            rows[name].append({**run_teacher(model, person, image), "scene": person["scene"], "use": person["use"]})
    results = {}
    for name, found in rows.items():
        results[name] = {
            "all": summarize(found),
            "held-out": summarize([r for r in found if r["use"] == "held-out"]),
            "per_scene": {
                s: summarize([r for r in found if r["scene"] == s]) for s in dict.fromkeys(r["scene"] for r in found)
            },
            "ms_per_person_median": round(float(np.median([r["ms"] for r in found])), 1),
        }
        held = results[name]["held-out"]
        print(
            f"{name}: kept {held['kept_share']:.3f}, self {held['self_agreement']['share_at_0.50:0.95']:.3f}, "
            f"labels {held['against_labels']['share_at_0.50:0.95']:.3f}, {results[name]['ms_per_person_median']} ms"
        )
    write_result(args.json, {"dev_set": str(args.dev_set), "threads": args.threads, "teachers": results})


if __name__ == "__main__":
    main()
