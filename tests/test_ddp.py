"""Two gloo processes through torchrun run the same training code for a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from okdhp_edge.models import load_student

ROOT = Path(__file__).resolve().parents[1]


def test_two_gloo_processes_train_and_rank0_writes_the_run(tmp_path, free_port):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port),
        "-m",
        "okdhp_edge.train",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--no-progress",
        "--set",
        f"data.cache_dir={tmp_path / 'cache'}",
        "--set",
        "data.train_images=12",
        "--set",
        "data.val_images=4",
        "--set",
        "eval.samples=0",
        "--set",
        "system.threads=1",
        "--set",
        "eval.every=2",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "batch 4 x 2 process(es)" in log
    assert log.count("epoch 2/2 |") == 1  # only rank 0 logs
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [0, 1]
    assert "val" not in history[0] and set(history[1]["val"]) == {"b0", "b1", "b2", "ensemble"}
    state = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert state["epoch"] == 2
    assert not any(key.startswith("module.") for key in state["model"])  # saved unwrapped from DDP
    student, spec = load_student(out / "students" / "tiny-b2-1x32")
    assert spec.provenance["mode"] == "okdhp"
    assert torch.isfinite(student(torch.randn(1, 3, 128, 96))).all()
