"""Training throughput (images/s of a full optimisation step), ours beside the official OKDHP step.

Our step is okdhp_edge.train.step.TrainStep (with the fused Adam of okdhp_edge.train.optim),
exactly what `python -m okdhp_edge.train` runs, on a random batch with real Gaussian targets (data
loading excluded, as in the official timing). Each speed variant is a row: fp32 NCHW (the plain
baseline), channels_last, bf16 autocast where the device has native bf16 (the CPU needs
AVX512-BF16 or AMX), fp16 on CUDA GPUs without it; on CUDA also each replayed from a CUDA graph
(okdhp_edge.train.graphs.GraphedStep, system.cuda_graphs) and, last, torch.compile in a child
process cut at the time left (--time-budget); `auto` marks the variant the trainer's own
measurement picks. On CUDA the rows run most telling first (official fp32, our graphed and eager
bf16 channels_last and fp32 NCHW), so a time limit that cuts the run loses the least.

The official OKDHP training step (github zhengli97/OKDHP, never copied here) is timed in a
subprocess, in the same run, when its scratch copy exists: `../shared/anchors/official_setup.sh`
builds /tmp/okdhp-official and `../shared/anchors/official_step.py` times it (fp32, as released;
`--official-amp` adds its autocast variant). The ratio column divides by the official fp32 step.
Benchmark only on a quiet machine: other CPU load makes OpenMP threads spin and the figures swing
by up to 10x.

    python benchmarks/train_throughput.py --preset paper-mpii --modes okdhp --cpu-batch 2 --threads 2
    python benchmarks/train_throughput.py --no-cpu --gpu-batch 16 --out benchmarks/results/gpu_train_throughput.json

`--count-ops` counts instead of timing (host work is what bounds a fast GPU's step): the aten ops
and autograd nodes of one full step on the CPU, ours and the official step's (with its released
Adam and with the multi-tensor Adam that CUDA runs by default), into benchmarks/results/step_ops.json.
"""

from __future__ import annotations

import argparse
import importlib.util
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

from okdhp_edge.models import get_preset  # noqa: E402
from okdhp_edge.spec import write_json_atomic  # noqa: E402
from okdhp_edge.train import OKDHPLoss  # noqa: E402
from okdhp_edge.train.autotune import pick_speed, random_batch  # noqa: E402
from okdhp_edge.train.distributed import DistContext  # noqa: E402
from okdhp_edge.train.graphs import GraphedStep  # noqa: E402
from okdhp_edge.train.network import build_network, target_branch  # noqa: E402
from okdhp_edge.train.optim import make_adam  # noqa: E402
from okdhp_edge.train.step import TrainStep, time_steps  # noqa: E402
from okdhp_edge.trainkit.speed import amp_setup, native_bf16  # noqa: E402

OFFICIAL_STEP = ROOT.parent / "shared" / "anchors" / "official_step.py"
OFFICIAL_DIR = Path("/tmp/okdhp-official")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "train_throughput.json"


