"""CUDA training paths: AMP bf16 / fp16 steps, the auto precision, torch.compile, resume after a kill
(with another AMP setting), single-process NCCL DDP through torchrun.

Skipped without a GPU; `benchmarks/gpu_check.sh` runs them (`pytest -m cuda`) on a GPU machine.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from okdhp_edge.codec import HeatmapCodec
from okdhp_edge.models import OKDHPNet, get_preset
from okdhp_edge.train import OKDHPLoss
from okdhp_edge.train.distributed import DistContext
from okdhp_edge.train.step import TrainStep, amp_candidates, amp_setup, native_bf16

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these on one)"),
]
CUDA = torch.device("cuda")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def tiny_batch(n: int = 8) -> dict[str, torch.Tensor]:
    preset = get_preset("tiny")
    w, h = preset.input_size
    k = preset.get_skeleton().num_keypoints
    codec = HeatmapCodec((w, h), (w // 4, h // 4))
    rng = np.random.default_rng(0)
    encoded = [codec.encode(rng.uniform([8, 8], [w - 8, h - 8], (k, 2)), np.ones(k)) for _ in range(n)]
    return {"image": torch.from_numpy(rng.standard_normal((n, 3, h, w), dtype=np.float32)),
            "target": torch.from_numpy(np.stack([e[0] for e in encoded])),
            "target_weight": torch.from_numpy(np.stack([e[1] for e in encoded]))}


def train_steps(amp: str, steps: int = 12, compile_model: bool = False, channels_last: bool = True) -> list[float]:
    torch.manual_seed(0)
    net = OKDHPNet(get_preset("tiny").network_spec()).to(CUDA)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if compile_model else net
    autocast, scaler, _ = amp_setup(amp, CUDA)
    step = TrainStep(model, OKDHPLoss("okdhp", kl_temperature=0.1, ramp_epochs=0), torch.optim.Adam(net.parameters(), lr=1e-3),
                     None, scaler, autocast, DistContext(0, 1, 0, CUDA), channels_last=channels_last)
    batch = tiny_batch()
    losses = []
    for _ in range(steps):
        parts, finite = step(batch, 0.0)
        assert finite, parts.as_dict()
        losses.append(parts.as_dict()["loss"])
    return losses


def test_auto_precision_is_bf16_only_where_the_gpu_has_it_natively():
    native = torch.cuda.get_device_capability(CUDA) >= (8, 0)
    assert native_bf16(CUDA) == native
    assert amp_candidates("auto", CUDA) == (["bf16"] if native else ["fp16"])


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_step_learns_on_a_fixed_batch(amp):
    if amp == "bf16" and not native_bf16(CUDA):
        pytest.skip("this GPU has no native bf16")
    _, scaler, label = amp_setup(amp, CUDA)
    assert scaler.is_enabled() == (amp == "fp16") and label.startswith(amp)
    losses = train_steps(amp)
    assert losses[-1] < 0.8 * losses[0], losses


def test_compiled_step_matches_the_eager_one():
    eager = train_steps("off", steps=3, channels_last=False)
    compiled = train_steps("off", steps=3, compile_model=True, channels_last=False)
    assert compiled[0] == pytest.approx(eager[0], rel=1e-3)  # same weights, same forward
    assert compiled == pytest.approx(eager, rel=2e-2)  # reduction order differs; Adam carries it on


def small_run(out: Path, cache: Path, *extra: str) -> list[str]:
    return ["-m", "okdhp_edge.train", "--out", str(out), "--device", "cuda", "--no-progress", "--batch-size", "8",
            "--set", f"data.cache_dir={cache}", "--set", "data.train_images=40", "--set", "data.val_images=8",
            "--set", "eval.samples=0", *extra]


def test_resume_on_cuda_after_a_kill_with_another_amp_setting(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = "bf16" if native_bf16(CUDA) else "off"  # no loss-scaler state: what a later fp16 run used to choke on
    proc = subprocess.Popen([sys.executable, *small_run(out, cache, "--epochs", "200", "--amp", first)],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not (out / "metrics.jsonl").is_file() or len((out / "metrics.jsonl").read_text().splitlines()) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # no chance to save: the last epoch's checkpoint must do
    proc.wait(timeout=60)
    done = len((out / "metrics.jsonl").read_text().splitlines())
    resumed = subprocess.run([sys.executable, *small_run(out, cache, "--epochs", str(done + 1), "--amp", "fp16", "--resume", "auto")],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert f"resumed from {out / 'checkpoint-last.pt'} at epoch {done + 1}" in log
    assert "another AMP setting" in log
    state = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert state["epoch"] == done + 1 and state["speed"]["amp"] == "fp16" and state["scaler"]  # the scaler ran


def test_torchrun_one_process_trains_through_nccl_ddp(tmp_path, free_port):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port), *small_run(out, tmp_path / "cache", "--epochs", "2")]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "(DDP over nccl)" in log
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert set(history[-1]["val"]) == {"b0", "b1", "b2", "ensemble"}
    state = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert not any(key.startswith("module.") for key in state["model"])
