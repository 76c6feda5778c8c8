"""Run an exported artifact on a batch of crops, directly through its own runtime.

Verification deliberately does not go through `okdhp_edge.runtime`: it checks the artifact
itself. Each runner takes float32 inputs in the artifact's layout and returns float32
heatmaps in NCHW, whatever the artifact's precision, layouts and integer I/O.
"""
from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..spec import ModelSpec

__all__ = ["Runner", "make_runner"]


@dataclass
class Runner:
    name: str  # e.g. "onnxruntime 1.31.1 CPUExecutionProvider"
    run: Callable[[np.ndarray], np.ndarray]


def make_runner(path: str | Path, spec: ModelSpec, num_threads: int = 2) -> Runner | str:
    """A runner for `path`, or the reason it cannot run on this machine."""
    path = Path(path)
    fmt = spec.export.get("format")
    if path.suffix == ".onnx":
        return _onnx_runner(path, spec, num_threads)
    if path.suffix == ".tflite":
        return _tflite_runner(path, spec, num_threads)
    if path.suffix == ".mlpackage":
        if platform.system() != "Darwin":
            return "Core ML prediction needs macOS; the model was checked structurally only (prediction not run)"
        return _coreml_runner(path, spec)
    if path.suffix == ".engine":
        return _tensorrt_runner(path, spec)
    return f"no runner for {path.name} (format {fmt!r})"


def _to_nchw(y: np.ndarray, spec: ModelSpec) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    return y.transpose(0, 3, 1, 2) if spec.export.get("output_layout") == "NHWC" else y


def _onnx_runner(path: Path, spec: ModelSpec, num_threads: int) -> Runner | str:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install 'okdhp-edge[runtime]')"
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        outs = [session.run(None, {name: x[i:i + 16]})[0] for i in range(0, len(x), 16)]
        return _to_nchw(np.concatenate(outs), spec)

    return Runner(f"onnxruntime {ort.__version__} CPUExecutionProvider", run)


def _tflite_runner(path: Path, spec: ModelSpec, num_threads: int) -> Runner | str:
    if importlib.util.find_spec("ai_edge_litert") is None:
        return "ai-edge-litert is not installed (pip install 'okdhp-edge[tflite]')"
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        outs = []
        for crop in x:
            interpreter.set_tensor(inp["index"], _quantize(crop[None], inp))
            interpreter.invoke()
            outs.append(_dequantize(interpreter.get_tensor(out["index"]), out))
        return _to_nchw(np.concatenate(outs), spec)

    return Runner("ai-edge-litert Interpreter (XNNPACK CPU)", run)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu":
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind not in "iu":
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale


def _coreml_runner(path: Path, spec: ModelSpec) -> Runner | str:
    import coremltools as ct

    model = ct.models.MLModel(str(path))
    image_input = spec.export.get("input_kind") == "image"
    mean = np.asarray(spec.input.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec.input.std, np.float32).reshape(1, 3, 1, 1)

    def run(x: np.ndarray) -> np.ndarray:
        if not image_input:
            return np.concatenate([model.predict({spec.export["input_name"]: x[i:i + 1]})[spec.export["output_name"]]
                                   for i in range(len(x))]).astype(np.float32)
        from PIL import Image

        pixels = np.clip(np.round(x * std + mean), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return np.concatenate([model.predict({spec.export["input_name"]: Image.fromarray(p)})[spec.export["output_name"]]
                               for p in pixels]).astype(np.float32)

    return Runner(f"coremltools {ct.__version__} (macOS Core ML)", run)


def _tensorrt_runner(path: Path, spec: ModelSpec) -> Runner | str:
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt Python package is not installed (engines run on the device they were built for)"
    import torch

    if not torch.cuda.is_available():
        return "TensorRT engines need a CUDA GPU; none is visible"
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        return f"TensorRT could not deserialize {path.name} (built for another GPU or TensorRT version)"
    context = engine.create_execution_context()
    in_name, out_name = spec.export["input_name"], spec.export["output_name"]
    max_batch = int(spec.export.get("max_batch", 1))

    def run(x: np.ndarray) -> np.ndarray:
        outs = []
        stream = torch.cuda.Stream()
        for i in range(0, len(x), max_batch):
            chunk = torch.from_numpy(np.ascontiguousarray(x[i:i + max_batch])).cuda()
            context.set_input_shape(in_name, tuple(chunk.shape))
            result = torch.empty(tuple(context.get_tensor_shape(out_name)), dtype=torch.float32, device="cuda")
            context.set_tensor_address(in_name, chunk.data_ptr())
            context.set_tensor_address(out_name, result.data_ptr())
            context.execute_async_v3(stream.cuda_stream)
            stream.synchronize()
            outs.append(result.cpu().numpy())
        return _to_nchw(np.concatenate(outs), spec)

    return Runner(f"TensorRT {trt.__version__} on {torch.cuda.get_device_name()}", run)
