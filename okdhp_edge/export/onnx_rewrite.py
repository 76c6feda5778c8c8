"""ONNX-level rewrites of the FP32 student before ONNX Runtime INT8 quantization.

Both keep the float function (up to float rounding) and exist because of how ONNX Runtime's CPU
provider runs the quantized graph (measured in docs/export.md, "Where the ONNX INT8 time goes"):

- `constant_upsampling`: the exporter sizes each hourglass upsampling from `Shape` of a tensor.
  ONNX Runtime runs INT8 convolutions in NHWC, so that tensor is in NHWC when its shape is read,
  and the session transposes it back to NCHW and dequantizes it just to take its shape (a
  Transpose, a DequantizeLinear, Shape, Gather and Concat per upsampling). With the network's
  fixed input size the factor is a constant: `Resize` gets constant scales and that chain goes.
- `space_to_depth_stem`: the first convolution reads the 3-channel image with a 7x7 stride-2
  kernel; as a QLinearConv its 147-deep, 3-channel im2col is the least efficient convolution of
  the network and its slowest single node. Rewritten as Pad + SpaceToDepth(2) in float on the input
  and a stride-1 convolution on 12 channels (kernel 4x4, the 7x7 taps zero-padded to 8x8), it
  computes the same sums with a 192-deep, 12-channel im2col that the INT8 kernels run much faster.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import require

__all__ = ["constant_upsampling", "input_rearrangements", "rewrite_for_int8", "space_to_depth_stem"]


def rewrite_for_int8(path: str | os.PathLike, *, stem: bool) -> dict[str, int]:
    """Apply the rewrites to the ONNX file at `path` in place; `stem` enables `space_to_depth_stem`
    (ONNX Runtime's CPU scheme: TensorRT has its own first-layer kernels). Returns how many nodes
    each rewrite changed, for the export details."""
    onnx = require("onnx", "export", "ONNX INT8 quantization")
    model = onnx.load(str(path))
    done = {"constant_upsampling": constant_upsampling(model)}
    if stem:
        done["space_to_depth_stem"] = space_to_depth_stem(model)
    if any(done.values()):
        _drop_unused(model.graph)
        onnx.save(model, str(path))
        onnx.checker.check_model(str(path))
    return done


def _shapes(model) -> dict[str, list[int]]:
    """Every tensor's dims from ONNX shape inference (0 where a dim is symbolic, e.g. the batch)."""
    onnx = require("onnx", "export", "ONNX INT8 quantization")
    graph = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    values = [*graph.input, *graph.value_info, *graph.output]
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def _attributes(node) -> dict[str, Any]:
    onnx = require("onnx", "export", "ONNX INT8 quantization")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def constant_upsampling(model) -> int:
    """Give every `Resize` whose output is a whole multiple of its input (spatial dims known) constant
    scales in place of computed sizes; returns how many were changed. With `sizes`, ONNX defines the
    scale as output/input, so whole-number scales give the same output for every mode."""
    numpy_helper = require("onnx.numpy_helper", "export", "ONNX INT8 quantization")
    shapes = _shapes(model)
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        attrs = _attributes(node)
        if "axes" in attrs or attrs.get("keep_aspect_ratio_policy", b"stretch") != b"stretch":
            continue
        src, out = shapes.get(node.input[0], []), shapes.get(node.output[0], [])
        if len(src) != len(out) or len(src) < 3 or any(d <= 0 for d in src[1:] + out[1:]):
            continue
        if any(o % i for i, o in zip(src[1:], out[1:])):
            continue
        scales = np.array([1.0] + [o // i for i, o in zip(src[1:], out[1:])], dtype=np.float32)
        name = f"{node.name or node.output[0]}_scales"
        model.graph.initializer.append(numpy_helper.from_array(scales, name))
        node.input[2] = name
        del node.input[3]
        changed += 1
    return changed


def space_to_depth_stem(model) -> int:
    """Rewrite each stride-2 convolution on the network input (directly or through the NHWC
    Transpose) as Pad + SpaceToDepth(2) + stride-1 convolution; returns how many were rewritten.
    Left alone: dilated or grouped convolutions and any whose rewritten output size would differ."""
    helper = require("onnx.helper", "export", "ONNX INT8 quantization")
    numpy_helper = require("onnx.numpy_helper", "export", "ONNX INT8 quantization")
    graph = model.graph
    shapes = _shapes(model)
    inits = {t.name: t for t in graph.initializer}
    inputs = {i.name for i in graph.input}
    producers = {o: n for n in graph.node for o in n.output}
    nodes = list(graph.node)
    changed = 0
    for conv in [n for n in nodes if n.op_type == "Conv"]:
        source = producers.get(conv.input[0])
        reads_input = conv.input[0] in inputs or (
            source is not None and source.op_type == "Transpose" and source.input[0] in inputs
        )
        attrs = _attributes(conv)
        x = shapes.get(conv.input[0], [])
        if not reads_input or conv.input[1] not in inits or len(x) != 4 or any(d <= 0 for d in x[1:]):
            continue
        if (
            attrs.get("strides") != [2, 2]
            or attrs.get("group", 1) != 1
            or any(d != 1 for d in attrs.get("dilations", [1, 1]))
        ):
            continue
        if attrs.get("auto_pad", b"NOTSET") != b"NOTSET":
            continue
        weight = numpy_helper.to_array(inits[conv.input[1]])
        out_c, in_c, kh, kw = weight.shape
        top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
        padded = [x[2] + top + bottom, x[3] + left + right]
        padded = [p + p % 2 for p in padded]  # SpaceToDepth needs even sides; the extra row/column is never read
        taps = [(kh + 1) // 2, (kw + 1) // 2]
        if [p // 2 - t + 1 for p, t in zip(padded, taps)] != [
            (x[2] + top + bottom - kh) // 2 + 1,
            (x[3] + left + right - kw) // 2 + 1,
        ]:
            continue
        wide = np.zeros((out_c, in_c, 2 * taps[0], 2 * taps[1]), dtype=weight.dtype)
        wide[:, :, :kh, :kw] = weight
        # SpaceToDepth puts pixel (2a+p, 2b+q) of channel c at channel (2p+q)*C + c, position (a, b)
        folded = (
            wide.reshape(out_c, in_c, taps[0], 2, taps[1], 2)
            .transpose(0, 3, 5, 1, 2, 4)
            .reshape(out_c, 4 * in_c, *taps)
        )
        base = conv.name or conv.output[0]
        pads = [0, 0, top, left, 0, 0, padded[0] - x[2] - top, padded[1] - x[3] - left]
        graph.initializer.extend(
            [
                numpy_helper.from_array(folded, f"{base}_s2d_weight"),
                numpy_helper.from_array(np.array(pads, dtype=np.int64), f"{base}_s2d_pads"),
            ]
        )
        pad = helper.make_node(
            "Pad", [conv.input[0], f"{base}_s2d_pads"], [f"{base}_padded"], name=f"{base}_pad", mode="constant"
        )
        s2d = helper.make_node("SpaceToDepth", [f"{base}_padded"], [f"{base}_s2d"], name=f"{base}_s2d", blocksize=2)
        new = helper.make_node(
            "Conv",
            [f"{base}_s2d", f"{base}_s2d_weight", *conv.input[2:]],
            list(conv.output),
            name=conv.name,
            kernel_shape=taps,
            strides=[1, 1],
            pads=[0, 0, 0, 0],
        )
        at = nodes.index(conv)
        nodes[at : at + 1] = [pad, s2d, new]
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def input_rearrangements(model_path: str | os.PathLike) -> list[str]:
    """Names of the Pad and SpaceToDepth nodes that `space_to_depth_stem` put on the network input.
    They stay float: quantized, each costs a QuantizeLinear/DequantizeLinear pair that ONNX Runtime
    does not fuse away, more than the float rearrangement itself."""
    onnx = require("onnx", "export", "ONNX INT8 quantization")
    graph = onnx.load(str(model_path)).graph
    reachable = {i.name for i in graph.input}
    names = []
    for node in graph.node:
        if node.op_type in ("Transpose", "Pad", "SpaceToDepth") and node.input[0] in reachable:
            reachable.update(node.output)
            if node.op_type != "Transpose":
                names.append(node.name)
    return names


def _drop_unused(graph) -> None:
    """Remove the nodes and initializers nothing reads any more (e.g. the Shape chains)."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [t for t in graph.initializer if t.name not in needed]
    for tensor in unused:
        graph.initializer.remove(tensor)
    stale = [v for v in graph.value_info if v.name not in needed]
    for value in stale:
        graph.value_info.remove(value)
