"""Export: ONNX (fp32/fp16/int8), TFLite (fp32/int8), Core ML (structural), TensorRT (deferred),
metadata round trip, verification report, --max-drop, CLI and errors.

The student is a micro hourglass (trunk 1x16, branch 1x24, depth 2, 48x64 input) fitted for a
few dozen steps on the synthetic val crops, so its heatmaps are peaky and its keypoints mean
something; every converter and runtime below is the real one.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from okdhp_edge.data import build_dataset
from okdhp_edge.export import (
    FORMATS,
    PRECISIONS,
    TARGETS,
    ConversionError,
    ExportError,
    MissingDependencyError,
    export,
    read_artifact_spec,
    read_embedded_spec,
    resolve_config,
)
from okdhp_edge.export.__main__ import main as cli_main
from okdhp_edge.export.calibration import load_crops, open_held_out
from okdhp_edge.export.equalize import equalize_activations
from okdhp_edge.export.errors import require
from okdhp_edge.export.graph import fold_batchnorm
from okdhp_edge.export.quantize import residual_stream_nodes
from okdhp_edge.models import (
    BranchSpec,
    OKDHPNet,
    Preset,
    describe_student,
    extract_student,
    load_student,
    save_student,
)
from okdhp_edge.preprocess import crop_people, normalize
from okdhp_edge.spec import ModelSpec

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
MICRO = Preset("micro", "test-sized student", "coco17", (48, 64), 1, 16, (BranchSpec(1, 24),), hourglass_depth=2)
DATA = dict(calib_images=16, verify_images=24, synthetic_images=24, num_threads=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two cores shared by several jobs: one thread each avoids OpenMP spin contention (40x here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fit(model: torch.nn.Module, spec: ModelSpec, cache: Path, steps: int = 60) -> None:
    """A few dozen Adam steps on the synthetic val crops (cached in `cache`): peaky heatmaps; eval mode after."""
    data = build_dataset("synthetic", "val", spec.input, spec.skeleton, cache_dir=cache, synthetic_images=24)
    items = [data[i] for i in range(len(data))]
    x, y, w = (torch.from_numpy(np.stack([it[k] for it in items])) for k in ("image", "target", "target_weight"))
    optimizer = torch.optim.Adam(model.parameters(), 5e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (16,))
        loss = (((model(x[idx]) - y[idx]) ** 2).mean((2, 3)) * w[idx]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """A fitted micro student, its synthetic val data cache and an outlier twin for --max-drop."""
    root = tmp_path_factory.mktemp("export")
    cache = root / "cache"
    torch.manual_seed(0)
    net = OKDHPNet(MICRO.network_spec())
    student = extract_student(net, 0)
    spec = describe_student(MICRO, 0)
    fit(student, spec, cache)
    path = save_student(student, spec, root / "students" / "micro")
    # Same keypoints in float (a constant on one channel moves no argmax), but that channel's
    # +1000 stretches the output's per-tensor INT8 range until every other heatmap rounds to 0.
    outlier = copy.deepcopy(student)
    with torch.no_grad():
        outlier.branch.stacks[-1].score.bias[0] += 1000.0
    outlier_path = save_student(outlier, spec, root / "students" / "outlier")
    return {"root": root, "cache": cache, "student": path, "outlier": outlier_path}


def run_export(workspace, fmt: str, precision: str, sub: str = "out", **options):
    options = {**DATA, "cache_dir": workspace["cache"], **options}
    return export(workspace["student"], fmt, precision, workspace["root"] / sub, **options)


@pytest.fixture(scope="module")
def onnx_results(workspace):
    return {p: run_export(workspace, "onnx", p) for p in ("fp32", "fp16", "int8")}


@pytest.fixture(scope="module")
def tflite_results(workspace):
    return {
        "fp32": run_export(workspace, "tflite", "fp32"),
        "int8": run_export(workspace, "tflite", "int8", nhwc=True),
        "int8-mixed": run_export(workspace, "tflite", "int8", sub="tflite-mixed", int8_residual="float"),
    }


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def tflite_operators(path: Path) -> dict[str, int]:
    """Operator counts read from the flatbuffer itself."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    graph = model.Subgraphs(0)
    counts: dict[str, int] = {}
    for i in range(graph.OperatorsLength()):
        code = codes[graph.Operators(i).OpcodeIndex()]
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_student_is_fitted_so_accuracy_is_meaningful(onnx_results):
    torch_pck = onnx_results["fp32"].report["verification"]["torch"]["pck@0.2"]
    assert torch_pck > 50.0, f"the fixture student should locate keypoints (PCK {torch_pck})"


