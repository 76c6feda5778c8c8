"""Where ONNX Runtime's INT8 time goes (#26): the graph it runs after its optimisations, and a
per-operator profile.

For each INT8 .onnx file: the operators of the graph ONNX Runtime builds at its full optimisation
level (a QDQ pair left around an operator shows as a float operator between QuantizeLinear and
DequantizeLinear; fused integer kernels show as QLinear*), then ONNX Runtime's own profiler over
--runs calls on one random input at --threads threads (spinning off): each operator type's share of
the kernel time and the layers that take the most, by output shape. Shares hold on a busy machine;
absolute times need a quiet one (benchmarks/export_matrix.py times the files side by side).
Writes benchmarks/results/ort_int8_profile.json.

    python benchmarks/ort_int8_profile.py EXPORT/edge-b2-1x64-int8.onnx [...] [--runs 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from report import write_result

HERE = Path(__file__).parent


def optimised_graph(path: Path) -> tuple[Counter, Counter]:
    """Operator counts of the graph ONNX Runtime runs (ORT_ENABLE_ALL, CPU), and of the operators
    in it that compute on float: fed by a DequantizeLinear (a QDQ pair the fusions left)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        options.log_severity_level = 3  # its warning that the file fits this CPU only is the point here
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        nodes = list(onnx.load(options.optimized_model_filepath).graph.node)
    dequantised = {out for node in nodes if node.op_type == "DequantizeLinear" for out in node.output}
    on_float = Counter(
        node.op_type
        for node in nodes
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") and dequantised.intersection(node.input)
    )
    return Counter(node.op_type for node in nodes), on_float


def profile(path: Path, runs: int, threads: int) -> dict:
    """Per operator type: share of kernel time; the layers taking the most; total ms per call."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in spec.shape]
        feed = {spec.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    by_op, by_layer = Counter(), Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name", "?")
            shapes = event["args"].get("output_type_shape") or [{}]
            by_op[op] += event["dur"]
            by_layer[f"{op} -> {list(shapes[0].values())[0] if shapes[0] else '?'}"] += event["dur"]
    total = sum(by_op.values())
    return {
        "ms_per_call": round(total / runs / 1000, 3),
        "share_by_op": {op: round(100 * t / total, 1) for op, t in by_op.most_common()},
        "top_layers": {layer: round(100 * t / total, 1) for layer, t in by_layer.most_common(10)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="INT8 .onnx files (python -m okdhp_edge.export ...)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "ort_int8_profile.json")
    args = parser.parse_args(argv)
    rows = {}
    for path in args.models:
        if not path.is_file():
            parser.error(f"{path}: no such file; export an INT8 .onnx first (python -m okdhp_edge.export)")
        ops, on_float = optimised_graph(path)
        row = rows[path.name] = {
            "optimised_ops": dict(ops.most_common()),
            "ops_on_float": dict(on_float.most_common()),
            **profile(path, args.runs, args.threads),
        }
        shares = ", ".join(f"{op} {s} %" for op, s in list(row["share_by_op"].items())[:4])
        print(f"{path.name}: {sum(on_float.values())} operators on float ({dict(on_float)}); {shares}", flush=True)
    write_result(
        args.json, {"onnxruntime": ort.__version__, "threads": args.threads, "runs": args.runs, "models": rows}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
