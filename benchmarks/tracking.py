"""How well PoseTracker keeps who is who on a real clip: track IDs, track lives, lost-and-renamed people.

Runs the tracker over the whole of vtest.avi (Debian's opencv-doc, 795 frames at 768x576, 10 FPS,
about 5 people a frame; as the README's webcam command does) with the shipped student, for each
detector and detection schedule, and counts:
- IDs: tracks started; fewer is better while people are still found (people_per_frame);
- median_life: frames a track is reported;
- short: tracks reported on fewer than 10 frames (mostly brief false finds);
- renamed: tracks that start within one body height and 40 frames of where another track was last
  seen: most are a lost person coming back under a new ID.
The clip has no identity ground truth. Where the clip labelled by the teacher is present
(benchmarks/real_dev.py builds it), its boxes are linked into teacher tracklets, frame to frame
only where no other box is nearly as close (so a tracklet ends at each crossing: one person, but
not all of a person's life), and two identity errors are counted against the 20-frame ones:
- fragmented: ID changes along a tracklet (a person who got a new ID, or lost theirs to another);
- takeovers: IDs found on two tracklets that share a frame (one ID on two people present at once).
And recall: the share of the 127 people boxed by hand on 20 frames (benchmarks/data/vtest_people.json;
frames 430-763 held out) that a reported track covers at IoU 0.3 (track boxes hug the keypoints).
--sheet also draws one row of thumbnails per ID along its life, for checking by eye that each ID
stays on one person. Speed is benchmarks/video_pipeline.py's. Writes benchmarks/results/tracking.json.

    python benchmarks/tracking.py [--detectors default,okdhp-person] [--every 1,5] [--max-people 8,16] [--sheet ids.png]
"""

from __future__ import annotations

import argparse
import json
from itertools import product
from pathlib import Path

import cv2
import numpy as np
from footage import LABELLED_CLIP, footage_dir, read_clip
from real_scenes import vtest_held_out, vtest_people
from report import write_result

from okdhp_edge.boxes import iou_matrix
from okdhp_edge.runtime import Detector, PoseTracker, Predictor, TrackerConfig

HERE = Path(__file__).parent
Track = list[tuple[int, np.ndarray]]  # (frame, xyxy box) for each frame the ID is reported
HAND_BOX_IOU = 0.3  # a track's box hugs its keypoints, a hand box the whole body: matched at 0.3


def run(
    frames: list[np.ndarray], predictor: Predictor, detector: Detector, every: int, max_people: int | None = None
) -> dict[int, Track]:
    tracker = PoseTracker(predictor, detector, TrackerConfig(), detect_every=every, max_people=max_people)
    tracks: dict[int, Track] = {}
    for i, frame in enumerate(frames):
        for person in tracker.update(frame, i / 10):
            tracks.setdefault(person.track_id, []).append((i, person.box.copy()))
    return tracks


def renamed(tracks: dict[int, Track], gap: int = 40) -> int:
    """Tracks that begin within one body height and `gap` frames of another's last sighting."""
    count = 0
    for tid, seen in tracks.items():
        start, box = seen[0]
        for other, previous in tracks.items():
            end, last = previous[-1]
            height = max(box[3] - box[1], last[3] - last[1])
            centre = np.linalg.norm((box[:2] + box[2:]) / 2 - (last[:2] + last[2:]) / 2)
            if other != tid and start - gap <= end < start and centre < height:
                count += 1
                break
    return count


