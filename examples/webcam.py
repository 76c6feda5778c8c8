#!/usr/bin/env python
"""Live multi-person pose from a webcam or a video file: skeletons, track IDs and an FPS overlay.

    python examples/webcam.py                                   # camera 0, window, the bundled real-image student
    python examples/webcam.py --source clip.mp4 --save out.mp4 --no-show
    python examples/webcam.py --source vtest.avi --detector okdhp-person --detect-every 1 --save out.mp4 --no-show

A person detector finds people every --detect-every frames: by default this project's any-scene
detector okdhp-any (shipped in the package; near and far people, ONNX Runtime alone); --detector
okdhp-person (small, far people), mediapipe (MediaPipe's, fetched once; near people facing the
camera), --detector PATH for a YOLO .onnx/.tflite export, or
--detector none (the whole frame is one person). PoseTracker follows people in between, keeps
their IDs and smooths their keypoints (--no-smooth turns that off). q or Esc quits the window.
Showing a window needs the GUI build of OpenCV (`pip install okdhp-edge[demo]`); with the headless
build use --no-show (and --save to keep the annotated video).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2

from okdhp_edge.runtime import (
    BackendUnavailableError,
    Detector,
    InputError,
    ModelFileError,
    PoseTracker,
    Predictor,
    TrackerConfig,
    bundled_models,
    draw_fps,
    draw_tracks,
)
from okdhp_edge.runtime.bundled import DEFAULT_POSE_MODEL
from okdhp_edge.runtime.detector import MODEL_NAMES

WINDOW = "okdhp-edge pose (q/Esc quits)"
SNAPSHOT_SUFFIXES = (".jpg", ".jpeg", ".png")
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (*FOURCC, ".webm", ".mpg", ".mpeg", ".wmv", ".flv")


class DemoError(Exception):
    """A problem the user can fix; printed as one line, never as a traceback."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=DEFAULT_POSE_MODEL,
        help="a pose student bundled in the package, by name "
        f"({', '.join(bundled_models())}; default: {DEFAULT_POSE_MODEL}), or an exported model "
        "(.onnx, .tflite, .engine, .mlpackage) or .safetensors student",
    )
    parser.add_argument("--source", default="0", help="camera index (0, 1, ...), a video file or an image (default: 0)")
    parser.add_argument("--save", type=Path, help="write the annotated video here (.mp4 or .avi)")
    parser.add_argument("--no-show", action="store_true", help="do not open a window (headless machines)")
    parser.add_argument(
        "--backend", help="force a backend (default: from the model's suffix; a bundled name's .tflite where LiteRT is)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, tensorrt, coreml (default: auto)")
    parser.add_argument("--threads", type=int, help="CPU threads for the backend")
    parser.add_argument(
        "--detector",
        default="default",
        help="person detector: 'default' (okdhp-any: ONNX Runtime alone), 'okdhp-person', 'okdhp-any', "
        "'mediapipe', a YOLO .onnx/.tflite export, or 'none' (one person)",
    )
    parser.add_argument(
        "--tiles", type=int, default=1, help="MediaPipe's detector: also search N overlapping tile columns (default: 1)"
    )
    parser.add_argument(
        "--zoom-out",
        type=float,
        help="okdhp-person, okdhp-any or a YOLO export: also search the frame K times smaller, for people near "
        "the camera "
        "(more false people; docs/runtime.md)",
    )
    parser.add_argument(
        "--detect-every", type=int, help="run the detector every N frames (1: every frame; default: 5, or --config's)"
    )
    parser.add_argument("--max-people", type=int, help="the most people tracked at once (default: 16, or --config's)")
    parser.add_argument("--no-smooth", action="store_true", help="show raw keypoints (no One-Euro smoothing)")
    parser.add_argument("--flip-test", action="store_true", help="average with the mirrored crop (2x the compute)")
    parser.add_argument(
        "--min-score", type=float, help="hide keypoints below this score (default: the tracker's keypoint threshold)"
    )
    parser.add_argument(
        "--track-score",
        type=float,
        help="a pose whose keypoints score below this on average is lost, and keypoints below it are not drawn "
        "(default: follow the student's own scores, 0.6 x their median on detected people; about 0.5 for the "
        "shipped student)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="tracker settings: a YAML file of TrackerConfig fields (needs PyYAML); the options above override it",
    )
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--snapshot", type=Path, help="also save the last annotated frame as an image (.jpg or .png)")
    return parser.parse_args(argv)


