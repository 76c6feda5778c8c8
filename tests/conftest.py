"""Fixtures several test files share: the real footage (Debian's opencv-doc media, fetched once by
benchmarks/footage.py), a free local port for torchrun, and one torch thread."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Progress bars are for a person at a terminal; in tests they would only interleave with pytest's
# dots. tqdm reads TQDM_* defaults from the environment, which subprocesses (torchrun) inherit.
os.environ["TQDM_DISABLE"] = "1"


@pytest.fixture(scope="session")
def media() -> Path:
    """The folder of opencv-doc's photos and clips; skips the test, with the reason, where it cannot be had."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from footage import footage_dir

    try:
        return footage_dir()
    except (RuntimeError, OSError, StopIteration) as err:
        pytest.skip(f"opencv-doc footage not available: {err}")


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_thread():
    """One torch thread for the test: oversubscribed OpenMP threads crawl on a busy shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
