"""The INT8 ONNX graph that ONNX Runtime's CPU provider runs fast (docs/export.md, "Where the ONNX
INT8 time goes"): every convolution quantized, no Shape chain feeding an upsampling (which made the
session transpose and dequantize a tensor only to read its shape), the 3-channel stem as
SpaceToDepth + a 12-channel convolution, and after the session's own optimisation a graph of integer
kernels with one QuantizeLinear in, one DequantizeLinear out and no layout flips between.

The student is a micro hourglass (untrained: these are properties of the graph, not of accuracy).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from okdhp_edge.export import export, read_artifact_spec
from okdhp_edge.export.onnx_rewrite import constant_upsampling, rewrite_for_int8, space_to_depth_stem
from okdhp_edge.models import BranchSpec, OKDHPNet, Preset, describe_student, extract_student, save_student

ort = pytest.importorskip("onnxruntime")

MICRO = Preset("micro", "test-sized student", "coco17", (48, 64), 1, 16, (BranchSpec(1, 24),), hourglass_depth=2)
DATA = dict(calib_images=8, verify_images=0, synthetic_images=16, num_threads=1)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("int8graph")
    torch.manual_seed(0)
    student = extract_student(OKDHPNet(MICRO.network_spec()), 0).eval()
    path = save_student(student, describe_student(MICRO, 0), root / "students" / "micro")
    options = {**DATA, "cache_dir": root / "cache"}
    done = {
        "fp32": export(path, "onnx", "fp32", root / "fp32", **options).artifact,
        "int8": export(path, "onnx", "int8", root / "int8", **options).artifact,
        "nhwc": export(path, "onnx", "int8", root / "nhwc", nhwc=True, **options).artifact,
        "trt": export(path, "tensorrt", "int8", root / "trt", **options).artifact,
    }
    torch.set_num_threads(before)
    return done


def _producers(graph) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def read_details(path: Path) -> dict:
    return read_artifact_spec(path).export.details


def _run(path: Path | bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path if isinstance(path, bytes) else str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_every_convolution_runs_between_dequantize_and_quantize(exports):
    graph = onnx.load(str(exports["int8"])).graph
    producers = _producers(graph)
    readers = Counter(i for n in graph.node for i in n.input)
    consumers = {
        o: [n for n in graph.node if o in n.input] for n in graph.node if n.op_type == "Conv" for o in n.output
    }
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        assert producers[conv.input[0]].op_type == "DequantizeLinear", f"{conv.name} reads a float activation"
        assert producers[conv.input[1]].op_type == "DequantizeLinear", f"{conv.name} has float weights"
        out = conv.output[0]
        assert readers[out] and all(n.op_type == "QuantizeLinear" for n in consumers[out]), f"{conv.name} writes float"


def test_upsampling_has_constant_scales_and_no_shape_chain(exports):
    graph = onnx.load(str(exports["int8"])).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    ops = Counter(n.op_type for n in graph.node)
    assert ops["Resize"] > 0 and not ops.keys() & {"Shape", "Gather", "Concat"}
    for resize in (n for n in graph.node if n.op_type == "Resize"):
        assert len(resize.input) == 3, "sizes input left"
        np.testing.assert_array_equal(inits[resize.input[2]], [1, 1, 2, 2])


def test_stem_reads_the_input_through_float_space_to_depth(exports):
    graph = onnx.load(str(exports["int8"])).graph
    producers = _producers(graph)
    pad = next(n for n in graph.node if n.op_type == "Pad")
    s2d = next(n for n in graph.node if n.op_type == "SpaceToDepth")
    assert pad.input[0] == graph.input[0].name and s2d.input[0] == pad.output[0], "Pad and SpaceToDepth stay float"
    quantize = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == s2d.output[0])
    stem = next(n for n in graph.node if n.op_type == "Conv" and producers[n.input[0]].input[0] == quantize.output[0])
    weight = numpy_helper.to_array(next(t for t in graph.initializer if t.name == producers[stem.input[1]].input[0]))
    assert weight.dtype == np.int8 and weight.shape[1:] == (12, 4, 4)
    upsamplings = sum(n.op_type == "Resize" for n in graph.node)
    assert read_details(exports["int8"])["graph_rewrites"] == {
        "constant_upsampling": upsamplings,
        "space_to_depth_stem": 1,
    }


def test_onnx_runtime_runs_it_as_integer_kernels_without_layout_flips(exports, tmp_path):
    """What the session makes of the file: the regression this guards is a float op (Conv, Add,
    MaxPool) or a Transpose/DequantizeLinear pair reappearing between the integer kernels."""
    for name in ("int8", "nhwc"):
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"{name}-optimized.onnx")
        ort.InferenceSession(str(exports[name]), options, providers=["CPUExecutionProvider"])
        ops = Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
        file_convs = sum(n.op_type == "Conv" for n in onnx.load(str(exports[name])).graph.node)
        assert ops["QLinearConv"] == file_convs and ops["QLinearAdd"] > 0, ops
        assert not ops.keys() & {"Conv", "FusedConv", "Add", "Relu", "MaxPool", "Shape", "ConvInteger"}, ops
        assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 1, ops
        assert ops["Transpose"] <= 2, f"layout flips inside the network: {ops}"


def test_tensorrt_source_keeps_its_stem_but_gets_constant_upsampling(exports):
    graph = onnx.load(str(exports["trt"])).graph
    ops = Counter(n.op_type for n in graph.node)
    assert "SpaceToDepth" not in ops and "Shape" not in ops and ops["Resize"] > 0
    assert read_details(exports["trt"])["graph_rewrites"] == {"constant_upsampling": ops["Resize"]}


def test_rewrites_keep_the_float_function(exports, tmp_path):
    fp32 = tmp_path / "fp32.onnx"
    fp32.write_bytes(exports["fp32"].read_bytes())
    upsamplings = sum(n.op_type == "Resize" for n in onnx.load(str(fp32)).graph.node)
    assert rewrite_for_int8(fp32, stem=True) == {"constant_upsampling": upsamplings, "space_to_depth_stem": 1}
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 48)).astype(np.float32)
    np.testing.assert_allclose(_run(fp32, x), _run(exports["fp32"], x), atol=1e-4)


def _graph(nodes, inits, in_shape, out_shape) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_only_whole_upsampling_factors_become_constant():
    for size, rewritten in (([1, 2, 10, 6], 1), ([1, 2, 7, 6], 0)):
        model = _graph(
            [helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest")],
            {"sizes": np.array(size, np.int64)},
            [1, 2, 5, 3],
            size,
        )
        x = np.random.default_rng(1).standard_normal((1, 2, 5, 3)).astype(np.float32)
        expected = _run(model.SerializeToString(), x)
        assert constant_upsampling(model) == rewritten
        np.testing.assert_array_equal(_run(model.SerializeToString(), x), expected)


@pytest.mark.parametrize(
    "kernel, pads, stride, rewritten",
    [
        (7, [3, 3, 3, 3], 2, 1),
        (3, [1, 1, 1, 1], 2, 1),
        (5, [2, 1, 2, 1], 2, 1),
        (4, [1, 1, 1, 1], 2, 0),
        (3, [1, 1, 1, 1], 1, 0),
    ],
)
def test_space_to_depth_stem_is_exact_where_it_applies(kernel, pads, stride, rewritten):
    rng = np.random.default_rng(kernel)
    weight, bias = (
        rng.standard_normal((5, 3, kernel, kernel)).astype(np.float32),
        rng.standard_normal(5).astype(np.float32),
    )
    conv = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=pads
    )
    h, w = 13, 10
    out = [1, 5, (h + pads[0] + pads[2] - kernel) // stride + 1, (w + pads[1] + pads[3] - kernel) // stride + 1]
    model = _graph([conv], {"w": weight, "b": bias}, [1, 3, h, w], out)
    x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
    expected = _run(model.SerializeToString(), x)
    assert space_to_depth_stem(model) == rewritten
    onnx.checker.check_model(model)
    np.testing.assert_allclose(_run(model.SerializeToString(), x), expected, atol=1e-4)
