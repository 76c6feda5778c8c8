"""CUDA training paths: the CUDA-graph step against the eager one (fp32, bf16, fp16; a changing KL
ramp; a batch of other shapes; resume), AMP bf16 / fp16 steps, the auto precision, single-process
NCCL DDP through torchrun, resume after a kill (with another AMP setting), torch.compile (last: the
slowest, and the least needed when the check runs out of time).

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
from okdhp_edge.train import OKDHPLoss, load_config, train
from okdhp_edge.train.autotune import pick_speed, random_batch
from okdhp_edge.train.distributed import DistContext
from okdhp_edge.train.graphs import GraphedStep
from okdhp_edge.train.optim import make_adam
from okdhp_edge.train.step import TrainStep
from okdhp_edge.trainkit.speed import amp_candidates, amp_setup, native_bf16

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these on one)"
    ),
]
CUDA = torch.device("cuda")


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if (
    torch.cuda.is_available()
):  # gpu_check.sh's time limit sends SIGTERM: stop as on Ctrl-C, so pytest still writes its report
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def tiny_batch(n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    preset = get_preset("tiny")
    w, h = preset.input_size
    k = preset.get_skeleton().num_keypoints
    codec = HeatmapCodec((w, h), (w // 4, h // 4))
    rng = np.random.default_rng(seed)
    encoded = [codec.encode(rng.uniform([8, 8], [w - 8, h - 8], (k, 2)), np.ones(k)) for _ in range(n)]
    return {
        "image": torch.from_numpy(rng.standard_normal((n, 3, h, w), dtype=np.float32)),
        "target": torch.from_numpy(np.stack([e[0] for e in encoded])),
        "target_weight": torch.from_numpy(np.stack([e[1] for e in encoded])),
    }


def train_steps(amp: str, steps: int = 12, compile_model: bool = False, channels_last: bool = True) -> list[float]:
    torch.manual_seed(0)
    net = OKDHPNet(get_preset("tiny").network_spec()).to(CUDA)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if compile_model else net
    autocast, scaler, _ = amp_setup(amp, CUDA)
    step = TrainStep(
        model,
        OKDHPLoss("okdhp", kl_temperature=0.1, ramp_epochs=0),
        make_adam(net.parameters(), lr=1e-3),
        None,
        scaler,
        autocast,
        DistContext(0, 1, 0, CUDA),
        channels_last=channels_last,
    )
    batch = tiny_batch()
    losses = []
    for _ in range(steps):
        parts, finite = step(batch, 0.0)
        assert finite, parts.as_dict()
        losses.append(parts.as_dict()["loss"])
    return losses


def graph_twins(amp: str, ramp_epochs: float = 0) -> tuple[list[TrainStep], list[OKDHPNet]]:
    """Two identical tiny networks with their eager steps (fp32 math where it matters: no TF32, no cuDNN timing)."""
    torch.manual_seed(0)
    nets = [OKDHPNet(get_preset("tiny").network_spec()).to(CUDA).to(memory_format=torch.channels_last)]
    nets.append(OKDHPNet(get_preset("tiny").network_spec()).to(CUDA).to(memory_format=torch.channels_last))
    nets[1].load_state_dict(nets[0].state_dict())
    steps = []
    for net in nets:
        autocast, scaler, _ = amp_setup(amp, CUDA)
        optimizer = make_adam(net.parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0 - 0.02 * it)  # the lr moves every step
        steps.append(
            TrainStep(
                net,
                OKDHPLoss("okdhp", kl_temperature=0.1, ramp_epochs=ramp_epochs),
                optimizer,
                scheduler,
                scaler,
                autocast,
                DistContext(0, 1, 0, CUDA),
                channels_last=True,
            )
        )
    return steps, nets


@pytest.fixture
def exact_math():
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = (
        False,
        True,
        False,
    )
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_graphed_step_trains_like_the_eager_one(amp, exact_math):
    if amp == "bf16" and not native_bf16(CUDA):
        pytest.skip("this GPU has no native bf16")
    (eager, inner), nets = graph_twins(amp, ramp_epochs=4)
    graphed = GraphedStep(inner, warmup=2)
    batches = [tiny_batch(seed=seed) for seed in range(3)]
    losses = [], []
    held = None
    for i in range(12):
        epoch = 0.5 * i  # the KL ramp changes every step: the graph must read it, not freeze it
        batch = batches[i % 3]  # and so does the batch: a graph that kept its first inputs would drift from eager
        for out, step in zip(losses, (eager, graphed)):
            parts, finite = step(batch, epoch)
            assert finite, parts.as_dict()
            out.append(parts.as_dict())
        if i == 3:
            held = losses[1][-1], parts
    assert graphed.captured
    assert held[1].as_dict() == held[0]  # a graphed step's LossParts are a copy: later replays leave them alone
    tol = 1e-3 if amp == "off" else 3e-2  # atomic-add backward kernels (pooling, upsampling) differ run to run
    for a, b in zip(*losses):
        assert b["loss"] == pytest.approx(a["loss"], rel=tol) and b["ramp"] == a["ramp"]
        assert b["kl"] == pytest.approx(a["kl"], rel=tol * 10, abs=1e-6)
    assert losses[1][-1]["loss"] < 0.9 * losses[1][0]["loss"]
    if amp == "off":  # Adam moves a parameter by up to lr per step whatever its gradient's size: 12 steps of 1e-3
        for p, q in zip(nets[0].parameters(), nets[1].parameters()):
            torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-2)
    assert eager.optimizer.param_groups[0]["lr"] == inner.optimizer.param_groups[0]["lr"]  # the schedule ran eagerly


def test_a_batch_of_other_shapes_runs_eagerly_and_the_graph_goes_on(exact_math):
    (eager, inner), _ = graph_twins("off")
    graphed = GraphedStep(inner, warmup=1, log=lambda _: None)
    batches = [tiny_batch(n, seed) for seed, n in enumerate((8, 8, 4, 8, 4, 8))]  # new data every step, two shapes
    for batch in batches:
        a, _ = eager(batch, 0.0)
        b, _ = graphed(batch, 0.0)
        assert b.total.item() == pytest.approx(a.total.item(), rel=1e-3)
    assert graphed.captured


def test_auto_measures_cuda_graphs_against_eager():
    net = OKDHPNet(get_preset("tiny").network_spec()).to(CUDA)
    preset = get_preset("tiny")
    joints = preset.get_skeleton().num_keypoints
    choice = pick_speed(
        net,
        OKDHPLoss("okdhp"),
        lambda n: random_batch(n, preset.input_size, joints, 4, CUDA),
        CUDA,
        "off",
        True,
        None,
        8,
        log=lambda _: None,
        cuda_graphs="auto",
        graph_blocker=None,
    )
    labels = [label for label, _ in choice.measured]
    assert labels == ["fp32, channels_last", "fp32, channels_last, CUDA graph"], choice.measured
    assert all(rate > 0 for _, rate in choice.measured)


def test_a_run_with_cuda_graphs_resumes_with_them(tmp_path, capsys):
    def run(epochs: int, resume: Path | None = None) -> None:
        cfg = load_config(
            "tiny",
            overrides={
                "optim": {"epochs": epochs, "batch_size": 8},
                "data": {"cache_dir": str(tmp_path / "cache"), "train_images": 40, "val_images": 8},
                "system": {
                    "device": "cuda",
                    "amp": "bf16" if native_bf16(CUDA) else "off",
                    "channels_last": True,
                    "cuda_graphs": "on",
                },
                "eval": {"samples": 0},
            },
        )
        train(cfg, tmp_path / "run", resume, progress=False)

    run(1)
    log = capsys.readouterr().out
    assert "CUDA graph" in log and "cannot run here" not in log
    assert torch.load(tmp_path / "run" / "checkpoint-last.pt", weights_only=True)["speed"]["cuda_graphs"] is True
    run(2, tmp_path / "run" / "checkpoint-last.pt")
    log = capsys.readouterr().out
    assert "resumed from" in log and "CUDA graph" in log
    state = torch.load(tmp_path / "run" / "checkpoint-last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["speed"]["cuda_graphs"] is True
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [0, 1] and all(np.isfinite(row["train"]["loss"]) for row in history)


def test_auto_precision_is_bf16_only_where_the_gpu_has_it_natively():
    native = torch.cuda.get_device_capability(CUDA) >= (8, 0)
    assert native_bf16(CUDA) == native
    assert amp_candidates("auto", CUDA) == ["off", "bf16" if native else "fp16"]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_step_learns_on_a_fixed_batch(amp):
    if amp == "bf16" and not native_bf16(CUDA):
        pytest.skip("this GPU has no native bf16")
    _, scaler, label = amp_setup(amp, CUDA)
    assert scaler.is_enabled() == (amp == "fp16") and label.startswith(amp)
    losses = train_steps(amp)
    assert losses[-1] < 0.8 * losses[0], losses


def small_run(out: Path, cache: Path, *extra: str) -> list[str]:
    """A tiny trainer run with its speed switches fixed: the search is tested above, and each run here would
    repeat it, cuDNN's benchmark of every combination included (the kill test, which runs twice, took 122 s
    on an H100 with the switches left open)."""
    return [
        "-m",
        "okdhp_edge.train",
        "--out",
        str(out),
        "--device",
        "cuda",
        "--no-progress",
        "--batch-size",
        "8",
        "--no-channels-last",
        "--cuda-graphs",
        "off",
        "--set",
        f"data.cache_dir={cache}",
        "--set",
        "data.train_images=40",
        "--set",
        "data.val_images=8",
        "--set",
        "eval.samples=0",
        *extra,
    ]


def test_torchrun_one_process_trains_through_nccl_ddp(tmp_path, free_port):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port),
        *small_run(out, tmp_path / "cache", "--epochs", "2"),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "(DDP over nccl)" in log
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert set(history[-1]["val"]) == {"b0", "b1", "b2", "ensemble"}
    state = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert not any(key.startswith("module.") for key in state["model"])


def test_resume_on_cuda_after_a_kill_with_another_amp_setting(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = "bf16" if native_bf16(CUDA) else "off"  # no loss-scaler state: what a later fp16 run used to choke on
    proc = subprocess.Popen(
        [sys.executable, *small_run(out, cache, "--epochs", "200", "--amp", first)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 240
    while not (out / "metrics.jsonl").is_file() or len((out / "metrics.jsonl").read_text().splitlines()) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # no chance to save: the last epoch's checkpoint must do
    proc.wait(timeout=60)
    done = len((out / "metrics.jsonl").read_text().splitlines())
    resumed = subprocess.run(
        [sys.executable, *small_run(out, cache, "--epochs", str(done + 1), "--amp", "fp16", "--resume", "auto")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert f"resumed from {out / 'checkpoint-last.pt'} at epoch {done + 1}" in log
    assert "another AMP setting" in log
    state = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert state["epoch"] == done + 1 and state["speed"]["amp"] == "fp16" and state["scaler"]  # the scaler ran


def test_compiled_step_matches_the_eager_one():
    eager = train_steps("off", steps=3, channels_last=False)
    compiled = train_steps("off", steps=3, compile_model=True, channels_last=False)
    assert compiled[0] == pytest.approx(eager[0], rel=1e-3)  # same weights, same forward
    assert compiled == pytest.approx(eager, rel=2e-2)  # reduction order differs; Adam carries it on
