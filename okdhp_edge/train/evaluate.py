"""Validation of every head of a training network (each branch and the ensemble) in one pass.

Predictions are decoded exactly like the runtime does (argmax + quarter offset, inverse crop
affine) and scored by `okdhp_edge.eval.Evaluator` (PCK@0.2, plus OKS AP on COCO-kind data).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..codec import HeatmapCodec
from ..data import PoseDataset
from ..eval import Evaluator, pck
from ..eval.flip import flip_average
from .config import ConfigError

__all__ = ["evaluate_heads", "head_names", "predict_heads", "selection_metric", "strict_pck"]


def head_names(mode: str, num_branches: int, target: int) -> list[str]:
    """b<i> per trained branch, plus 'ensemble' when the FAU is trained (okdhp mode)."""
    if mode == "single":
        return [f"b{target}"]
    names = [f"b{i}" for i in range(num_branches)]
    return names + ["ensemble"] if mode == "okdhp" else names


def selection_metric(requested: str, dataset: PoseDataset) -> str:
    """The metric that picks checkpoint-best on `dataset` (`eval.metric`; auto = AP on COCO-kind data,
    PCKh@0.5 on MPII-kind). Fails before training when the data can never produce it, since the run
    would otherwise finish without a checkpoint-best and without saying why."""
    metric = requested if requested != "auto" else ("ap" if dataset.kind == "coco" else "pckh@0.5")
    chosen = f"eval.metric={requested}" + (
        f" (= {metric} on {dataset.kind.upper()} data)" if requested == "auto" else ""
    )
    where = dataset.annotation_file or dataset.source
    if metric == "pckh@0.5" and dataset.kind == "mpii" and not (dataset.ground_truth()["head_size"] > 0).any():
        raise ConfigError(
            f"{where}: no validation entry has a 'head_box', so {chosen} can never be computed and no "
            "checkpoint-best would be written. Add 'head_box': [x1, y1, x2, y2] to each entry (docs/data.md), "
            "or select by PCK@0.2: --set eval.metric=pck@0.2"
        )
    if metric == "pckh@0.5" and dataset.kind != "mpii":
        raise ConfigError(
            f"{where}: {chosen} needs MPII-kind data (head boxes); this is {dataset.kind} data. "
            "Use --set eval.metric=ap or pck@0.2"
        )
    if metric == "ap" and (dataset.kind != "coco" or dataset.annotation_file is None):
        raise ConfigError(
            f"{where}: {chosen} needs COCO-kind data (OKS AP); this is {dataset.kind} data. "
            "Use --set eval.metric=pckh@0.5 or pck@0.2"
        )
    return metric


def _heads(outputs: dict, names: list[str]) -> dict[str, torch.Tensor]:
    """The requested heads' final heatmaps: 'b<i>' is branch i (in single mode, the one branch there is)."""
    finals = [outs[-1] for outs in outputs["branches"]]
    heads = {}
    for name in names:
        if name == "ensemble":
            heads[name] = outputs["ensemble"]
        else:
            heads[name] = finals[0] if len(finals) == 1 else finals[int(name[1:])]
    return heads


@torch.no_grad()
def predict_heads(
    model: nn.Module,
    images: torch.Tensor,
    names: list[str],
    flip_index: list[int] | None = None,
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict[str, np.ndarray]:
    """Heatmaps (N, K, h, w) per head as float32 numpy; averaged with the mirrored input when flip_index is given."""
    with autocast or contextlib.nullcontext():
        heads = {k: v.float().cpu().numpy() for k, v in _heads(model(images), names).items()}
        if flip_index is not None:
            mirrored = {k: v.float().cpu().numpy() for k, v in _heads(model(images.flip(-1)), names).items()}
            heads = {k: flip_average(v, mirrored[k], flip_index) for k, v in heads.items()}
    return heads


def evaluate_heads(
    model: nn.Module,
    dataset: PoseDataset,
    loader: DataLoader,
    names: list[str],
    device: torch.device,
    *,
    heatmap_stride: int,
    flip_test: bool = False,
    channels_last: bool = False,
    autocast: contextlib.AbstractContextManager | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, dict]:
    """Metrics per head name (percent), with the model in eval mode; restores its previous mode.
    `heatmap_stride` is the network's output stride (OKDHPSpec.stride), which decoding must match.

    Under torch.distributed every rank runs its shard of `loader` (all ranks must call this), so a
    long validation never leaves ranks waiting on a collective's timeout; rank 0 gets the metrics,
    the others an empty dict."""
    spec = dataset.input_spec
    codec = HeatmapCodec((spec.width, spec.height), (spec.width // heatmap_stride, spec.height // heatmap_stride))
    evaluators = {name: Evaluator(dataset) for name in names}
    predicted = {name: np.full((len(dataset), dataset.skeleton.num_keypoints, 2), np.nan, np.float32) for name in names}
    flip_index = dataset.skeleton.flip_index if flip_test else None
    was_training = model.training
    model.eval()
    decoded: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    try:
        for batch in tqdm(loader, desc="validate", unit="batch", leave=False, disable=not progress):
            images = batch["image"].to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            heads = predict_heads(model, images, names, flip_index, autocast)
            back = batch["crop_to_image"].numpy()
            indices = batch["index"].numpy()
            for name, heatmaps in heads.items():
                keypoints, scores = codec.decode_to_image(heatmaps, back)
                decoded.append((name, keypoints, scores, indices))
    finally:
        model.train(was_training)
    if dist.is_available() and dist.is_initialized():  # each rank validated its shard; rank 0 scores them all
        shards: list = [None] * dist.get_world_size()
        dist.all_gather_object(shards, decoded)
        if dist.get_rank() != 0:
            return {}
        decoded = [item for shard in shards for item in shard]
    for name, keypoints, scores, indices in decoded:
        evaluators[name].add(keypoints, scores, indices)
        predicted[name][indices] = keypoints
    results = {name: ev.compute(out_dir / name if out_dir is not None else None) for name, ev in evaluators.items()}
    for name, metrics in results.items():
        metrics.update(strict_pck(dataset, predicted[name]))
    return results


def strict_pck(dataset: PoseDataset, keypoints: np.ndarray) -> dict[str, float]:
    """PCK@0.1 next to the Evaluator's PCK@0.2: on small synthetic people PCK@0.2 (box's larger side)
    is lenient enough that predicting the mean pose scores ~74, so the stricter threshold tells
    learning apart from guessing. `keypoints` (len(dataset), K, 2), NaN where not predicted."""
    gt = dataset.ground_truth()
    seen = ~np.isnan(keypoints).any(axis=(1, 2))
    return {"pck@0.1": pck(keypoints[seen], gt["joints"][seen], gt["bbox"][seen], 0.1).mean}