def test_fold_batchnorm_keeps_outputs_and_removes_every_batchnorm(workspace):
    model, _ = load_student(workspace["student"])
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in folded.modules()), (
        "pre-activation BN -> depthwise"
    )
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)


def test_calibration_crops_are_the_inference_pixels(workspace):
    _, spec = load_student(workspace["student"])
    held = open_held_out("synthetic", spec, 8, 8, cache_dir=workspace["cache"], synthetic_images=24)
    assert len(np.intersect1d(held.calib_indices, held.verify_indices)) == 0
    crops = load_crops(held.dataset, held.calib_indices[:2])
    for row, index in enumerate(crops.indices):
        sample = held.dataset.samples[index]
        image = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
        raw, back = crop_people(image, sample.bbox[None], spec.input)
        np.testing.assert_allclose(crops.images[row], normalize(raw, spec.input)[0], atol=1e-5)
        np.testing.assert_allclose(crops.crop_to_image[row], back[0], atol=1e-4)
    train = open_held_out("synthetic", spec, 8, 8, cache_dir=workspace["cache"], synthetic_images=24, split="train")
    assert train.describe()["split"] == "train" and "/train/" in str(train.dataset.samples[0].image_path).replace(
        "\\", "/"
    )


def test_calibration_on_several_sources_joined(workspace):
    """--calib-data A+B: crops from every part in proportion to its size, indexed across the parts
    (the boxes verification reads match the crops); verified by PCK, since COCO AP needs one file."""
    _, spec = load_student(workspace["student"])
    kw = dict(cache_dir=workspace["cache"], synthetic_images=24)
    one = open_held_out("synthetic", spec, 8, 8, **kw)
    two = open_held_out("synthetic + synthetic", spec, 40, 8, **kw)
    n = len(one.dataset)
    assert len(two.dataset) == 2 * n and two.dataset.annotation_file is None
    assert (two.calib_indices >= n).any() and (two.calib_indices < n).any()
    crops = load_crops(two.dataset, np.array([1, n + 1]))
    assert crops.indices.tolist() == [1, n + 1]
    np.testing.assert_array_equal(crops.images[0], crops.images[1])  # the same crop, from each part
    boxes = two.dataset.ground_truth()["bbox"]
    np.testing.assert_array_equal(boxes[1], boxes[n + 1])
    result = export(
        workspace["student"],
        format="onnx",
        precision="int8",
        out_dir=workspace["root"] / "joined",
        **{**DATA, "calib_data": "synthetic+synthetic", "cache_dir": workspace["cache"]},
    )
    verification = result.report["verification"]
    assert result.report["data"]["dataset_size"] == 2 * n and verification["metric"] == "pck@0.2"
    assert "ap" not in verification["torch"] and verification["drop"] < 10


def test_onnx_fp32_contract_dynamic_batch_and_exactness(onnx_results, workspace):
    result = onnx_results["fp32"]
    path = result.artifact
    assert path.name == "micro-fp32.onnx" and result.sidecar.name == "micro-fp32.onnx.json"
    assert not list(path.parent.glob("*.data")), "the ONNX must be one self-contained file"
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 64, 48)).astype(np.float32)
        assert ort_run(path, x).shape == (batch, 17, 16, 12)
    spec = json.loads(result.sidecar.read_text())
    written = {
        "format",
        "precision",
        "input_name",
        "output_name",
        "input_layout",
        "output_layout",
        "input_dtype",
        "batch",
        "source_sha256",
        "created",
        "okdhp_edge_version",
        "device_specific",
    }
    assert written <= set(spec["export"]) and ModelSpec.from_dict(spec).to_dict() == spec
    expected = {
        "format": "onnx",
        "precision": "fp32",
        "input_name": "input",
        "output_name": "heatmaps",
        "input_layout": "NCHW",
        "output_layout": "NCHW",
        "input_dtype": "float32",
        "batch": "dynamic",
        "device_specific": False,
    }
    assert {k: spec["export"][k] for k in expected} == expected
    assert (
        spec["export"]["source_sha256"] == __import__("hashlib").sha256(workspace["student"].read_bytes()).hexdigest()
    )
    v = result.report["verification"]
    assert v["ran"] and v["heatmap_max_abs_diff"] < 1e-4 and v["kp_agreement@0.05"] == 100.0
    assert result.report["status"] == "passed" and abs(v["drop"]) < 1e-9


