"""Do the rendered people's labels mean what the teacher's mean? (#22)

Students trained on rendered people only are scored against BlazePose Full's labels on real scenes.
Two things could hold them back there: the generator's keypoints could sit elsewhere than the
teacher's on the same body (a label convention: where a hip or a shoulder is), or the rendered
people could look unlike real ones (a domain gap). This benchmark runs the teacher on rendered
people, on the labelled boxes, and reports:

- the teacher against the generator's labels (OKS per person, visible keypoints): the most a
  student that learnt the labels perfectly could agree with the teacher on such people;
- the teacher against itself on the mirrored image (the same check `real_scenes.py` calls
  `teacher-mirrored` on real scenes): how sure the teacher is on rendered people;
- each keypoint's mean offset (teacher minus label) in units of the person's size sqrt(box area),
  beside its COCO constant: a systematic offset is a convention, a spread is disagreement.

    python benchmarks/rendered_vs_teacher.py --backgrounds ~/.cache/okdhp_edge/backgrounds
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from report import write_result

from okdhp_edge.boxes import oks_matrix
from okdhp_edge.data.label import open_teacher
from okdhp_edge.data.label_filter import flip_back, mirror_boxes
from okdhp_edge.data.rendered.generate import generate_dataset
from okdhp_edge.data.rendered.scene import RenderConfig
from okdhp_edge.skeleton import COCO17

HERE = Path(__file__).resolve().parent
THRESHOLDS = np.arange(0.5, 0.96, 0.05)  # COCO's OKS thresholds
MIN_VISIBLE = 8  # people with fewer visible keypoints are skipped (mostly out of the frame)


def oks_summary(oks: np.ndarray) -> dict[str, float]:
    """Mean OKS, the share of people at OKS >= 0.5, and that share averaged over COCO's thresholds
    0.50:0.95 (one pose per labelled person, so this is AP's recall side; no false poses exist)."""
    return {
        "people": int(len(oks)),
        "mean_oks": round(float(oks.mean()), 3),
        "share_at_0.5": round(float((oks >= 0.5).mean()), 3),
        "share_at_0.50:0.95": round(float(np.mean([(oks >= t).mean() for t in THRESHOLDS])), 3),
    }


def compare(root: Path, teacher_name: str, threads: int) -> dict:
    """The teacher on every labelled person of ROOT's val split (COCO layout), and on its mirror."""
    coco = json.loads((root / "annotations" / "person_keypoints_val.json").read_text(encoding="utf-8"))
    files = {i["id"]: root / "images" / "val" / i["file_name"] for i in coco["images"]}
    teacher = open_teacher(teacher_name, threads)
    sigmas = np.asarray(COCO17.sigmas)
    to_label, to_mirror, offsets = [], [], []
    for ann in coco["annotations"]:
        label = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
        visible = label[:, 2] == 2
        if visible.sum() < MIN_VISIBLE:
            continue
        image = cv2.imread(str(files[ann["image_id"]]), cv2.IMREAD_COLOR)
        x, y, w, h = ann["bbox"]
        box = np.array([[x, y, x + w, y + h]], np.float32)
        seen = teacher.predict(image, box).keypoints.astype(np.float64)
        width = image.shape[1]
        mirrored = teacher.predict(np.ascontiguousarray(image[:, ::-1]), mirror_boxes(box, width)).keypoints
        mirrored = flip_back(mirrored, width, COCO17.flip_index)
        area = np.array([w * h])
        to_label.append(oks_matrix(label[None, :, :2], seen, area, sigmas, visible[None])[0, 0])
        to_mirror.append(oks_matrix(seen, mirrored, area, sigmas, visible[None])[0, 0])
        offset = np.full((len(sigmas), 2), np.nan)
        offset[visible] = (seen[0] - label[:, :2])[visible] / np.sqrt(w * h)
        offsets.append(offset)
    offsets = np.asarray(offsets)
    return {
        "teacher_vs_labels": oks_summary(np.asarray(to_label)),
        "teacher_vs_mirrored": oks_summary(np.asarray(to_mirror)),
        "keypoints": {
            name: {
                "mean_offset_xy": np.round(np.nanmean(offsets[:, k], 0), 3).tolist(),
                "median_distance": round(float(np.nanmedian(np.linalg.norm(offsets[:, k], axis=1))), 3),
                "coco_sigma": float(sigmas[k]),
            }
            for k, name in enumerate(COCO17.keypoints)
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", type=Path, default=Path("/tmp/okdhp-rendered-vs-teacher"), help="rendered set")
    parser.add_argument("--images", type=int, default=300, help="val images rendered into --set when missing")
    parser.add_argument("--backgrounds", help="draw the people on the photos in this folder (the background bank)")
    parser.add_argument("--teacher", default="blazepose-full")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "rendered_vs_teacher.json")
    args = parser.parse_args(argv)
    config = RenderConfig.with_knobs({}, args.backgrounds)
    generate_dataset(args.set, 0, args.images, 0, config, workers=args.workers)
    result = compare(args.set, args.teacher, args.threads)
    for key in ("teacher_vs_labels", "teacher_vs_mirrored"):
        print(key, result[key])
    for name, row in result["keypoints"].items():
        print(f"{name:16s} offset {row['mean_offset_xy']}  median {row['median_distance']}  sigma {row['coco_sigma']}")
    given = argv if argv is not None else sys.argv[1:]
    write_result(
        args.json,
        {
            "command": "python benchmarks/rendered_vs_teacher.py " + " ".join(given),
            "set": {"images": args.images, "seed": 0, "backgrounds": args.backgrounds, "teacher": args.teacher},
            **result,
        },
    )


if __name__ == "__main__":
    main()
