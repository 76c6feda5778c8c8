"""Prove an artifact: run it on held-out crops and compare with the PyTorch student.

The artifact runs through the runtime's `Predictor` (its backend, batching, integer I/O and
layouts), so what is verified is what an app will run, not a second copy of the runtime.

Reported: heatmap max/mean absolute difference, keypoint agreement (PCK of the artifact's
keypoints against the PyTorch keypoints, at 0.05 of the box size, plus the mean distance in
crop pixels) and the task accuracy of both against ground truth (okdhp_edge.eval), with the
drop of the chosen metric.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..codec import HeatmapCodec
from ..runtime import BackendUnavailableError, ModelFileError, Predictor
from ..runtime.backends import backend_for
from ..spec import ModelSpec
from .calibration import Crops

__all__ = ["AGREEMENT_ALPHA", "torch_heatmaps", "verify_artifact"]

AGREEMENT_ALPHA = 0.05
# Where each backend verifies: ONNX and LiteRT on the CPU (the reference numbers), the others
# (TensorRT engines, Core ML on a Mac) where they run at all.
VERIFY_DEVICE = {"onnx": "cpu", "litert": "cpu"}


def torch_heatmaps(model: nn.Module, images_nchw: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """The PyTorch student's FP32 heatmaps for a float32 NCHW batch."""
    model = model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(images_nchw), batch_size):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(images_nchw[i : i + batch_size]))).numpy())
    return np.concatenate(outs).astype(np.float32)


def verify_artifact(
    path: str | Path,
    artifact_spec: ModelSpec,
    model: nn.Module,
    dataset: Any,
    crops: Crops,
    *,
    metric: str = "pck@0.2",
    num_threads: int = 2,
) -> dict[str, Any]:
    """Run `path` on `crops` (NCHW float32) and compare; returns the report's `verification` dict."""
    path = Path(path)
    try:
        predictor = Predictor(path, device=VERIFY_DEVICE.get(backend_for(path), "auto"), num_threads=num_threads)
    except BackendUnavailableError as err:
        return {"ran": False, "reason": f"prediction not run here: {err}"}
    except ModelFileError as err:
        return {"ran": False, "error": f"the runtime cannot load the artifact: {err}"}
    runner = predictor.backend.describe()
    reference = torch_heatmaps(model, crops.images)
    feed = crops.images.transpose(0, 2, 3, 1) if predictor.backend.info.input_layout == "NHWC" else crops.images
    start = time.perf_counter()
    try:
        exported = predictor.infer(np.ascontiguousarray(feed))
    except ModelFileError as err:
        return {"ran": True, "runner": runner, "error": str(err)}
    seconds = time.perf_counter() - start
    if exported.shape != reference.shape:
        return {
            "ran": True,
            "runner": runner,
            "error": f"output shape {exported.shape} differs from the PyTorch student's {reference.shape}",
        }
    codec = HeatmapCodec(artifact_spec.input_size, artifact_spec.heatmap_size)
    ref_kp, ref_scores = codec.decode_to_image(reference, crops.crop_to_image)
    exp_kp, exp_scores = codec.decode_to_image(exported, crops.crop_to_image)
    crop_ref, _ = codec.decode(reference)
    crop_exp, _ = codec.decode(exported)
    boxes = dataset.ground_truth()["bbox"][crops.indices]
    box_size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    dist = np.linalg.norm(exp_kp - ref_kp, axis=-1)
    diff = np.abs(exported - reference)
    accuracy_torch = _accuracy(dataset, ref_kp, ref_scores, crops.indices)
    accuracy_export = _accuracy(dataset, exp_kp, exp_scores, crops.indices)
    drop = None
    if metric in accuracy_torch and metric in accuracy_export:
        drop = float(accuracy_torch[metric] - accuracy_export[metric])
    return {
        "ran": True,
        "runner": runner,
        "images": int(len(crops.images)),
        "seconds": round(seconds, 3),
        "heatmap_max_abs_diff": float(diff.max()),
        "heatmap_mean_abs_diff": float(diff.mean()),
        "heatmap_peak": float(np.abs(reference).max()),
        f"kp_agreement@{AGREEMENT_ALPHA:g}": float(100.0 * np.mean(dist <= AGREEMENT_ALPHA * box_size[:, None])),
        "kp_mean_dist_crop_px": float(np.linalg.norm(crop_exp - crop_ref, axis=-1).mean()),
        "metric": metric,
        "torch": accuracy_torch,
        "exported": accuracy_export,
        "drop": drop,
    }


def _accuracy(dataset: Any, keypoints: np.ndarray, scores: np.ndarray, indices: np.ndarray) -> dict[str, float]:
    """Task metrics (percent) of these predictions against the dataset's ground truth."""
    from ..eval import Evaluator

    evaluator = Evaluator(dataset)
    evaluator.add(keypoints, scores, indices)
    with tempfile.TemporaryDirectory(prefix="okdhp-verify-") as tmp:
        metrics = evaluator.compute(out_dir=tmp)
    return {
        k: round(float(v), 3)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and k not in ("samples", "missing")
    }
