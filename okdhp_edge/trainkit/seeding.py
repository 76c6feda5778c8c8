"""Seeding every generator a run draws from, once, from the config's seed."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_everything"]


def seed_everything(seed: int) -> None:
    """Python, NumPy's legacy global generator and torch (CPU and CUDA) all start from `seed`."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
