"""TensorRT engine backend (`.engine`), written against the TensorRT 10 Python API.

Engines are specific to the GPU and TensorRT version that built them (the sidecar marks them
`device_specific`). Device memory is managed with NVIDIA's cuda-python bindings
(`pip install tensorrt cuda-python`); nothing here needs torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import TensorInfo, missing_spec_error, read_sidecar
from .base import Backend, require_file

__all__ = ["TensorRTBackend", "io_tensor_names"]


def _import_cuda():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.8
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise BackendUnavailableError(
                ".engine models need NVIDIA's cuda-python for device memory: pip install cuda-python"
            ) from None
    return cudart


def _check(result):
    """cuda-python returns (error, *values); raise on anything but success."""
    err, *values = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else values


def io_tensor_names(engine, trt) -> tuple[list[str], list[str]]:
    """The engine's input and output tensor names, in binding order (also read by export)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    return inputs, outputs


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: Path, device: str = "auto", num_threads: int | None = None) -> None:
        if device not in ("auto", "cuda", "tensorrt"):
            raise BackendUnavailableError(f"{path}: TensorRT engines run on an NVIDIA GPU only, not device={device!r}")
        try:
            import tensorrt as trt
        except ImportError:
            raise BackendUnavailableError(
                f"{path}: .engine models need NVIDIA TensorRT (Python package `tensorrt`) and a CUDA GPU; "
                "on other machines use the .onnx or .tflite export"
            ) from None
        cudart = _import_cuda()
        require_file(path, "TensorRT engine")
        spec = read_sidecar(path)
        if spec is None:
            raise missing_spec_error(path)
        self._trt, self._cudart = trt, cudart
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelFileError(
                f"{path}: TensorRT cannot deserialize this engine. It is truncated, not an engine, or was built by "
                f"another TensorRT version or GPU (this is TensorRT {trt.__version__}); rebuild it on this machine "
                "with okdhp_edge.export(format='tensorrt')"
            )
        self.context = self.engine.create_execution_context()
        inputs, outputs = io_tensor_names(self.engine, trt)
        if len(inputs) != 1 or not outputs:
            raise ModelFileError(
                f"{path}: engine has inputs {inputs} and outputs {outputs}; a pose student has one input"
            )
        wanted = spec.export_info.output_name
        out_name = wanted if wanted in outputs else outputs[0]
        self._outputs = outputs
        super().__init__(path, spec, self._tensor(inputs[0]), self._tensor(out_name), device="cuda")
        if self.batch is None and self.engine.num_optimization_profiles:  # a dynamic batch ends at the profile's max
            profile_max = int(self.engine.get_tensor_profile_shape(inputs[0], 0)[2][0])  # [min, opt, max] shapes
            self.max_batch = min(profile_max, self.max_batch or profile_max)
        self._stream = _check(cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def _tensor(self, name: str) -> TensorInfo:
        shape = tuple(int(d) if int(d) >= 0 else None for d in self.engine.get_tensor_shape(name))
        dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name))).name
        return TensorInfo(name, shape, dtype)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                _check(self._cudart.cudaFree(pointer))
            pointer = _check(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (pointer, nbytes)
        return pointer

    def run(self, x: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        host_in = np.ascontiguousarray(x, dtype=np.dtype(self.input.dtype))
        if not self.context.set_input_shape(self.input.name, host_in.shape):
            raise ValueError(
                f"{self.path}: engine rejects input shape {host_in.shape} (outside its optimisation profile)"
            )
        d_in = self._device_buffer(self.input.name, host_in.nbytes)
        self.context.set_tensor_address(self.input.name, d_in)
        host_out: dict[str, np.ndarray] = {}
        for name in self._outputs:  # every output needs an address, even the ones we ignore
            shape = tuple(self.context.get_tensor_shape(name))
            host_out[name] = np.empty(shape, dtype=self._trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_tensor_address(name, self._device_buffer(name, host_out[name].nbytes))
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(d_in, host_in.ctypes.data, host_in.nbytes, h2d, self._stream))
        if not self.context.execute_async_v3(self._stream):
            raise RuntimeError(f"{self.path}: TensorRT execution failed (see the TensorRT log above)")
        result = host_out[self.output.name]
        _check(
            cudart.cudaMemcpyAsync(
                result.ctypes.data, self._buffers[self.output.name][0], result.nbytes, d2h, self._stream
            )
        )
        _check(cudart.cudaStreamSynchronize(self._stream))
        return result.astype(np.float32, copy=False)

    def __del__(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for pointer, _ in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(pointer)
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
