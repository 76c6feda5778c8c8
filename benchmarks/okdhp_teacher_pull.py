"""Does distillation pull a student toward its teacher's answers, mistakes included? (#23)

For each seed of the v6 comparison (benchmarks/okdhp_real.sh: one OKDHP run with the `fau`
settings, the 1x32 and the 1x48 trained alone), on every labelled person of the real dev set's
held-out scenes and of the street clip's held-out frames (real_scenes.py), per person:
- OKS of each student against the labels (BlazePose Full's): what AP summarises;
- OKS of each student against the run's FAU ensemble, the answer the distilled branches learn
  from (on the same labelled keypoints, at the label's scale): how close a student answers to it;
- per size, the distilled student's gain over its twin trained alone, on the people where the
  ensemble answers better than the twin and on those where it answers worse, and the correlation
  of that gain with the ensemble's lead, person by person.
Means over the people, then over the seeds.

    python benchmarks/okdhp_teacher_pull.py --seeds 0,1,2 [--runs runs/okdhp-v6]

Writes benchmarks/results/okdhp_teacher_pull.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from real_scenes import MANIFEST, OUT  # noqa: E402
from report import write_result  # noqa: E402

from okdhp_edge.boxes import keypoint_similarity  # noqa: E402
from okdhp_edge.data import build_dataset  # noqa: E402
from okdhp_edge.data.label import open_teacher  # noqa: E402
from okdhp_edge.skeleton import COCO17  # noqa: E402
from okdhp_edge.spec import InputSpec  # noqa: E402

# name -> the student's file inside the seed's runs (FAU run fau-sN, students alone alone-*-sN)
STUDENTS = {
    "ensemble": "fau-s{s}/ensemble.safetensors",
    "1x48 OKDHP": "fau-s{s}/students/tiny-b1-1x48.safetensors",
    "1x48 alone": "alone-1x48-s{s}/students/target.safetensors",
    "1x32 OKDHP": "fau-s{s}/students/tiny-b2-1x32.safetensors",
    "1x32 alone": "alone-1x32-s{s}/students/target.safetensors",
}


def people(out: Path = OUT) -> dict[str, list]:
    """The labelled people of the dev set's val split grouped by image: {path: [(sample, group)]},
    group "held-out" (the held-out scenes) or "street" (the clip's held-out frames)."""
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    use_of = {f["name"]: body["use"] for body in manifest["scenes"].values() for f in body["frames"]}
    dataset = build_dataset(f"coco:{out}", "val", InputSpec(width=96, height=128), COCO17)
    by_image = defaultdict(list)
    for sample in dataset.samples:
        use = use_of[Path(sample.image_path).stem]
        if use in ("held-out", "clip-val"):
            by_image[sample.image_path].append((sample, "held-out" if use == "held-out" else "street"))
    return by_image


def predictions(model, by_image: dict) -> list[np.ndarray]:
    """The model's keypoints for every person, in the order of `by_image`."""
    out = []
    for path, items in by_image.items():
        boxes = np.stack([sample.bbox for sample, _ in items]).astype(np.float32)
        out.extend(model.predict(cv2.imread(str(path)), boxes).keypoints)
    return out


def oks(a: np.ndarray, b: np.ndarray, labelled: np.ndarray, area: float) -> float:
    """OKS of pose a against pose b over the labelled keypoints, at the label's scale."""
    similarity = keypoint_similarity(a, b, np.float64(area), np.asarray(COCO17.sigmas))
    return float(similarity[labelled].mean()) if labelled.any() else float("nan")


def person_scores(predicted: dict, samples: list, group: str) -> tuple[dict, dict]:
    """Per student, the OKS of each person of `group` to the labels and to the ensemble's pose."""
    picks = [i for i, (_, g) in enumerate(samples) if g == group]

    def score(poses: list[np.ndarray], reference: list[np.ndarray] | None = None) -> np.ndarray:
        rows = []
        for i in picks:
            sample = samples[i][0]
            target = sample.joints[:, :2] if reference is None else reference[i]
            rows.append(oks(poses[i], target, sample.joints[:, 2] > 0, sample.area))
        return np.array(rows)

    to_label = {name: score(poses) for name, poses in predicted.items()}
    to_ensemble = {name: score(poses, predicted["ensemble"]) for name, poses in predicted.items() if name != "ensemble"}
    return to_label, to_ensemble


def seed_figures(to_label: dict, to_ensemble: dict, other_to_label: dict) -> dict:
    """One seed and group: each student's mean OKS to the labels and to the ensemble; per size,
    the distilled student's gain over its twin alone on the people where the ensemble answers
    better than a twin and where it answers worse, and the correlation of gain and lead, person
    by person. The lead is over the twin of another seed (`other_to_label`): over the same twin,
    that twin's own errors would sit in both differences and correlate them by themselves."""
    sizes = {}
    for size in ("1x48", "1x32"):
        lead = to_label["ensemble"] - other_to_label[f"{size} alone"]  # the teacher's lead over a twin
        gain = to_label[f"{size} OKDHP"] - to_label[f"{size} alone"]  # what distillation changed
        sizes[size] = {
            "people_ensemble_better": int((lead > 0).sum()),
            "gain_where_ensemble_better": float(gain[lead > 0].mean()) if (lead > 0).any() else None,
            "gain_where_ensemble_worse": float(gain[lead <= 0].mean()) if (lead <= 0).any() else None,
            "correlation": float(np.corrcoef(lead, gain)[0, 1]),
        }
    return {
        "people": len(to_label["ensemble"]),
        "oks_to_labels": {name: float(v.mean()) for name, v in to_label.items()},
        "oks_to_ensemble": {name: float(v.mean()) for name, v in to_ensemble.items()},
        "sizes": sizes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="two or more")
    parser.add_argument("--runs", type=Path, default=HERE.parent / "runs" / "okdhp-v6")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "okdhp_teacher_pull.json")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 2:
        parser.error("--seeds: give two or more (a seed's lead is taken over another seed's twin)")
    files = {s: {name: args.runs / f.format(s=s) for name, f in STUDENTS.items()} for s in seeds}
    missing = [str(f) for by_name in files.values() for f in by_name.values() if not f.is_file()]
    if missing:
        parser.error(f"missing students (train them with benchmarks/okdhp_real.sh): {', '.join(missing)}")
    by_image = people()
    samples = [(sample, group) for items in by_image.values() for sample, group in items]
    predicted = {s: {n: predictions(open_teacher(str(f), 1), by_image) for n, f in files[s].items()} for s in seeds}
    per_seed, means = {}, {}
    for group in ("held-out", "street"):
        scores = {s: person_scores(predicted[s], samples, group) for s in seeds}
        for k, s in enumerate(seeds):
            other = seeds[(k + 1) % len(seeds)]
            per_seed.setdefault(str(s), {})[group] = seed_figures(*scores[s], scores[other][0])
        rows = [per_seed[str(s)][group] for s in seeds]
        means[group] = {
            "oks_to_labels": {n: statistics.fmean(r["oks_to_labels"][n] for r in rows) for n in STUDENTS},
            "oks_to_ensemble": {
                n: statistics.fmean(r["oks_to_ensemble"][n] for r in rows) for n in rows[0]["oks_to_ensemble"]
            },
            "sizes": {
                size: {
                    key: statistics.fmean(v for r in rows if (v := r["sizes"][size][key]) is not None)
                    for key in rows[0]["sizes"][size]
                }
                for size in ("1x48", "1x32")
            },
        }
        m = means[group]
        print(f"{group} ({rows[0]['people']} people), means over seeds {seeds}:")
        for name in STUDENTS:
            to_ens = m["oks_to_ensemble"].get(name)
            print(
                f"  {name:11s} OKS to labels {m['oks_to_labels'][name]:.3f}"
                + (f", to the ensemble {to_ens:.3f}" if to_ens else "")
            )
        for size, row in m["sizes"].items():
            print(
                f"  {size} OKDHP - alone: {row['gain_where_ensemble_better']:+.3f} where the ensemble beats a twin "
                f"({row['people_ensemble_better']:.1f} people), {row['gain_where_ensemble_worse']:+.3f} where it "
                f"does not; correlation with its lead {row['correlation']:+.2f}"
            )
    write_result(args.json, {"runs": str(args.runs), "seeds": seeds, "per_seed": per_seed, "means": means})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
