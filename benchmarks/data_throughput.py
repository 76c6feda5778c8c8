"""Data pipeline throughput per worker, and how hard the synthetic set is for trivial predictors.

Measures, in one process with OpenCV pinned to one thread (what one DataLoader worker gets):
  - synthetic generation (render + JPEG encode + write), images/s;
  - rendered-people generation (data/rendered) beside synthetic: median of --repeats runs of
    --gen-images images each, both generators timed in turn in the same process;
  - load + augment + target (training transform) and load + crop + target (validation), samples/s,
    at 256x256 (the issue's reference size) and at the presets' 192x256 and 96x128.
Difficulty: PCK@0.2 / AP of a "mean pose" predictor (the average training pose in crop
coordinates, pasted into every validation crop) and of a "box centre" predictor, so a trained
model's score can be read against what needs no learning at all.

Usage: .venv/bin/python benchmarks/data_throughput.py [--train 300] [--val 100] [--samples 300]
Writes benchmarks/results/data_throughput.json and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from okdhp_edge.data import AugmentConfig, build_dataset, generate_dataset, rendered
from okdhp_edge.data.synthetic import SceneConfig
from okdhp_edge.eval import Evaluator
from okdhp_edge.geometry import apply_affine, invert_affine
from okdhp_edge.skeleton import COCO17
from okdhp_edge.spec import InputSpec, write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "data_throughput.json"
SIZES = {"256x256": (256, 256), "192x256 (edge)": (192, 256), "96x128 (tiny)": (96, 128)}


def _rate(fn, n: int) -> float:
    fn(0)  # warm caches (first JPEG decode, lazy imports)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def _throughput(root: Path, n: int) -> list[dict]:
    rows = []
    for name, (w, h) in SIZES.items():
        spec = InputSpec(width=w, height=h)
        train = build_dataset(
            f"coco:{root}", "train", spec, COCO17, train=True, augment=AugmentConfig(half_body_prob=0.3)
        )
        val = build_dataset(f"coco:{root}", "val", spec, COCO17)
        rows.append(
            {
                "input": name,
                "train_samples_per_s": _rate(lambda i, data=train: data[i % len(data)], n),
                "val_samples_per_s": _rate(lambda i, data=val: data[i % len(data)], n),
            }
        )
    return rows


def _generation_rates(n: int, repeats: int) -> dict:
    """Images/s of each generator (render + JPEG + write, one process): median and all repeats."""
    rendered.render_scene(np.random.default_rng(0))  # load the body model outside the timing
    makers = {"synthetic": generate_dataset, "rendered": rendered.generate_dataset}
    rates = {name: [] for name in makers}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name, make in makers.items():
                start = time.perf_counter()
                make(Path(tmp) / f"{name}-{r}", n, 0, seed=r, progress=False)
                rates[name].append(n / (time.perf_counter() - start))
    return {name: {"median": float(np.median(v)), "runs": v} for name, v in rates.items()}


def _baselines(root: Path) -> dict:
    """Scores of predictors that learn nothing: they bound what 'trained' has to beat."""
    spec = InputSpec(width=96, height=128)
    train = build_dataset(f"coco:{root}", "train", spec, COCO17)
    val = build_dataset(f"coco:{root}", "val", spec, COCO17)
    crop_pts, weights = [], []
    for i in range(len(train)):
        item = train[i]
        crop_pts.append(apply_affine(item["joints"][:, :2], invert_affine(item["crop_to_image"])))
        weights.append(item["joints"][:, 2] > 0)
    crop_pts, weights = np.stack(crop_pts), np.stack(weights)
    mean_pose = (crop_pts * weights[..., None]).sum(0) / np.maximum(weights.sum(0), 1)[:, None]
    out = {}
    for name, pose in (("mean_pose", mean_pose), ("box_centre", np.tile([[47.5, 63.5]], (17, 1)))):
        ev = Evaluator(val)
        for i in range(len(val)):
            item = val[i]
            ev.add(apply_affine(pose, item["crop_to_image"])[None], np.ones((1, 17)), [i])
        m = ev.compute()
        out[name] = {"pck@0.2": m["pck@0.2"], "ap": m["ap"]}
    gt = val.ground_truth()["joints"][..., 2]
    out["visibility_share"] = {f"v={v}": float((gt == v).mean()) for v in (0, 1, 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=300, help="synthetic training images to generate")
    ap.add_argument("--val", type=int, default=100, help="synthetic validation images")
    ap.add_argument("--samples", type=int, default=300, help="samples timed per measurement")
    ap.add_argument("--gen-images", type=int, default=100, help="images per generator timing run")
    ap.add_argument("--repeats", type=int, default=3, help="generator timing runs (the median is reported)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        start = time.perf_counter()
        generate_dataset(root, args.train, args.val, seed=0, progress=False)
        gen_rate = (args.train + args.val) / (time.perf_counter() - start)
        rows = _throughput(root, args.samples)
        baselines = _baselines(root)
    generators = _generation_rates(args.gen_images, args.repeats)
    print(f"synthetic generation: {gen_rate:.0f} images/s (1 process)")
    for name, g in generators.items():
        print(f"{name} generation, median of {args.repeats}: {g['median']:.1f} images/s (1 process)")
    print(f"{'input':<16}{'train load+aug+target /s':>26}{'val load+crop+target /s':>26}")
    for r in rows:
        print(f"{r['input']:<16}{r['train_samples_per_s']:>26.0f}{r['val_samples_per_s']:>26.0f}")
    for name in ("mean_pose", "box_centre"):
        b = baselines[name]
        print(f"no-learning baseline {name:<11}: PCK@0.2 {b['pck@0.2']:5.1f}  AP {b['ap']:5.1f}")
    print("visibility flags:", ", ".join(f"{k} {v:.1%}" for k, v in baselines["visibility_share"].items()))
    report = {
        "what": "samples/s in ONE process with cv2.setNumThreads(1) (= per DataLoader worker)",
        "goal_train_samples_per_s_at_256": 150,
        "synthetic_generation_images_per_s": gen_rate,
        "generation_images_per_s_side_by_side": generators,
        "throughput": rows,
        "difficulty": {
            "baselines": baselines,
            "knobs": sorted(SceneConfig.__dataclass_fields__),
            "note": "trained-model accuracy vs size is measured by the training benchmarks",
        },
        "set": {"train_images": args.train, "val_images": args.val, "seed": 0},
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json_atomic(RESULTS, report)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
