"""Training throughput (images/s of a full optimisation step), ours beside the official OKDHP step.

Our step is okdhp_edge.train.step.TrainStep, exactly what `python -m okdhp_edge.train` runs, on a
random batch with real Gaussian targets (data loading excluded, as in the official timing). Each
speed variant is a row: fp32 NCHW (the plain baseline), channels_last, bf16 autocast where the
device has native bf16 (the CPU needs AVX512-BF16 or AMX), fp16 on CUDA GPUs without it, and
torch.compile on CUDA; `auto` marks the variant the trainer's own measurement picks.

The official OKDHP training step (github zhengli97/OKDHP, never copied here) is timed in a
subprocess, in the same run, when its scratch copy exists: `../shared/anchors/official_setup.sh`
builds /tmp/okdhp-official and `../shared/anchors/official_step.py` times it (fp32, as released;
`--official-amp` adds its autocast variant). The ratio column divides by the official fp32 step.
Benchmark only on a quiet machine: other CPU load makes OpenMP threads spin and the figures swing
by up to 10x.

    python benchmarks/train_throughput.py --preset paper-mpii --modes okdhp --cpu-batch 2 --threads 2
    python benchmarks/train_throughput.py --no-cpu --gpu-batch 16 --out benchmarks/results/gpu_train_throughput.json
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
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
from okdhp_edge.train.autotune import pick_speed  # noqa: E402
from okdhp_edge.train.distributed import DistContext  # noqa: E402
from okdhp_edge.train.network import build_network, target_branch  # noqa: E402
from okdhp_edge.train.step import TrainStep, amp_setup, native_bf16  # noqa: E402

OFFICIAL_STEP = ROOT.parent / "shared" / "anchors" / "official_step.py"
OFFICIAL_DIR = Path("/tmp/okdhp-official")


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


def _network(preset_name: str, mode: str) -> torch.nn.Module:
    preset = get_preset(preset_name)
    spec = preset.network_spec()
    return build_network(mode, spec, target_branch(spec, preset, None))


def _loss(mode: str) -> OKDHPLoss:
    return OKDHPLoss(mode, kl_temperature=0.1, ramp_epochs=0)


def measure(preset_name: str, mode: str, device: torch.device, batch: int, steps: int, warmup: int,
            amp: str = "off", channels_last: bool = False, compile_model: bool = False) -> dict:
    torch.manual_seed(0)
    model = _network(preset_name, mode).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model = torch.compile(model) if compile_model else model
    autocast, scaler, precision = amp_setup(amp, device)
    step = TrainStep(train_model, _loss(mode), torch.optim.Adam(model.parameters(), lr=2.5e-4), None, scaler, autocast,
                     DistContext(0, 1, 0, device), channels_last=channels_last)
    data = make_batch(preset_name, batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(warmup):
        step(data, 0.0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    warmup_s = time.perf_counter() - start
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
        "who": "okdhp-edge", "preset": preset_name, "mode": mode, "device": str(device), "batch": batch,
        "precision": precision, "channels_last": channels_last, "compile": compile_model, "steps": steps,
        "warmup_s": round(warmup_s, 2), "step_s_median": round(median, 4), "img_per_s": round(batch / median, 3),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
    }


def official(step_script: Path, official_dir: Path, device: torch.device, batch: int, steps: int, warmup: int,
             threads: int | None, amp: bool) -> dict | None:
    """The official step in a subprocess (its modules never mix with ours); None when it is not set up."""
    if not step_script.is_file() or not (official_dir / "OFFICIAL_SOURCE").is_file():
        print(f"official step not timed: needs {step_script} and {official_dir} (../shared/anchors/official_setup.sh)")
        return None
    cmd = [sys.executable, str(step_script), "--official-dir", str(official_dir), "--batch", str(batch),
           "--iters", str(steps), "--warmup", str(warmup), "--device", str(device)]
    if threads:
        cmd += ["--threads", str(threads)]
    if amp:
        cmd.append("--amp")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"official step failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "who": "official", "preset": "paper-mpii", "mode": "okdhp", "device": str(device), "batch": batch,
        "precision": {None: "fp32", "bfloat16": "bf16", "float16": "fp16+GradScaler"}[result["amp"]],
        "channels_last": False, "compile": False, "steps": steps, "step_s_median": result["median_s_per_iter"],
        "img_per_s": result["images_per_s"], "peak_memory_mib": round(result["peak_mem_GiB"] * 1024, 1) if "peak_mem_GiB" in result else None,
        "commit": result["commit"], "params_M": result["params_M"],
    }


def variants(device: torch.device, compile_too: bool) -> list[dict]:
    """fp32 NCHW first (the baseline), then what can be faster on this device."""
    out = [dict(), dict(channels_last=True)]
    if device.type == "cuda":
        half = "bf16" if native_bf16(device) else "fp16"
        out += [dict(amp=half, channels_last=False), dict(amp=half, channels_last=True)]
        if compile_too:
            out.append(dict(amp=half, channels_last=True, compile_model=True))
    elif native_bf16(device):
        out += [dict(amp="bf16", channels_last=False), dict(amp="bf16", channels_last=True)]
    return out


def auto_choice(preset_name: str, mode: str, device: torch.device, batch: int) -> tuple[str, bool]:
    """What the trainer's own measurement (system.amp auto, channels_last null) picks here."""
    choice = pick_speed(_network(preset_name, mode).to(device), _loss(mode),
                        lambda n: make_batch(preset_name, n, device), device, "auto", None,
                        torch.get_num_threads() if device.type == "cpu" else None, batch, log=lambda _: None)
    return choice.amp, choice.channels_last


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper-mpii", help="the official step is the paper-mpii network")
    p.add_argument("--modes", nargs="+", default=["okdhp"], choices=["okdhp", "independent", "single"])
    p.add_argument("--cpu-batch", type=int, default=2)
    p.add_argument("--gpu-batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5, help="timed steps per row (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads, ours and official alike")
    p.add_argument("--no-cpu", action="store_true")
    p.add_argument("--no-gpu", action="store_true")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile row on CUDA")
    p.add_argument("--official-step", type=Path, default=OFFICIAL_STEP)
    p.add_argument("--official-dir", type=Path, default=OFFICIAL_DIR)
    p.add_argument("--official-amp", action="store_true", help="also time the official step under its --amp autocast")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_throughput.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # as the trainer (and the official code) run on CUDA
    devices = ([] if args.no_cpu else [(torch.device("cpu"), args.cpu_batch)])
    if torch.cuda.is_available() and not args.no_gpu:
        devices.append((torch.device("cuda"), args.gpu_batch))
    results: list[dict] = []

    def add(row: dict) -> None:
        """Keep the row and rewrite the JSON at once: a time limit that cuts the run loses nothing measured."""
        results.append(row)
        print(row, flush=True)
        write_json_atomic(args.out, {
            "benchmark": "train_throughput", "command": " ".join(["python", *sys.argv]), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "results": results, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })

    for device, batch in devices:
        warmup = args.warmup if device.type == "cpu" else max(args.warmup, 3)
        if args.preset == "paper-mpii" and "okdhp" in args.modes:
            for amp in ([False, True] if args.official_amp else [False]):
                row = official(args.official_step, args.official_dir, device, batch, args.steps, warmup, args.threads, amp)
                if row:
                    add(row)
        for mode in args.modes:
            picked = auto_choice(args.preset, mode, device, batch)
            for v in variants(device, not args.no_compile):
                row = measure(args.preset, mode, device, batch, args.steps, warmup + (2 if v.get("compile_model") else 0), **v)
                row["auto"] = (v.get("amp", "off"), v.get("channels_last", False)) == picked and not v.get("compile_model")
                add(row)
    if not torch.cuda.is_available():
        print("no CUDA device: GPU rows (fp32, AMP, channels_last, torch.compile) not measured")
    _print_table(results)
    print(f"wrote {args.out}")
    return 0


def _print_table(results: list[dict]) -> None:
    base = {r["device"]: r["img_per_s"] for r in results if r["who"] == "official" and r["precision"] == "fp32"}
    header = (f"{'who':<10} {'mode':<7} {'device':<6} {'batch':>5} {'precision':<15} {'ch_last':<7} {'compile':<7} "
              f"{'img/s':>8} {'vs official':>11} {'peak MiB':>9}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        mem = "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}"
        ratio = f"{r['img_per_s'] / base[r['device']]:.2f}x" if r["device"] in base else "-"
        who = r["who"] + (" *" if r.get("auto") else "")
        print(f"{who:<10} {r['mode']:<7} {r['device']:<6} {r['batch']:>5} {r['precision']:<15} {str(r['channels_last']):<7} "
              f"{str(r['compile']):<7} {r['img_per_s']:>8.2f} {ratio:>11} {mem:>9}")
    print("* = what the trainer picks by measurement here (system.amp auto, channels_last null)")


if __name__ == "__main__":
    sys.exit(main())