def open_source(source: str) -> cv2.VideoCapture:
    """Open a camera index or a video file and check that a frame can be read."""
    if source.isdigit():
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our message replaces OpenCV's probe warnings
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise DemoError(
                f"cannot open camera {source}: no camera with that index, or it is in use; "
                "try another --source index, or pass a video file (--source clip.mp4)"
            )
        return capture
    path = Path(source)
    kind = (
        "image file"
        if path.suffix.lower() in IMAGE_SUFFIXES
        else "video file"
        if path.suffix.lower() in VIDEO_SUFFIXES
        else "file"
    )
    if not path.is_file():
        hint = "" if kind != "file" else " (--source takes a camera index, a video file or an image)"
        raise DemoError(f"{kind} not found: {path}{hint}")
    capture = cv2.VideoCapture(str(path))  # OpenCV reads an image as a one-frame video
    if not capture.isOpened():
        raise DemoError(f"cannot read {kind} {path}: not a video or image, or a codec this OpenCV build lacks")
    return capture


def check_gui() -> None:
    """Fail early, with the fix, when this OpenCV build cannot open windows."""
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise DemoError(
            "this OpenCV build has no GUI support (opencv-python-headless), so it cannot show a window. "
            "Install the GUI build with `pip install okdhp-edge[demo]` (if both builds end up installed, "
            "`pip uninstall opencv-python-headless` and reinstall opencv-python), or run with --no-show --save out.mp4"
        ) from None


def open_writer(path: Path, frame_shape: tuple[int, ...], fps: float) -> cv2.VideoWriter:
    fourcc = FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise DemoError(f"--save {path}: unsupported suffix; use one of {', '.join(FOURCC)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frame_shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise DemoError(f"cannot write {path}: this OpenCV build has no {fourcc} encoder or the folder is not writable")
    return writer


def save_snapshot(path: Path, frame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), frame):
        raise DemoError(f"--snapshot {path}: cannot write it; is the folder writable?")
    print(f"last frame saved to {path}")


def open_detector(args: argparse.Namespace) -> Detector | None:
    if args.detector == "none":
        return None
    named = args.detector in MODEL_NAMES  # the shipped and fetched detectors run on the CPU
    device = "cpu" if named else args.device
    return Detector(args.detector, device=device, num_threads=args.threads, tiles=args.tiles, zoom_out=args.zoom_out)


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    """The --config file's settings (or the defaults), with --flip-test and --track-score applied."""
    config = TrackerConfig.from_yaml(args.config) if args.config is not None else TrackerConfig()
    if args.flip_test:
        config = replace(config, flip_test=True)
    if args.track_score is not None:
        config = replace(
            config, keypoint_score=args.track_score, lost_score=args.track_score, draw_score=args.track_score
        )
    return config


def run(args: argparse.Namespace) -> int:
    show = not args.no_show
    if show:
        check_gui()
    if args.snapshot is not None and args.snapshot.suffix.lower() not in SNAPSHOT_SUFFIXES:
        raise DemoError(f"--snapshot {args.snapshot}: unsupported suffix; use one of {', '.join(SNAPSHOT_SUFFIXES)}")
    try:
        tracker = PoseTracker(
            Predictor(args.model, backend=args.backend, device=args.device, num_threads=args.threads),
            open_detector(args),
            tracker_config(args),
            detect_every=args.detect_every,
            max_people=args.max_people,
            smoothing=False if args.no_smooth else None,
        )
    except (ModelFileError, BackendUnavailableError, ValueError, OSError, ImportError) as err:
        raise DemoError(str(err)) from None
    predictor = tracker.predictor
    capture = open_source(args.source)
    ok, frame = capture.read()
    if not ok or frame is None:
        capture.release()
        raise DemoError(
            f"cannot read a frame from {args.source}: the camera gives no image, or the video is empty/corrupt"
        )
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    camera = args.source if args.source.isdigit() else None
    writer = open_writer(args.save, frame.shape, source_fps) if args.save else None
    frames, fps, started, last = 0, 0.0, time.perf_counter(), frame
    try:
        while ok:
            tick = time.perf_counter()
            timestamp = frames / source_fps if camera is None else tick  # seconds, for the smoothing
            try:
                tracks = tracker(frame, timestamp)
            except InputError as err:
                raise DemoError(f"frame {frames}: {err}") from None
            draw_tracks(frame, tracks, tracker.skeleton, min_score=args.min_score)
            instant = 1.0 / max(time.perf_counter() - tick, 1e-6)
            fps = instant if frames == 0 else 0.9 * fps + 0.1 * instant
            draw_fps(
                frame, fps, f"{len(tracks)} {'person' if len(tracks) == 1 else 'people'}  {predictor.backend.name}"
            )
            frames += 1
            if writer is not None:
                writer.write(frame)
            if show:
                cv2.imshow(WINDOW, frame)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            last = frame
            if args.max_frames and frames >= args.max_frames:
                break
            ok, frame = capture.read()
    except KeyboardInterrupt:
        pass
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - started
    print(
        f"{frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} FPS overall) with "
        f"{predictor.model_path.name} on {predictor.backend.describe()}"
        + (f"; annotated video written to {args.save}" if args.save else "")
    )
    if args.snapshot is not None:
        save_snapshot(args.snapshot, last)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except DemoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