def test_metadata_round_trip_sidecar_and_embedded(onnx_results, tflite_results):
    for result in (onnx_results["fp32"], onnx_results["int8"], tflite_results["int8"]):
        sidecar = read_artifact_spec(result.artifact)
        embedded = read_embedded_spec(result.artifact)
        assert embedded.to_dict() == sidecar.to_dict()
        assert sidecar.skeleton.keypoints[0] == "nose" and sidecar.skeleton.flip_pairs
        assert sidecar.export.precision == result.report["precision"]
    props = {p.key for p in onnx.load(str(onnx_results["fp32"].artifact)).metadata_props}
    assert "okdhp_spec" in props


def test_onnx_fp16_has_half_weights_float_io(onnx_results):
    result = onnx_results["fp16"]
    model = onnx.load(str(result.artifact))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    v = result.report["verification"]
    assert v["heatmap_max_abs_diff"] < 0.02 * v["heatmap_peak"] and v["kp_agreement@0.05"] >= 95.0


def _conv_weight_types(model) -> dict[bool, set]:
    """{depthwise?: weight element types} of every Conv: int8 behind a DequantizeLinear, else float."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    kinds: dict[bool, set] = {True: set(), False: set()}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        depthwise = next((a.i for a in conv.attribute if a.name == "group"), 1) > 1
        dq = producers.get(conv.input[1])
        kinds[depthwise].add(
            inits[dq.input[0]].dtype.name
            if dq is not None and dq.op_type == "DequantizeLinear"
            else inits[conv.input[1]].dtype.name
        )
    return kinds


def test_onnx_int8_is_static_per_channel_qdq(onnx_results):
    result = onnx_results["int8"]
    model = onnx.load(str(result.artifact))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert not ops & {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}, "dynamic quantization is banned"
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    per_channel = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and inits.get(n.input[1]) is not None and inits[n.input[1]].size > 1
    ]
    assert per_channel, "conv weights should carry one scale per output channel"
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.uint8 for z in zero_points)
    # default: full INT8, every conv weight (the BatchNorm depthwise ones too) and every sum
    assert _conv_weight_types(model) == {False: {"int8"}, True: {"int8"}}
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert all(n.output[0] in quantized for n in model.graph.node if n.op_type == "Add"), "every sum in int8"
    v = result.report["verification"]
    # 0.05 of the box is ~2.5 px in this 48x64 crop, under one heatmap pixel (4 px): a strict bar
    assert v["kp_agreement@0.05"] >= 65.0 and v["drop"] < 10.0
    spec = read_artifact_spec(result.artifact)
    assert spec.export.int8_scheme == "qdq" and spec.export.details["calibration"]["images"] == DATA["calib_images"]
    assert spec.export.details["int8_residual"] == "int8" and spec.export.details["equalized"] is True
    assert (
        spec.export.details["equalization"]["domains"] > 0 and spec.export.details["calibration"]["method"] == "average"
    )


def test_onnx_int8_residual_float_keeps_sums_and_batchnorms_float(workspace, onnx_results):
    result = run_export(workspace, "onnx", "int8", sub="int8-mixed", int8_residual="float")
    model = onnx.load(str(result.artifact))
    assert _conv_weight_types(model) == {False: {"int8"}, True: {"float32"}}
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert any(n.op_type == "Add" and n.output[0] not in quantized for n in model.graph.node), "sums stay float"
    assert read_artifact_spec(result.artifact).export.details["int8_residual"] == "float"
    assert result.report["verification"]["drop"] < 10.0
    with pytest.raises(ExportError, match="Core ML INT8 quantizes weights only"):
        resolve_config("coreml", "int8", int8_residual="float")


def test_residual_stream_nodes_are_sums_pools_upsamplings_and_batchnorms(onnx_results):
    model = onnx.load(str(onnx_results["fp32"].artifact))
    names = set(residual_stream_nodes(onnx_results["fp32"].artifact))
    kinds = {n.name: n.op_type for n in model.graph.node}
    assert {kinds[n] for n in names} == {"Add", "MaxPool", "Resize", "Conv"}
    assert all(n in names for n, kind in kinds.items() if kind in ("Add", "MaxPool", "Resize"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert 0 < sum(n.name in names for n in convs) < len(convs), "only the depthwise (BatchNorm) convs"


def stretched_student(seed: int) -> torch.nn.Module:
    """A fixed, untrained micro student whose BatchNorms stretch channels over 0.1-10x.

    Seeded weights, no training: the equalization tests depend on torch's generator only,
    not on how a briefly trained student came out with the day's numpy and OpenCV.
    """
    torch.manual_seed(seed)
    student = extract_student(OKDHPNet(MICRO.network_spec()), 0).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in student.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.copy_(10 ** (torch.rand(bn.num_features, generator=generator) * 2 - 1))
            bn.bias.copy_(torch.rand(bn.num_features, generator=generator) * 0.2 - 0.1)
    return student


def test_equalization_is_exact_in_float_and_evens_channel_ranges():
    folded = fold_batchnorm(stretched_student(0))
    calibration = np.random.default_rng(0).normal(size=(8, 3, 64, 48)).astype(np.float32)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(4, 3, 64, 48)).astype(np.float32))
    with torch.no_grad():
        before = folded(x)
    report = equalize_activations(folded, calibration)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), before, rtol=1e-4, atol=1e-5 * before.abs().max().item())
    summary = report.to_dict()
    assert summary["domains"] > 5 and summary["skipped_domains"] == 0
    # The BatchNorms' 100x stretch is what equalization removes (seeds 0-4 measured: median
    # spread 130-240x before, 4-6.5x after).
    assert summary["spread_after"]["median"] * 10 < summary["spread_before"]["median"]


def test_equalization_leaves_a_domain_that_reaches_the_output_alone():
    class SumOut(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 4, 1), torch.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return torch.relu(self.a(x) + self.b(x))

    net = torch.fx.symbolic_trace(SumOut())
    with torch.no_grad():
        net.a.weight[0] *= 100.0  # channel 0 is 100x wider: a domain equalization would rescale
    weights = net.a.weight.detach().clone()
    report = equalize_activations(net, np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32))
    assert report.domains == [] and report.skipped == 1
    assert torch.equal(net.a.weight, weights), "the network output must keep its values"


def test_report_files_collect_every_artifact(onnx_results, workspace):
    out = workspace["root"] / "out"
    entries = json.loads((out / "export_report.json").read_text())["artifacts"]
    assert {"micro-fp32.onnx", "micro-fp16.onnx", "micro-int8.onnx"} <= set(entries)
    table = (out / "export_report.md").read_text()
    assert "| micro-int8.onnx | onnx | int8 |" in table and "pck@0.2" in table
    assert entries["micro-int8.onnx"]["data"]["overlap"] == 0


def test_tflite_fp32_matches_torch(tflite_results):
    result = tflite_results["fp32"]
    assert result.artifact.name == "micro-fp32.tflite"
    spec = read_artifact_spec(result.artifact)
    assert spec.export.batch == 1 and spec.export.input_dtype == "float32"
    v = result.report["verification"]
    assert (
        v["runner"].startswith("ai-edge-litert")
        and v["heatmap_max_abs_diff"] < 1e-4
        and v["kp_agreement@0.05"] == 100.0
    )


def test_tflite_int8_full_integer_nhwc(tflite_results):
    from ai_edge_litert.interpreter import Interpreter

    result = tflite_results["int8"]
    spec = read_artifact_spec(result.artifact)
    assert spec.export.input_layout == "NHWC" and spec.input.layout == "NHWC"
    assert spec.export.input_dtype == "int8" and "scale" in spec.export.details["input_quantization"]
    detail = Interpreter(model_path=str(result.artifact)).get_input_details()[0]
    assert tuple(detail["shape"]) == (1, 64, 48, 3) and detail["dtype"] == np.int8
    ops = tflite_operators(result.artifact)
    assert ops["CONV_2D"] > 0 and ops["ADD"] > 0
    assert "DEQUANTIZE" not in ops, f"full-integer: no op may fall back to float ({ops})"
    v = result.report["verification"]
    assert v["ran"] and v["kp_agreement@0.05"] >= 65.0 and v["drop"] < 10.0
    assert spec.export.details["int8_residual"] == "int8" and spec.export.details["equalized"] is True


def test_tflite_int8_residual_float_is_a_mixed_model(tflite_results):
    result = tflite_results["int8-mixed"]
    spec = read_artifact_spec(result.artifact)
    assert spec.export.details["int8_residual"] == "float"
    ops = tflite_operators(result.artifact)
    assert (
        ops["CONV_2D"] > 0 and ops.get("ADD", 0) > 0 and ops.get("QUANTIZE", 0) > 0 and ops.get("DEQUANTIZE", 0) > 0
    ), ops
    v = result.report["verification"]
    assert v["ran"] and v["kp_agreement@0.05"] >= 65.0 and v["drop"] < 10.0


def test_coreml_fp16_checked_structurally(workspace):
    result = run_export(workspace, "coreml", "fp16", sub="coreml", max_batch=8)
    assert result.artifact.name == "micro-fp16.mlpackage" and result.artifact.is_dir()
    report = result.report
    assert report["status"] == "structure-checked", report.get("failure")
    assert not report["verification"]["ran"] and "prediction not run" in report["verification"]["reason"]
    assert report["structure"]["input"]["ranges"][0] == [1, 8] or report["structure"]["input"]["ranges"][0] == (1, 8)
    assert report["structure"]["conv_ops"] > 0 and "okdhp_spec" in report["structure"]["user_metadata_keys"]
    assert read_embedded_spec(result.artifact).export.format == "coreml"
    assert read_artifact_spec(result.artifact).export.precision == "fp16"


def test_coreml_int8_weights_with_image_input(workspace):
    result = run_export(workspace, "coreml", "int8", sub="coreml", image_input=True, verify_images=0)
    structure = result.report["structure"]
    assert result.report["status"] == "structure-checked", result.report.get("failure")
    assert structure["input"]["kind"] == "image" and structure["input_name"] == "image"
    assert structure["quantized_weight_ops"] > 0, "conv weights above the size threshold should be INT8"
    assert {"sub", "mul"} <= set(structure["operators"]), "per-channel normalisation runs inside the model"
    spec = read_artifact_spec(result.artifact)
    assert (
        spec.export.details["input_kind"] == "image" and spec.export.input_dtype == "uint8" and spec.export.batch == 1
    )


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is importable here: the engine is built instead of deferred")
def test_tensorrt_without_tensorrt_writes_symmetric_qdq_onnx_and_trtexec_command(workspace):
    result = run_export(workspace, "tensorrt", "int8", sub="trt", max_batch=4)
    report = result.report
    assert report["status"] == "deferred" and report["artifact"] == "micro-int8.engine" and report["device_specific"]
    assert result.artifact.name == "micro-int8-trt.onnx"
    command = report["trtexec"]
    assert "--onnx=micro-int8-trt.onnx" in command and "--saveEngine=micro-int8.engine" in command
    assert "--int8" in command and "--minShapes=input:1x3x64x48" in command and "--maxShapes=input:4x3x64x48" in command
    engine_spec = ModelSpec.load(workspace["root"] / "trt" / "micro-int8.engine.json")
    assert engine_spec.export.device_specific and engine_spec.export.details["build_command"] == command
    model = onnx.load(str(result.artifact))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points), "TensorRT needs symmetric int8"
    assert report["verification"]["ran"], "the ONNX TensorRT builds from is verified on ONNX Runtime"


@pytest.mark.skipif(
    not HAVE_TENSORRT, reason="needs the tensorrt Python package (a CUDA machine with TensorRT or a Jetson)"
)
def test_tensorrt_engine_builds_and_verifies(workspace):
    result = run_export(workspace, "tensorrt", "fp16", sub="trt-built", max_batch=4)
    assert result.artifact.suffix == ".engine" and result.report["verification"]["ran"]
    assert result.report["verification"]["kp_agreement@0.05"] >= 95.0


def test_max_drop_fails_keeps_artifact_and_exits_nonzero(workspace, capsys):
    out = workspace["root"] / "maxdrop"
    code = cli_main(
        [
            str(workspace["outlier"]),
            "--format",
            "onnx",
            "--precision",
            "int8",
            "--out",
            str(out),
            "--max-drop",
            "1",
            "--calib-images",
            "16",
            "--verify-images",
            "24",
            "--synthetic-images",
            "24",
            "--cache-dir",
            str(workspace["cache"]),
            "--threads",
            "1",
        ]
    )
    assert code == 1
    assert (out / "outlier-int8.onnx").is_file() and (out / "outlier-int8.onnx.json").is_file()
    entry = json.loads((out / "export_report.json").read_text())["artifacts"]["outlier-int8.onnx"]
    assert entry["status"] == "failed" and "max_drop=1.0" in entry["failure"]
    assert entry["verification"]["drop"] > 20.0
    assert "FAILED" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(format="onxx"), ["unknown format 'onxx'", *FORMATS]),
        (dict(precision="int4"), ["unknown precision 'int4'", *PRECISIONS]),
        (dict(target="pixel"), ["unknown target 'pixel'", *TARGETS]),
        (dict(calib_method="kl"), ["unknown calib_method", "entropy"]),
        (dict(calib_split="test"), ["unknown calib_split", "train"]),
        (dict(format="tensorrt", precision="int8", int8_scheme="qdq"), ["symmetric"]),
        (dict(colour="rgb"), ["unknown export option", "calib_data"]),
    ],
)
def test_bad_choices_list_the_valid_ones(kwargs, words):
    with pytest.raises(ExportError) as err:
        resolve_config(**kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "kwargs, option",
    [
        (dict(format="tflite", precision="int8", calib_method="minmax"), "calib_method"),
        (dict(format="tflite", precision="int8", int8_scheme="symmetric"), "int8_scheme"),
        (dict(format="coreml", precision="int8", equalize=False), "equalize"),
        (dict(format="onnx", precision="fp32", max_batch=4), "max_batch"),
        (dict(format="onnx", precision="fp32", trt_workspace_gb=4.0), "trt_workspace_gb"),
        (dict(format="tflite", precision="fp32", opset=19), "opset"),
    ],
)
def test_options_a_format_ignores_are_refused(kwargs, option):
    with pytest.raises(ExportError) as err:
        resolve_config(**kwargs)
    message = str(err.value)
    assert option in message and f"format={kwargs['format']!r}" in message and "applies to" in message, message


def test_cli_refuses_an_option_the_format_ignores_and_keeps_config_defaults(workspace, capsys):
    code = cli_main(
        [
            str(workspace["student"]),
            "--format",
            "tflite",
            "--precision",
            "int8",
            "--calib-method",
            "minmax",
            "--out",
            str(workspace["root"] / "refused"),
        ]
    )
    assert code == 2 and "--calib-method" in capsys.readouterr().err
    assert not (workspace["root"] / "refused").exists(), "refused before anything is written"
    from okdhp_edge.export.__main__ import _parser

    args = vars(_parser().parse_args(["student.safetensors"]))
    assert set(args) == {"student", "format", "precision", "target", "out"}, "unset options are left to ExportConfig"


def test_targets_pick_format_and_precision():
    assert (resolve_config(target="cpu").format, resolve_config(target="cpu").precision) == ("onnx", "int8")
    android = resolve_config(target="android")
    assert (android.format, android.precision, android.nhwc, android.residual) == ("tflite", "int8", True, "int8")
    assert resolve_config("tflite", "int8", int8_residual="float").residual == "float"
    assert resolve_config(target="jetson-orin").scheme == "symmetric"
    assert resolve_config(target="jetson-nano").precision == "fp16"
    assert resolve_config(target="iphone").format == "coreml"
    assert resolve_config("onnx", "fp16", target="android").nhwc is False, (
        "an explicit format drops the target's layout"
    )


class _Svd(torch.nn.Module):
    """A layer ONNX has no operator for."""

    def forward(self, x):
        return torch.linalg.svd(x[:, :, :8, :8])[1]


def test_conversion_failure_names_format_and_operator(workspace):
    from okdhp_edge.export.onnx_export import export_onnx

    _, spec = load_student(workspace["student"])
    with pytest.raises(ConversionError, match=r"conversion to onnx failed at operator\(s\) .*linalg_svd"):
        export_onnx(_Svd(), spec, workspace["root"] / "svd.onnx")


def test_missing_dependency_names_the_extra_and_missing_student_names_the_file(workspace):
    with pytest.raises(MissingDependencyError, match=r"pip install 'okdhp-edge\[tflite\]'"):
        require("okdhp_no_such_package", "tflite", "TFLite export")
    with pytest.raises(ExportError, match="nowhere.safetensors"):
        export(workspace["root"] / "nowhere.safetensors", "onnx", "fp32", workspace["root"] / "none")
    if not HAVE_TENSORRT:
        with pytest.raises(ExportError, match="tensorrt"):
            run_export(workspace, "tensorrt", "int8", sub="calib", int8_scheme="calibrator")
