"""Datasets and loaders for a run: train split (augmented, sharded across ranks; a mixture of
sources is sampled by `data.weights`) and val split (annotated person boxes, or a detector's with
`data.val_detections`; of `data.val_source` for a mixture)."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import DataLoader, DistributedSampler

from ..data import AugmentConfig, PoseDataset, build_dataset
from ..data.mixture import MixedDataset
from ..models import Stem
from ..skeleton import Skeleton
from ..spec import InputSpec
from .config import DataConfig
from .distributed import DistContext, barrier

__all__ = ["RunData", "build_run_data"]


@dataclass
class RunData:
    train: PoseDataset | MixedDataset
    val: PoseDataset
    train_loader: DataLoader
    val_loader: DataLoader
    sampler: DistributedSampler

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle and redraw augmentations reproducibly for `epoch` (resume lands on the same batches)."""
        self.sampler.set_epoch(epoch)
        self.train.set_epoch(epoch)


def build_run_data(
    cfg: DataConfig,
    input_spec: InputSpec,
    skeleton: Skeleton,
    batch_size: int,
    seed: int,
    ctx: DistContext,
    heatmap_stride: int = Stem.stride,
) -> RunData:
    """Rank 0 builds (and, for synthetic data, generates) the splits first; the others then read them.
    Targets are made at the network's output stride."""
    augment = AugmentConfig(**cfg.augment)

    def make(split: str) -> PoseDataset | MixedDataset:
        return build_dataset(
            cfg.source,
            split,
            input_spec,
            skeleton,
            heatmap_stride=heatmap_stride,
            sigma=cfg.sigma,
            absent_weight=cfg.absent_weight,
            train=split == "train",
            augment=augment if split == "train" else None,
            cache_dir=cfg.cache_dir,
            synthetic_images=cfg.train_images if split == "train" else cfg.val_images,
            seed=seed,
            detections=cfg.val_detections if split == "val" else None,
            min_box_score=cfg.val_min_box_score,
            weights=cfg.weights,
            val_source=cfg.val_source,
            backgrounds=cfg.backgrounds,
            scene=cfg.scene,
        )

    if not ctx.is_main:
        barrier(ctx)
    train, val = make("train"), make("val")
    if ctx.is_main:
        barrier(ctx)
    per_rank = len(train) // ctx.world_size
    if per_rank < batch_size:
        raise ValueError(
            f"{cfg.source}: {len(train)} training people over {ctx.world_size} process(es) is fewer than one batch of "
            f"{batch_size}; lower --batch-size or use more training images (data.train_images)"
        )
    sampler = DistributedSampler(
        train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=True
    )
    pin = ctx.device.type == "cuda"
    train_loader = DataLoader(
        train, batch_size=batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True, pin_memory=pin
    )
    # every rank validates a shard (the padding repeats a few people; their predictions agree)
    val_sampler = (
        DistributedSampler(val, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=False) if ctx.distributed else None
    )
    val_loader = DataLoader(
        val, batch_size=batch_size * 2, sampler=val_sampler, shuffle=False, num_workers=cfg.workers, pin_memory=pin
    )
    return RunData(train=train, val=val, train_loader=train_loader, val_loader=val_loader, sampler=sampler)
