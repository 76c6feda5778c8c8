"""curves.png (losses and per-head accuracy per epoch) and samples.png (predicted skeletons)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..skeleton import Skeleton  # noqa: E402
from ..spec import InputSpec  # noqa: E402

__all__ = ["plot_curves", "plot_samples"]


def plot_curves(history: list[dict], path: Path, metrics: list[str]) -> Path:
    """Training loss terms per epoch (log scale), then one panel per validation metric with every head."""
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5.5 * (1 + len(metrics)), 4), squeeze=False)
    ax_loss, *ax_metrics = axes[0]
    epochs = [row["epoch"] + 1 for row in history]
    for key, label in (("loss", "total"), ("mse", "MSE (all outputs)"), ("kl", "KL (before beta*ramp)")):
        values = [row["train"].get(key) for row in history]
        if any(v for v in values):
            ax_loss.plot(epochs, values, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="losses")
    ax_loss.legend()
    heads = sorted({h for row in history for h in row.get("val", {})})
    for ax, metric in zip(ax_metrics, metrics):
        for head in heads:
            pts = [(row["epoch"] + 1, row["val"][head].get(metric)) for row in history if head in row.get("val", {})]
            pts = [(e, v) for e, v in pts if v is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=head)
        ax.set(xlabel="epoch", ylabel=f"{metric} (%)", title=f"validation {metric}")
        if heads:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_samples(
    images: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    truth: np.ndarray,
    skeleton: Skeleton,
    input_spec: InputSpec,
    path: Path,
    title: str,
    min_score: float = 0.2,
) -> Path:
    """Draw predictions (limbs and joints, crop pixels) on normalised NCHW RGB crops; ground truth as small crosses."""
    n = len(images)
    cols = min(n, 6)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.2 * cols, 2.2 * rows * input_spec.height / input_spec.width), squeeze=False
    )
    mean = np.asarray(input_spec.mean, np.float32)
    std = np.asarray(input_spec.std, np.float32)
    colors = plt.cm.hsv(np.linspace(0, 1, len(skeleton.limbs) + 1))
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        rgb = np.clip(images[i].transpose(1, 2, 0) * std + mean, 0, 255).astype(np.uint8)
        ax.imshow(rgb)
        kp, sc = keypoints[i], scores[i]
        for (a, b), color in zip(skeleton.limbs, colors):
            if sc[a] >= min_score and sc[b] >= min_score:
                ax.plot([kp[a, 0], kp[b, 0]], [kp[a, 1], kp[b, 1]], color=color, linewidth=1.5)
        keep = sc >= min_score
        ax.scatter(kp[keep, 0], kp[keep, 1], s=6, c="white", edgecolors="black", linewidths=0.4, zorder=3)
        labelled = truth[i, :, 2] > 0
        ax.scatter(truth[i, labelled, 0], truth[i, labelled, 1], s=10, marker="x", c="lime", linewidths=0.7, zorder=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