def teacher_tracklets(
    labels: Path, min_frames: int = 20, link_iou: float = 0.4, margin: float = 0.15
) -> list[dict[int, np.ndarray]]:
    """The teacher's labelled boxes of both splits linked into tracklets (frame -> xyxy box): a box
    continues the tracklet whose last box (at most 3 frames back) it overlaps best, at IoU >=
    `link_iou`; where another box, or another tracklet, comes within `margin` of that IoU (two
    people close), the tracklet ends instead. Where one person hides another completely, the teacher
    labels only the one in front and a tracklet can still continue onto them (docs/runtime.md)."""
    boxes: dict[int, list[np.ndarray]] = {}
    for split in ("train", "val"):
        data = json.loads((labels / "annotations" / f"person_keypoints_{split}.json").read_text())
        frame_of = {im["id"]: int(Path(im["file_name"]).stem.rsplit("-", 1)[-1]) for im in data["images"]}
        for a in data["annotations"]:
            if a.get("num_keypoints", 0) > 0:  # not the ignore entries
                x, y, w, h = a["bbox"]
                boxes.setdefault(frame_of[a["image_id"]], []).append(np.array([x, y, x + w, y + h]))
    tracklets: list[dict[int, np.ndarray]] = []
    ended: set[int] = set()  # indices into tracklets
    for f in sorted(boxes):
        current = np.array(boxes[f])
        open_ = [i for i, t in enumerate(tracklets) if i not in ended and f - max(t) <= 3]
        overlap = iou_matrix(np.array([tracklets[i][max(tracklets[i])] for i in open_]).reshape(-1, 4), current)
        linked: set[int] = set()  # boxes of this frame that continue a tracklet
        for ti, bi in sorted(np.ndindex(*overlap.shape), key=lambda ij: -overlap[ij]):
            if overlap[ti, bi] < link_iou:
                break
            tracklet = tracklets[open_[ti]]
            if f in tracklet or bi in linked or open_[ti] in ended:
                continue
            rivals = np.concatenate([np.delete(overlap[ti], bi), np.delete(overlap[:, bi], ti)])
            if rivals.size and rivals.max() > overlap[ti, bi] - margin:
                ended.add(open_[ti])
                continue
            tracklet[f] = current[bi]
            linked.add(bi)
        tracklets += [{f: current[bi]} for bi in range(len(current)) if bi not in linked]
    return [t for t in tracklets if len(t) >= min_frames]


def identity_errors(tracks: dict[int, Track], tracklets: list[dict[int, np.ndarray]], min_iou: float = 0.5) -> dict:
    """fragmented / takeovers (the module's docstring) of the tracks against teacher tracklets."""
    by_frame: dict[int, list[tuple[int, np.ndarray]]] = {}
    for tid, seen in tracks.items():
        for f, box in seen:
            by_frame.setdefault(f, []).append((tid, box))
    fragmented = 0
    people_of: dict[int, set[int]] = {}  # track ID -> the tracklets it was found on
    for ti, tracklet in enumerate(tracklets):
        ids = []
        for f, box in sorted(tracklet.items()):
            found = by_frame.get(f, [])
            if found:
                overlap = iou_matrix(box[None], np.array([b for _, b in found]))[0]
                if overlap.max() >= min_iou:
                    ids.append(found[int(overlap.argmax())][0])
                    people_of.setdefault(ids[-1], set()).add(ti)
        fragmented += sum(a != b for a, b in zip(ids, ids[1:]))
    takeovers = sum(
        1
        for people in people_of.values()
        for i in people
        for j in people
        if i < j and tracklets[i].keys() & tracklets[j].keys()
    )
    return {"fragmented": fragmented, "takeovers": takeovers}


def hand_box_recall(tracks: dict[int, Track], truth: dict[int, np.ndarray], iou: float = HAND_BOX_IOU) -> dict:
    """Share of the hand-boxed people (all 20 frames, and the held-out ones apart) that a reported
    track covers at IoU >= `iou`, each track box matched to one person, best overlaps first."""
    reported: dict[int, list[np.ndarray]] = {}
    for seen in tracks.values():
        for frame, box in seen:
            if frame in truth:
                reported.setdefault(frame, []).append(box)
    found = {}
    for frame, people in truth.items():
        boxes = np.array(reported.get(frame, []), np.float32).reshape(-1, 4)
        overlap = iou_matrix(people, boxes) if len(boxes) and len(people) else np.zeros((len(people), 0))
        hits = 0
        while overlap.size and overlap.max() >= iou:
            i, j = np.unravel_index(int(overlap.argmax()), overlap.shape)
            overlap[i, :], overlap[:, j] = -1, -1
            hits += 1
        found[frame] = hits
    held = vtest_held_out(truth)
    total, held_total = sum(len(truth[f]) for f in truth), sum(len(truth[f]) for f in held)
    return {
        "hand_box_recall": round(sum(found.values()) / total, 3),
        "hand_box_recall_held_out": round(sum(found[f] for f in held) / held_total, 3) if held_total else None,
    }


def stats(tracks: dict[int, Track], frames: int) -> dict:
    lives = np.array([len(seen) for seen in tracks.values()])
    return {
        "ids": len(tracks),
        "median_life": float(np.median(lives)),
        "short": int((lives < 10).sum()),
        "renamed": renamed(tracks),
        "people_per_frame": round(float(lives.sum()) / frames, 2),
    }


