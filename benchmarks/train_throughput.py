"""Training throughput (images/s per optimisation step) of a preset, with the trainer's own step.

CPU: fp32 at a small batch, NCHW and channels_last. CUDA (when present): fp32, AMP + channels_last, and AMP +
channels_last + torch.compile, with peak GPU memory. Random images with real Gaussian targets;
the step is okdhp_edge.train.step.TrainStep, i.e. exactly what `python -m okdhp_edge.train` runs.

    python benchmarks/train_throughput.py                       # paper-mpii, CPU batch 2 (+ GPU variants if any)
    python benchmarks/train_throughput.py --preset tiny --cpu-batch 16
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from okdhp_edge.codec import HeatmapCodec  # noqa: E402
from okdhp_edge.models import get_preset  # noqa: E402
from okdhp_edge.spec import write_json_atomic  # noqa: E402
from okdhp_edge.train import OKDHPLoss  # noqa: E402
from okdhp_edge.train.distributed import DistContext  # noqa: E402
from okdhp_edge.train.network import build_network, target_branch  # noqa: E402
from okdhp_edge.train.step import TrainStep, amp_setup  # noqa: E402


def make_batch(preset_name: str, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    preset = get_preset(preset_name)
    w, h = preset.input_size
    k = preset.get_skeleton().num_keypoints
    codec = HeatmapCodec((w, h), (w // 4, h // 4))
    rng = np.random.default_rng(0)
    encoded = [codec.encode(rng.uniform([0, 0], [w, h], (k, 2)), np.ones(k)) for _ in range(batch)]
    return {
        "image": torch.from_numpy(rng.standard_normal((batch, 3, h, w), dtype=np.float32)).to(device),
        "target": torch.from_numpy(np.stack([e[0] for e in encoded])).to(device),
        "target_weight": torch.from_numpy(np.stack([e[1] for e in encoded])).to(device),
    }


def measure(preset_name: str, mode: str, device: torch.device, batch: int, steps: int, warmup: int,
            amp: bool = False, channels_last: bool = False, compile_model: bool = False) -> dict:
    torch.manual_seed(0)
    preset = get_preset(preset_name)
    spec = preset.network_spec()
    model = build_network(mode, spec, target_branch(spec, preset, None)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model = torch.compile(model) if compile_model else model
    autocast, scaler, precision = amp_setup(amp, device)
    step = TrainStep(train_model, OKDHPLoss(mode, kl_temperature=0.1, ramp_epochs=0),
                     torch.optim.Adam(model.parameters(), lr=2.5e-4), None, scaler, autocast,
                     DistContext(0, 1, 0, device), channels_last=channels_last)
    data = make_batch(preset_name, batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step(data, 0.0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        parts, finite = step(data, 0.0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        if not finite:
            raise RuntimeError(f"non-finite loss while benchmarking {preset_name}/{mode}: {parts.as_dict()}")
    median = float(np.median(times))
    return {
        "preset": preset_name, "mode": mode, "device": str(device), "batch": batch, "precision": precision,
        "channels_last": channels_last, "compile": compile_model, "steps": steps,
        "step_s_median": round(median, 4), "img_per_s": round(batch / median, 2),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper-mpii")
    p.add_argument("--modes", nargs="+", default=["okdhp", "single"], choices=["okdhp", "independent", "single"])
    p.add_argument("--cpu-batch", type=int, default=2)
    p.add_argument("--gpu-batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-cpu", action="store_true")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant on CUDA")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_throughput.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for mode in args.modes:
        if not args.no_cpu:
            for channels_last in (False, True):
                results.append(measure(args.preset, mode, torch.device("cpu"), args.cpu_batch, args.steps, args.warmup,
                                       channels_last=channels_last))
                print(results[-1], flush=True)
        if torch.cuda.is_available():
            cuda = torch.device("cuda")
            variants = [dict(), dict(amp=True, channels_last=True)]
            if not args.no_compile:
                variants.append(dict(amp=True, channels_last=True, compile_model=True))
            for v in variants:
                results.append(measure(args.preset, mode, cuda, args.gpu_batch, args.steps, max(args.warmup, 3 if v.get("compile_model") else 1), **v))
                print(results[-1], flush=True)
    if not torch.cuda.is_available():
        print("no CUDA device: GPU variants (fp32, AMP + channels_last, + torch.compile) not measured")
    header = f"{'mode':<12} {'device':<8} {'batch':>5} {'precision':<16} {'ch_last':<7} {'compile':<7} {'img/s':>8} {'peak MiB':>9}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        mem = "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}"
        print(f"{r['mode']:<12} {r['device']:<8} {r['batch']:>5} {r['precision']:<16} {str(r['channels_last']):<7} "
              f"{str(r['compile']):<7} {r['img_per_s']:>8.2f} {mem:>9}")
    write_json_atomic(args.out, {
        "benchmark": "train_throughput", "command": " ".join(["python", *sys.argv]), "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "results": results, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
