#!/usr/bin/env python
"""Run a pose model on one image file, draw the skeletons and save the result.

    python examples/predict_image.py --model edge-b2-1x64-fp32.onnx --image people.jpg \
        --box 40,20,260,470 --box 300,60,480,460 --out people-pose.jpg --json people-pose.json

Without --box the whole image is treated as one person. --synthetic instead renders a scene of
synthetic people (okdhp_edge.data.synthetic) and uses their ground-truth boxes, so the demo runs
with no image at hand:

    python examples/predict_image.py --model target-int8.onnx --synthetic --out prediction.jpg
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from okdhp_edge.runtime import BackendUnavailableError, InputError, ModelFileError, Predictor, draw_pose


def parse_box(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"box {text!r} is not four numbers x1,y1,x2,y2") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"box {text!r} has {len(values)} numbers; expected x1,y1,x2,y2")
    return values


def synthetic_scene(seed: int) -> tuple[np.ndarray, list[list[float]]]:
    """A rendered BGR scene and its people's boxes (xyxy), standing in for a person detector."""
    from okdhp_edge.data.synthetic import render_scene

    image, people = render_scene(np.random.default_rng(seed), size=(480, 360))
    return image, [[x, y, x + w, y + h] for x, y, w, h in (p.bbox for p in people)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="exported model or .safetensors student")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="input image (anything cv2.imread reads)")
    source.add_argument("--synthetic", action="store_true", help="render a synthetic scene and use its person boxes")
    parser.add_argument("--seed", type=int, default=0, help="scene seed for --synthetic")
    parser.add_argument(
        "--box", action="append", type=parse_box, default=[], help="person box x1,y1,x2,y2 (repeat per person)"
    )
    parser.add_argument("--out", type=Path, help="annotated image (default: <image>-pose.jpg next to the input)")
    parser.add_argument("--json", type=Path, help="also write keypoints as JSON here")
    parser.add_argument("--flip-test", action="store_true", help="average with the mirrored crop")
    parser.add_argument("--min-score", type=float, default=0.3, help="hide keypoints below this score")
    parser.add_argument("--backend", help="force a backend (default: from the model's suffix)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)

    if args.synthetic:
        image, scene_boxes = synthetic_scene(args.seed)
        args.box = args.box or scene_boxes
        args.image = Path("synthetic.jpg")
    else:
        image = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
        if image is None:
            reason = "not found" if not args.image.exists() else "not an image OpenCV can decode"
            print(f"error: cannot read image {args.image}: {reason}", file=sys.stderr)
            return 2
    try:
        predictor = Predictor(args.model, backend=args.backend, device=args.device, num_threads=args.threads)
        result = predictor.predict(
            image, np.array(args.box, np.float32) if args.box else None, flip_test=args.flip_test
        )
    except (ModelFileError, BackendUnavailableError, InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or args.image.with_name(args.image.stem + "-pose.jpg")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), draw_pose(image, result, min_score=args.min_score, draw_scores=True)):
        print(f"error: cannot write {out}: unknown image suffix or folder not writable", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    for i, score in enumerate(result.mean_scores):
        print(f"person {i}: mean keypoint score {score:.3f}")
    print(
        f"wrote {out}" + (f" and {args.json}" if args.json else "") + f" ({predictor.backend.describe()}, "
        f"{predictor.last_times.total * 1000:.1f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