def make_batch(preset_name: str, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch of the preset's shapes: the trainer's own timing batch."""
    preset = get_preset(preset_name)
    return random_batch(batch, preset.input_size, preset.get_skeleton().num_keypoints, 4, device)


def _network(preset_name: str, mode: str) -> torch.nn.Module:
    preset = get_preset(preset_name)
    spec = preset.network_spec()
    return build_network(mode, spec, target_branch(spec, preset, None))


def _loss(mode: str) -> OKDHPLoss:
    return OKDHPLoss(mode, kl_temperature=0.1, ramp_epochs=0)


def measure(
    preset_name: str,
    mode: str,
    device: torch.device,
    batch: int,
    steps: int,
    warmup: int,
    amp: str = "off",
    channels_last: bool = False,
    compile_model: bool = False,
    cuda_graphs: bool = False,
) -> dict:
    torch.manual_seed(0)
    model = _network(preset_name, mode).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model = torch.compile(model) if compile_model else model
    autocast, scaler, precision = amp_setup(amp, device)
    step = TrainStep(
        train_model,
        _loss(mode),
        make_adam(model.parameters(), lr=2.5e-4),
        None,
        scaler,
        autocast,
        DistContext(0, 1, 0, device),
        channels_last=channels_last,
    )
    untimed = warmup
    if cuda_graphs:
        step = GraphedStep(step, warmup=warmup, log=lambda _: None)
        untimed += 1  # the call that captures (and trains on its batch)
    data = make_batch(preset_name, batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warmup_s, times = time_steps(step, data, device, untimed, steps)
    median = float(np.median(times))
    return {
        "who": "okdhp-edge",
        "preset": preset_name,
        "mode": mode,
        "device": str(device),
        "batch": batch,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile_model,
        "cuda_graphs": cuda_graphs,
        "steps": steps,
        "warmup_s": round(warmup_s, 2),
        "step_s_median": round(median, 4),
        "img_per_s": round(batch / median, 3),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
    }


def official(
    step_script: Path,
    official_dir: Path,
    device: torch.device,
    batch: int,
    steps: int,
    warmup: int,
    threads: int | None,
    amp: bool,
) -> dict | None:
    """The official step in a subprocess (its modules never mix with ours); None when it is not set up."""
    if not step_script.is_file() or not (official_dir / "OFFICIAL_SOURCE").is_file():
        print(f"official step not timed: needs {step_script} and {official_dir} (../shared/anchors/official_setup.sh)")
        return None
    cmd = [
        sys.executable,
        str(step_script),
        "--official-dir",
        str(official_dir),
        "--batch",
        str(batch),
        "--iters",
        str(steps),
        "--warmup",
        str(warmup),
        "--device",
        str(device),
    ]
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
        "who": "official",
        "preset": "paper-mpii",
        "mode": "okdhp",
        "device": str(device),
        "batch": batch,
        "precision": {None: "fp32", "bfloat16": "bf16", "float16": "fp16+GradScaler"}[result["amp"]],
        "channels_last": False,
        "compile": False,
        "cuda_graphs": False,
        "steps": steps,
        "step_s_median": result["median_s_per_iter"],
        "img_per_s": result["images_per_s"],
        "peak_memory_mib": round(result["peak_mem_GiB"] * 1024, 1) if "peak_mem_GiB" in result else None,
        "commit": result["commit"],
        "params_M": result["params_M"],
    }


def variants(device: torch.device) -> list[dict]:
    """fp32 NCHW first on the CPU (the baseline), then what can be faster there. On CUDA the rows
    most likely to decide issue #13 come first: the CUDA graph of half precision + channels_last
    and of fp32 NCHW, the same two eager, then the other layouts graphed and eager."""
    if device.type == "cuda":
        half = "bf16" if native_bf16(device) else "fp16"
        pairs = [(half, True), ("off", False), (half, False), ("off", True)]
        head = [dict(amp=a, channels_last=c, cuda_graphs=g) for a, c in pairs[:2] for g in (True, False)]
        return head + [dict(amp=a, channels_last=c, cuda_graphs=g) for a, c in pairs[2:] for g in (True, False)]
    out = [dict(), dict(channels_last=True)]
    if native_bf16(device):
        out += [dict(amp="bf16", channels_last=False), dict(amp="bf16", channels_last=True)]
    return out


def auto_choice(preset_name: str, mode: str, device: torch.device, batch: int) -> tuple[str, bool, bool]:
    """What the trainer's own measurement (system.amp auto, channels_last null, cuda_graphs auto) picks here."""
    choice = pick_speed(
        _network(preset_name, mode).to(device),
        _loss(mode),
        lambda n: make_batch(preset_name, n, device),
        device,
        "auto",
        None,
        torch.get_num_threads() if device.type == "cpu" else None,
        batch,
        log=lambda _: None,
        cuda_graphs="auto",
        graph_blocker=None if device.type == "cuda" else "CPU",
    )
    return choice.amp, choice.channels_last, choice.cuda_graphs


def compile_row(args: argparse.Namespace, mode: str, budget_s: float) -> dict | None:
    """The torch.compile row (half precision, channels_last, eager step) in a child process killed
    after `budget_s` (compiling this network took minutes on an H200): None when it ran out."""
    if budget_s < 30:
        print(f"torch.compile row skipped: {budget_s:.0f} s left of --time-budget")
        return None
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--compile-row",
        "--preset",
        args.preset,
        "--modes",
        mode,
        "--gpu-batch",
        str(args.gpu_batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s)
    except subprocess.TimeoutExpired:
        print(f"torch.compile row cut after {budget_s:.0f} s (compiling had not finished)")
        return None
    if proc.returncode != 0:
        print(f"torch.compile row failed:\n{proc.stderr[-2000:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count_ops(run) -> dict[str, int]:
    """aten ops of one call of `run` after an untimed one, from torch.profiler: top level (each one
    Python / dispatcher work and, on a GPU, a kernel launch or more) and at every level."""
    run()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    aten = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return {"ops_top_level": len(top), "ops_all_levels": len(aten)}


def autograd_nodes(total: torch.Tensor) -> int:
    """Nodes of the autograd graph behind `total` (the backward's Python-free but per-node host work)."""
    seen, todo = set(), [total.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo += [n for n, _ in node.next_functions]
    return len(seen)


def our_ops(preset_name: str, mode: str, batch: int) -> dict:
    """Our full step (fp32 NCHW, fused Adam), as the trainer runs it, on the CPU."""
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = _network(preset_name, mode)
    autocast, scaler, _ = amp_setup("off", cpu)
    step = TrainStep(
        model, _loss(mode), make_adam(model.parameters(), lr=2.5e-4), None, scaler, autocast, DistContext(0, 1, 0, cpu)
    )
    data = make_batch(preset_name, batch, cpu)
    counts = count_ops(lambda: step(data, 0.0)[0].as_dict())
    parts = step.forward(*step.inputs(data), 0.0)
    return {
        "who": "okdhp-edge",
        "preset": preset_name,
        "mode": mode,
        "batch": batch,
        "optimizer": "Adam fused",
        **counts,
        "autograd_nodes": autograd_nodes(parts.total),
    }


def official_ops(step_script: Path, official_dir: Path, batch: int, foreach: bool) -> dict:
    """The official step's counts, in this process (run as a child of --count-ops, so its modules
    never mix with ours): built with official_step.py's own helpers, the iteration as it times it."""
    spec = importlib.util.spec_from_file_location("official_step", step_script)
    anchor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anchor)
    tree, _, _ = anchor.load_official_config(official_dir)
    cfg = anchor.as_namespace(tree)
    net = anchor.import_by_path("okdhp_official_model", official_dir / "lib" / "models" / f"{cfg.MODEL.NAME}.py")
    lib = anchor.import_by_path("okdhp_official_loss", official_dir / anchor.LOSS_FILE)
    torch.manual_seed(0)
    model = net.get_pose_net(cfg, is_train=True).train()
    mse, kld = lib.JointsMSELoss(use_target_weight=bool(cfg.LOSS.USE_TARGET_WEIGHT)), lib.JointsKLDLoss()
    optimizer = (
        torch.optim.Adam(model.parameters(), lr=float(cfg.TRAIN.LR), foreach=True)
        if foreach
        else anchor.make_optimizer(cfg.TRAIN, model.parameters())
    )
    images, target, weight = anchor.synthetic_batch(
        batch,
        int(cfg.MODEL.NUM_JOINTS),
        tuple(cfg.MODEL.IMAGE_SIZE),
        tuple(cfg.MODEL.HEATMAP_SIZE),
        float(cfg.MODEL.SIGMA),
        0,
        torch.device("cpu"),
    )

    def loss() -> tuple[torch.Tensor, ...]:
        outputs, ensemble = model(images)
        hard = sum(mse(o, target, weight) for o in outputs)
        soft = (
            float(cfg.TRAIN.KD_WEIGHT)
            * anchor.consistency_weight(0, cfg.TRAIN.LENGTH)
            * sum(kld(o, ensemble, weight) for o in outputs)
        )
        ens = float(cfg.TRAIN.ENS_WEIGHT) * mse(ensemble, target, weight)
        return hard, ens, soft, hard + ens + soft

    def iteration() -> None:
        optimizer.zero_grad()
        *terms, total = loss()
        total.backward()
        optimizer.step()
        [float(t.detach()) for t in terms]

    counts = count_ops(iteration)
    return {
        "who": "official",
        "preset": "paper-mpii",
        "mode": "okdhp",
        "batch": batch,
        "optimizer": "Adam foreach (CUDA's default)" if foreach else "Adam as released (the CPU's per-tensor loop)",
        **counts,
        "autograd_nodes": autograd_nodes(loss()[-1]),
    }


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
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="default: benchmarks/results/train_throughput.json (step_ops.json with --count-ops)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=600.0,
        help="seconds this run may take: the torch.compile row, last, gets what is left (minus a margin)",
    )
    p.add_argument("--compile-row", action="store_true", help=argparse.SUPPRESS)  # the child process of compile_row
    p.add_argument(
        "--count-ops", action="store_true", help="count ops per step on the CPU (ours, official) instead of timing"
    )
    p.add_argument(
        "--official-ops", choices=["released", "foreach"], help=argparse.SUPPRESS
    )  # the child process of --count-ops
    args = p.parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    if args.official_ops:
        print(
            json.dumps(
                official_ops(args.official_step, args.official_dir, args.cpu_batch, args.official_ops == "foreach")
            )
        )
        return 0
    if args.count_ops:
        return write_op_counts(args)
    torch.backends.cudnn.benchmark = True  # as the trainer (and the official code) run on CUDA
    if args.compile_row:
        half = "bf16" if native_bf16(torch.device("cuda")) else "fp16"
        row = measure(
            args.preset,
            args.modes[0],
            torch.device("cuda"),
            args.gpu_batch,
            args.steps,
            max(args.warmup, 3) + 2,
            amp=half,
            channels_last=True,
            compile_model=True,
        )
        print(json.dumps(row))
        return 0
    devices = [] if args.no_cpu else [(torch.device("cpu"), args.cpu_batch)]
    if torch.cuda.is_available() and not args.no_gpu:
        devices.append((torch.device("cuda"), args.gpu_batch))
    results: list[dict] = []
    failures: list[dict] = []

    def add(row: dict) -> None:
        """Keep the row and rewrite the JSON at once: a time limit that cuts the run loses nothing measured."""
        results.append(row)
        print(row, flush=True)
        save()

    def save() -> None:
        """Rewrite the JSON with the rows as they are now."""
        write_json_atomic(
            args.out,
            {
                "benchmark": "train_throughput",
                "command": " ".join(["python", *sys.argv]),
                "torch": torch.__version__,
                "cpu": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "results": results,
                **({"failures": failures} if failures else {}),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )

    for device, batch in devices:
        warmup = args.warmup if device.type == "cpu" else max(args.warmup, 3)
        official_rows = args.preset == "paper-mpii" and "okdhp" in args.modes

        def official_row(amp: bool, device=device, batch=batch, warmup=warmup) -> None:
            row = official(args.official_step, args.official_dir, device, batch, args.steps, warmup, args.threads, amp)
            if row:
                add(row)

        if official_rows:
            official_row(False)
        ours: dict[str, list[tuple[dict, dict]]] = {mode: [] for mode in args.modes}
        for mode in args.modes:
            for v in variants(device):
                try:
                    row = measure(args.preset, mode, device, batch, args.steps, warmup, **v)
                except RuntimeError as err:  # a capture that fails must not cost the eager rows after it
                    if not v.get("cuda_graphs"):
                        raise
                    failures.append({"mode": mode, **v, "error": str(err).splitlines()[0][:500]})
                    print(f"CUDA-graph row {v} failed: {failures[-1]['error']}", flush=True)
                    save()
                    continue
                ours[mode].append((v, row))
                add(row)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        if official_rows and args.official_amp:
            official_row(True)
        for mode in args.modes:  # after the rows, so a failing measurement here loses none of them
            picked = auto_choice(args.preset, mode, device, batch)
            for v, row in ours[mode]:
                row["auto"] = (
                    v.get("amp", "off"),
                    v.get("channels_last", False),
                    v.get("cuda_graphs", False),
                ) == picked
            save()
        if device.type == "cuda" and not args.no_compile:
            for mode in args.modes:
                row = compile_row(args, mode, args.time_budget - (time.perf_counter() - started) - 15)
                if row:
                    add(row)
    if not torch.cuda.is_available():
        print("no CUDA device: GPU rows (fp32, AMP, channels_last, CUDA graphs, torch.compile) not measured")
    _print_table(results)
    print(f"wrote {args.out}")
    return 0


def write_op_counts(args: argparse.Namespace) -> int:
    """--count-ops: ours in this process, the official step (both Adams) in child processes."""
    rows = [our_ops(args.preset, mode, args.cpu_batch) for mode in args.modes]
    if (
        args.preset == "paper-mpii"
        and "okdhp" in args.modes
        and args.official_step.is_file()
        and (args.official_dir / "OFFICIAL_SOURCE").is_file()
    ):
        for adam in ("released", "foreach"):
            proc = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--official-ops",
                    adam,
                    "--cpu-batch",
                    str(args.cpu_batch),
                    "--official-step",
                    str(args.official_step),
                    "--official-dir",
                    str(args.official_dir),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(f"official op count failed:\n{proc.stderr[-2000:]}")
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        print(
            f"official step not counted: needs {args.official_step} and {args.official_dir} "
            "(../shared/anchors/official_setup.sh)"
        )
    out = args.out if args.out != DEFAULT_OUT else ROOT / "benchmarks" / "results" / "step_ops.json"
    write_json_atomic(
        out,
        {
            "benchmark": "step_ops",
            "command": " ".join(["python", *sys.argv]),
            "torch": torch.__version__,
            "results": rows,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    print(
        f"\n{'who':<11} {'mode':<12} {'batch':>5} {'optimizer':<45} {'top-level ops':>13} {'all ops':>8} "
        f"{'autograd nodes':>14}"
    )
    for r in rows:
        print(
            f"{r['who']:<11} {r['mode']:<12} {r['batch']:>5} {r['optimizer']:<45} {r['ops_top_level']:>13} "
            f"{r['ops_all_levels']:>8} "
            f"{r['autograd_nodes']:>14}"
        )
    print(f"wrote {out}")
    return 0


def _print_table(results: list[dict]) -> None:
    base = {r["device"]: r["img_per_s"] for r in results if r["who"] == "official" and r["precision"] == "fp32"}
    header = (
        f"{'who':<10} {'mode':<7} {'device':<6} {'batch':>5} {'precision':<15} {'ch_last':<7} {'compile':<7} "
        f"{'graph':<5} "
        f"{'img/s':>8} {'vs official':>11} {'peak MiB':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        mem = "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}"
        ratio = f"{r['img_per_s'] / base[r['device']]:.2f}x" if r["device"] in base else "-"
        who = r["who"] + (" *" if r.get("auto") else "")
        print(
            f"{who:<10} {r['mode']:<7} {r['device']:<6} {r['batch']:>5} {r['precision']:<15} "
            f"{str(r['channels_last']):<7} "
            f"{str(r['compile']):<7} {str(r.get('cuda_graphs', False)):<5} {r['img_per_s']:>8.2f} {ratio:>11} {mem:>9}"
        )
    print("* = what the trainer picks by measurement here (system.amp auto, channels_last null, cuda_graphs auto)")


if __name__ == "__main__":
    sys.exit(main())
