"""Training (torch): one-stage online knowledge distillation of unbalanced hourglass students.

`train(load_config("tiny"))` or `python -m okdhp_edge.train` trains a multi-branch network,
evaluates every branch and the ensemble, and writes each branch as a student file that
`okdhp_edge.export` and `okdhp_edge.runtime` consume. See docs/training.md.
"""

from ..trainkit.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import (
    ConfigError,
    DataConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SystemConfig,
    TrainConfig,
    available_presets,
    load_config,
    parse_branches,
)
from .losses import OKDHPLoss, heatmap_mse, ramp, spatial_kl
from .network import BranchChoice, choose_branches
from .trainer import NonFiniteLossError, TrainResult, train

__all__ = [
    "BranchChoice",
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OKDHPLoss",
    "OptimConfig",
    "SystemConfig",
    "TrainConfig",
    "TrainResult",
    "available_presets",
    "choose_branches",
    "heatmap_mse",
    "load_checkpoint",
    "load_config",
    "parse_branches",
    "ramp",
    "save_checkpoint",
    "spatial_kl",
    "train",
]
