"""The cut-out bank: real people cut out of trainable frames, with teacher keypoints and a person
mask, for pasting into new scenes (paste.py, the `pasted` source).

    python -m okdhp_edge.data.cutouts --out DIR --scenes SCENES_DIR --clip vtest.avi \
        --clip-boxes benchmarks/data/vtest_people.json --clip-stop 606

Sources: the trainable scenes of a built real-scene set (benchmarks/real_scenes.py build; its
train split holds the teacher's labels, made by `label_frame`) and a clip's frames before
`--clip-stop` whose people are boxed in a JSON file ({"frames": {"N": [[x1, y1, x2, y2], ...]}}),
labelled here by the teacher with the labeller's rules. Held-out scenes and held-out media
(held_out.py) are refused. The mask is the frame's hand-drawn labelme polygons where its package
has them, else BlazePose's segmentation output on the person's box. Output: DIR/cutouts/*.png
(RGBA crops), DIR/cutouts.json (per cut-out: keypoints in crop pixels, source, mask kind, split)
and DIR/progress.jsonl (finished frames: a rerun skips them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..cache import cache_root
from .base import DatasetError
from .held_out import HELD_OUT_FILE, check_trainable, held_out_media
from .label import LabelConfig, label_frame, open_teacher, read_progress
from .label_sources import Frame

__all__ = ["CutoutConfig", "build_cutouts", "default_cutout_dir", "load_cutouts", "main"]

MANIFEST, PROGRESS = "cutouts.json", "progress.jsonl"
TEACHER = "blazepose-full"


@dataclass
class CutoutConfig:
    """What makes a person worth cutting out."""

    min_keypoints: int = 6  # teacher keypoints kept (v=2); fewer says too little about the pose
    min_height: int = 24  # mask height in pixels
    min_mask_fill: float = 0.15  # mask pixels / box pixels: less is a failed segmentation
    pad: float = 0.1  # crop margin around the box, per side, as a share of its size
    mask_threshold: float = 0.5  # segmentation probability that counts as person
    val_every: int = 10  # clip frames whose name hashes to 0 mod this go to the val split

    def __post_init__(self) -> None:
        if self.min_keypoints < 1 or self.min_height < 4 or not 0 <= self.min_mask_fill < 1 or self.val_every < 2:
            raise ValueError(f"CutoutConfig: out of range: {self}")


def default_cutout_dir() -> Path:
    """$OKDHP_EDGE_CACHE/cutouts, else ~/.cache/okdhp_edge/cutouts."""
    return cache_root() / "cutouts"


def _split(name: str, source: dict, config: CutoutConfig) -> str:
    """A clip's frames are many views of one place: some go to val. A scene's few frames are each a
    place of their own, too precious to hold back: always train."""
    if source["kind"] != "clip":
        return "train"
    return "val" if int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % config.val_every == 0 else "train"


def labelme_masks(path: Path, shape: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(xyxy box, uint8 mask) per person of a labelme file; shapes sharing a group_id are one person."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        people: dict[Any, list[np.ndarray]] = {}
        for i, shape_ in enumerate(data["shapes"]):
            if shape_["label"] == "person":
                group = shape_.get("group_id")
                points = np.asarray(shape_["points"], np.float64).reshape(-1, 2)
                people.setdefault(("s", i) if group is None else ("g", group), []).append(points)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{path}: not a labelme annotation with person shapes ({err})") from None
    out = []
    for parts in people.values():
        mask = np.zeros(shape, np.uint8)
        cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in parts if len(p) >= 3], 255)
        every = np.vstack(parts)
        out.append((np.array([*every.min(0), *every.max(0)]), mask))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


class _Cutter:
    """Cuts the people of one frame out, given their boxes, keypoints and masks."""

    def __init__(self, out: Path, config: CutoutConfig) -> None:
        self.out, self.config = out, config
        self.teacher: Any = None

    def teacher_model(self) -> Any:
        self.teacher = self.teacher or open_teacher(TEACHER, 1)
        return self.teacher

    def masks(self, image: np.ndarray, boxes: np.ndarray, labelme: Path | None) -> tuple[list[np.ndarray], str]:
        """One uint8 mask (0/255) per box, and which kind."""
        if labelme is not None and labelme.is_file():
            drawn = labelme_masks(labelme, image.shape[:2])
            masks = []
            for box in boxes:
                best = max(drawn, key=lambda d: _iou(d[0], box), default=None)
                ok = best is not None and _iou(best[0], box) > 0.7
                masks.append(best[1] if ok else np.zeros(image.shape[:2], np.uint8))
            return masks, "labelme"
        probs = self.teacher_model().segment(image, boxes)
        return [np.where(p >= self.config.mask_threshold, 255, 0).astype(np.uint8) for p in probs], "blazepose"

    def cut(self, name: str, image: np.ndarray, people: list[dict], labelme: Path | None, source: dict) -> list[dict]:
        """Cut-out records of the frame's people that pass the config's checks (files written)."""
        cfg = self.config
        keep = [
            p for p in people if int((np.asarray(p["keypoints"]).reshape(-1, 3)[:, 2] > 0).sum()) >= cfg.min_keypoints
        ]
        if not keep:
            return []
        boxes = np.array([p["box"] for p in keep], np.float32)
        masks, kind = self.masks(image, boxes, labelme)
        height, width = image.shape[:2]
        records = []
        for n, (person, box, mask) in enumerate(zip(keep, boxes, masks)):
            x1, y1, x2, y2 = (float(v) for v in box)
            px, py = (x2 - x1) * cfg.pad, (y2 - y1) * cfg.pad
            c0, r0 = max(int(np.floor(x1 - px)), 0), max(int(np.floor(y1 - py)), 0)
            c1, r1 = min(int(np.ceil(x2 + px)) + 1, width), min(int(np.ceil(y2 + py)) + 1, height)
            region = np.zeros(mask.shape, np.uint8)
            region[r0:r1, c0:c1] = 1
            alpha = (mask * region)[r0:r1, c0:c1]
            rows = np.flatnonzero(alpha.max(1))
            box_area = max((x2 - x1) * (y2 - y1), 1.0)
            if (
                not len(rows)
                or rows[-1] - rows[0] + 1 < cfg.min_height
                or (alpha > 0).sum() < cfg.min_mask_fill * box_area
            ):
                continue
            joints = np.asarray(person["keypoints"], np.float64).reshape(-1, 3)
            joints[joints[:, 2] > 0, :2] -= (c0, r0)
            joints[joints[:, 2] == 0, :2] = 0
            file = f"{name}-{n}.png"
            rgba = np.dstack([image[r0:r1, c0:c1], alpha])
            ok, data = cv2.imencode(".png", rgba)
            if not ok:
                raise DatasetError(f"{self.out / 'cutouts' / file}: OpenCV could not encode the cut-out")
            target = self.out / "cutouts" / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_name(file + ".part").write_bytes(data.tobytes())
            target.with_name(file + ".part").replace(target)
            records.append(
                {
                    "file": f"cutouts/{file}",
                    "keypoints": [round(float(v), 2) for v in joints.ravel()],
                    "box": [round(x1 - c0, 2), round(y1 - r0, 2), round(x2 - c0, 2), round(y2 - r0, 2)],
                    # sides where the person is cut by the frame: pasting keeps them at an image edge
                    "cut": [bool(x1 <= 1), bool(y1 <= 1), bool(x2 >= width - 2), bool(y2 >= height - 2)],
                    "mask": kind,
                    "split": _split(name, source, cfg),
                    "source": {**source, "box": [round(float(v), 2) for v in box]},
                }
            )
        return records


def _scene_frames(scenes: Path) -> list[tuple[str, Path, list[dict], Path | None, dict]]:
    """(name, image, people, labelme file or None, source) of every trainable frame with people of a built set."""
    try:
        manifest = json.loads((scenes / "scenes.json").read_text(encoding="utf-8"))
        coco = json.loads((scenes / "annotations" / "person_keypoints_train.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(
            f"{scenes}: not a built real-scene set ({err}); build it with `python benchmarks/real_scenes.py build`"
        ) from None
    by_file: dict[str, list[dict]] = {}
    ids = {im["id"]: im["file_name"] for im in coco["images"]}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        by_file.setdefault(ids[ann["image_id"]], []).append(
            {"box": [x, y, x + w, y + h], "keypoints": ann["keypoints"]}
        )
    frames = []
    for body in manifest["scenes"].values():
        if body["use"] != "trainable":
            continue
        for f in body["frames"]:
            if f["split"] != "train" or not f["people"]:
                continue
            if f["sha256"] in held_out_media():
                raise DatasetError(
                    f"{scenes / 'scenes.json'}: {f['name']} ({f['path']}) is held-out media ({HELD_OUT_FILE.name}) "
                    "but marked trainable; rebuild the set from benchmarks/data/real_scenes.json"
                )
            labelme = None
            if f["package"] == "labelme-examples":
                labelme = (cache_root() / f["package"] / f["path"]).with_suffix(".json")
            source = {k: f[k] for k in ("package", "version", "path", "frame", "licence", "sha256")}
            frames.append((f["name"], scenes / f["image"], by_file.get(Path(f["image"]).name, []), labelme, source))
    return frames


def _clip_frames(clip: Path, boxes_file: Path, stop: int) -> dict[int, tuple[np.ndarray, tuple[np.ndarray, ...]]]:
    """{frame: (image, neighbours)} for the boxed frames before `stop`, read in one pass."""
    check_trainable(clip, stop)
    try:
        boxed = {int(k): v for k, v in json.loads(boxes_file.read_text(encoding="utf-8"))["frames"].items()}
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as err:
        raise DatasetError(f"{boxes_file}: not a boxes file like benchmarks/data/vtest_people.json ({err})") from None
    wanted = sorted(i for i in boxed if i < stop)
    if not wanted:
        raise DatasetError(f"{boxes_file}: no boxed frame before --clip-stop {stop}")
    capture = cv2.VideoCapture(str(clip))
    frames: dict[int, np.ndarray] = {}
    i, ok = 0, capture.isOpened()
    while ok and i <= wanted[-1] + 1:
        ok, image = capture.read()
        if ok and any(abs(i - w) <= 1 for w in wanted):
            frames[i] = image
        i += 1
    capture.release()
    missing = [w for w in wanted if w not in frames]
    if missing:
        raise DatasetError(f"{clip}: frames {missing[:5]} cannot be read (corrupt or truncated clip)")
    return {w: (frames[w], tuple(frames[j] for j in (w - 1, w + 1) if j in frames)) for w in wanted}


def build_cutouts(
    out: str | Path | None = None,
    scenes: str | Path | None = None,
    clip: str | Path | None = None,
    clip_boxes: str | Path | None = None,
    clip_stop: int | None = None,
    config: CutoutConfig | None = None,
) -> dict:
    """Cut the people of the sources out into `out`; returns the manifest (see the module docstring)."""
    config = config or CutoutConfig()
    out = Path(out).expanduser() if out is not None else default_cutout_dir()
    if scenes is None and clip is None:
        raise DatasetError("no sources: pass a built real-scene set (--scenes) and/or a clip (--clip)")
    if clip is not None and (clip_boxes is None or clip_stop is None):
        raise DatasetError("--clip needs --clip-boxes (its people's boxes) and --clip-stop (its first held-out frame)")
    out.mkdir(parents=True, exist_ok=True)
    done = read_progress(out / PROGRESS)
    cutter = _Cutter(out, config)
    with open(out / PROGRESS, "a", encoding="utf-8") as log:

        def record(name: str, cutouts: list[dict]) -> None:
            done[name] = {"name": name, "cutouts": cutouts}
            log.write(json.dumps(done[name]) + "\n")
            log.flush()

        for name, image_path, people, labelme, source in _scene_frames(Path(scenes)) if scenes is not None else []:
            if name not in done:
                image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
                if image is None:
                    raise DatasetError(f"{image_path}: cannot be decoded; rebuild the real-scene set")
                record(name, cutter.cut(name, image, people, labelme, {"kind": "scene", **source}))
        if clip is not None:
            clip = Path(clip).expanduser()
            boxes = json.loads(Path(clip_boxes).read_text(encoding="utf-8"))["frames"]
            todo = {
                i: f
                for i, f in _clip_frames(clip, Path(clip_boxes), int(clip_stop)).items()
                if f"{clip.stem}-{i:06d}" not in done
            }
            scratch = out / "frames"
            for index, (image, neighbours) in todo.items():
                name = f"{clip.stem}-{index:06d}"
                labelled = label_frame(
                    cutter.teacher_model(),
                    Frame(name, index, image, neighbours),
                    np.asarray(boxes[str(index)], np.float32),
                    scratch,
                    "train",
                    LabelConfig(),
                )
                source = {"kind": "clip", "path": str(clip), "frame": index}
                record(name, cutter.cut(name, image, labelled["people"], None, source))
    cutouts = [c for entry in done.values() for c in entry["cutouts"]]
    manifest = {"teacher": TEACHER, "frames": len(done), "cutouts": cutouts}
    partial = out / (MANIFEST + ".part")
    partial.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    partial.replace(out / MANIFEST)
    return manifest


def load_cutouts(bank: str | Path) -> list[dict]:
    """The bank's cut-out records, each with `path` (absolute) and `keypoints` as a (17, 3) array."""
    bank = Path(bank).expanduser()
    try:
        records = json.loads((bank / MANIFEST).read_text(encoding="utf-8"))["cutouts"]
    except (OSError, json.JSONDecodeError, KeyError) as err:
        raise DatasetError(
            f"{bank}: no cut-out bank ({err}); build one with `python -m okdhp_edge.data.cutouts --out {bank} ...`"
        ) from None
    if not records:
        raise DatasetError(f"{bank}: the cut-out bank is empty; rebuild it with more sources")
    out = []
    for r in records:
        keypoints = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)
        if keypoints.shape != (17, 3):
            raise DatasetError(f"{bank / MANIFEST}: {r.get('file')} has {keypoints.shape[0]} keypoints, not COCO's 17")
        out.append({**r, "path": str(bank / r["file"]), "keypoints": keypoints})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m okdhp_edge.data.cutouts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help=f"the bank's folder (default {default_cutout_dir()})")
    parser.add_argument("--scenes", default=None, help="a built real-scene set (benchmarks/real_scenes.py build)")
    parser.add_argument("--clip", default=None, help="a video whose boxed frames before --clip-stop are cut")
    parser.add_argument(
        "--clip-boxes", default=None, help="its people's boxes (like benchmarks/data/vtest_people.json)"
    )
    parser.add_argument("--clip-stop", type=int, default=None, help="the clip's first held-out frame (vtest.avi: 606)")
    args = parser.parse_args(argv)
    try:
        manifest = build_cutouts(args.out, args.scenes, args.clip, args.clip_boxes, args.clip_stop)
    except (DatasetError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kinds = {k: sum(c["mask"] == k for c in manifest["cutouts"]) for k in ("labelme", "blazepose")}
    val = sum(c["split"] == "val" for c in manifest["cutouts"])
    print(
        f"{len(manifest['cutouts'])} cut-outs ({kinds['labelme']} labelme masks, {kinds['blazepose']} BlazePose "
        f"masks; {val} val) from {manifest['frames']} frames in {args.out or default_cutout_dir()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