def sheet(tracks: dict[int, Track], frames: list[np.ndarray], path: Path, per_row: int = 10) -> None:
    """One row per ID: the ID, its frames, and thumbnails of its box along its life."""
    rows = []
    for tid, seen in sorted(tracks.items()):
        picks = [seen[int(i)] for i in np.linspace(0, len(seen) - 1, min(per_row, len(seen)))]
        thumbs = []
        for f, box in picks:
            cx, cy = (box[:2] + box[2:]) / 2
            h = max(box[3] - box[1], 40) * 1.3
            w = h * 0.6
            m = np.float32([[54 / w, 0, 27 - cx * 54 / w], [0, 90 / h, 45 - cy * 90 / h]])
            thumb = cv2.warpAffine(frames[f], m, (54, 90))
            cv2.putText(thumb, str(f), (1, 87), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 255, 255), 1)
            thumbs.append(thumb)
        thumbs += [np.zeros((90, 54, 3), np.uint8)] * (per_row - len(thumbs))
        label = np.zeros((90, 56, 3), np.uint8)
        cv2.putText(label, f"#{tid}", (2, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        cv2.putText(label, f"{seen[0][0]}-{seen[-1][0]}", (1, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.28, (255, 255, 255), 1)
        rows.append(np.hstack([label, *thumbs]))
    half = (len(rows) + 1) // 2
    right = rows[half:] + [np.zeros_like(rows[0])] * (2 * half - len(rows))
    cv2.imwrite(
        str(path), np.hstack([np.vstack(rows[:half]), np.full((90 * half, 6, 3), 255, np.uint8), np.vstack(right)])
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        default="real-tiny",
        help="pose model: a file or a bundled name (default: real-tiny, the shipped real-image student, INT8)",
    )
    parser.add_argument("--detectors", default="default,okdhp-person", help="Detector models (names or files)")
    parser.add_argument("--every", default="5,1", help="detection schedules (detect_every values)")
    parser.add_argument(
        "--max-people", default="", help="TrackerConfig.max_people values to compare (default: the config's own)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--sheet", type=Path, help="also draw the ID sheet of the first detector and schedule here (.png)"
    )
    parser.add_argument(
        "--labels", type=Path, default=LABELLED_CLIP, help="the clip labelled by the teacher (real_dev.py builds it)"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "tracking.json")
    args = parser.parse_args(argv)

    frames = read_clip(footage_dir() / "vtest.avi")
    tracklets = teacher_tracklets(args.labels) if (args.labels / "annotations").is_dir() else None
    if tracklets is None:
        print(
            f"no labelled clip in {args.labels}: identity errors not counted (python benchmarks/real_dev.py builds it)"
        )
    truth = vtest_people()  # 20 frames boxed by hand, 127 people
    predictor = Predictor(args.model, num_threads=args.threads)
    caps = [int(c) for c in args.max_people.split(",")] if args.max_people else [None]
    rows = []
    for name in args.detectors.split(","):
        detector = Detector(name, num_threads=args.threads)
        for every, cap in product((int(e) for e in args.every.split(",")), caps):
            tracks = run(frames, predictor, detector, every, cap)
            row = {
                "detector": name,
                "detect_every": every,
                "max_people": cap or TrackerConfig().max_people,
                **stats(tracks, len(frames)),
                **hand_box_recall(tracks, truth),
                **(identity_errors(tracks, tracklets) if tracklets else {}),
            }
            rows.append(row)
            errors = f", {row['fragmented']} fragmented, {row['takeovers']} takeovers" if tracklets else ""
            print(
                f"{name:14s} every {every}, max {row['max_people']:2d}: {row['ids']:3d} IDs, "
                f"median life {row['median_life']:5.1f} frames, {row['short']:2d} short, "
                f"{row['renamed']:2d} renamed, {row['people_per_frame']:.2f} people/frame{errors}, "
                f"hand-boxed found {row['hand_box_recall']:.2f} (held-out {row['hand_box_recall_held_out']:.2f})",
                flush=True,
            )
            if args.sheet and len(rows) == 1:
                sheet(tracks, frames, args.sheet)
                print(f"ID sheet: {args.sheet}")
    write_result(
        args.json,
        {
            "clip": f"vtest.avi (opencv-doc), all {len(frames)} frames at 768x576, timestamps at 10 FPS",
            "pose_model": predictor.model_path.name,
            "tracker": "TrackerConfig() defaults but detect_every and max_people, given per row",
            "threads": args.threads,
            "teacher_tracklets": None
            if tracklets is None
            else {"count": len(tracklets), "frames": sum(len(t) for t in tracklets)},
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
