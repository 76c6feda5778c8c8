"""ONNX Runtime backend: CPU, CUDA, TensorRT and Core ML execution providers.

`device="auto"` takes CUDA, then Core ML, then CPU, whichever this onnxruntime build has, except
that INT8 (QDQ) files skip Core ML: ONNX Runtime's CPU provider runs QDQ groups as fused integer
kernels, while Core ML would get the graph cut into pieces around the quantize/dequantize pairs.
The TensorRT execution provider is used only when asked for (`device="tensorrt"`) because it
builds an engine on the first run, which takes minutes; it gets the file's precision flags, a
shape profile up to the artifact's max batch, and an on-disk engine cache.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from ...spec import ModelSpec
from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import SPEC_KEY, TensorInfo, load_spec_text, missing_spec_error, read_sidecar
from .base import Backend, require_file

__all__ = ["OnnxBackend", "embedded_spec", "select_providers", "tensorrt_provider_options"]

DEVICE_PROVIDERS: dict[str, tuple[str, ...]] = {
    "auto": ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    "coreml": ("CoreMLExecutionProvider", "CPUExecutionProvider"),
}
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
}
TRT_CACHE = Path(os.environ.get("OKDHP_EDGE_TRT_CACHE", Path.home() / ".cache" / "okdhp_edge" / "ort_trt"))
TRT_DEFAULT_MAX_BATCH = 16  # profile ceiling for files whose metadata sets no max_batch (the Predictor's default)


def select_providers(device: str, available: list[str], quantized: bool = False) -> list[str]:
    """Execution providers for `device`, in priority order, restricted to what is installed.
    `quantized` (an INT8 QDQ file) keeps `auto` off Core ML (see the module docstring)."""
    if device not in DEVICE_PROVIDERS:
        raise ValueError(f"unknown device {device!r} for ONNX Runtime; valid: {', '.join(DEVICE_PROVIDERS)}")
    wanted = DEVICE_PROVIDERS[device]
    if device not in ("auto", "cpu") and wanted[0] not in available:
        raise BackendUnavailableError(
            f"device={device!r} needs onnxruntime's {wanted[0]}, but this onnxruntime only has {available}; "
            "install the matching build (onnxruntime-gpu for CUDA/TensorRT) or use device='cpu'"
        )
    if device == "auto" and quantized:
        wanted = tuple(p for p in wanted if p != "CoreMLExecutionProvider")
    return [p for p in wanted if p in available]


def tensorrt_provider_options(
    path: Path, spec: ModelSpec, input_name: str, cache_dir: Path = TRT_CACHE
) -> dict[str, object]:
    """ONNX Runtime TensorRT provider options for this file (documented `trt_*` keys).

    FP16 kernels for FP16 and INT8 files, INT8 for INT8 files (the QDQ nodes carry the scales, so no
    calibration table), one shape profile from 1 to the artifact's max batch, engines and timing
    caches kept in `cache_dir`. An INT8 file with asymmetric uint8 activations (`int8_scheme` "qdq",
    the CPU default) is refused: TensorRT builds symmetric int8 only.
    """
    info = spec.export_info
    if info.precision == "int8" and info.int8_scheme != "symmetric":
        raise ModelFileError(
            f"{path}: this INT8 ONNX has {info.int8_scheme or 'unknown'} quantization (uint8 activations with a zero "
            "point, fastest on CPUs), which TensorRT cannot build; export with --int8-scheme symmetric, or "
            "--target jetson-orin (its NAME-int8-trt.onnx), or run this file with device='cpu' or 'cuda'"
        )
    w, h = spec.input_size
    shape = (
        (lambda b: f"{input_name}:{b}x{h}x{w}x3")
        if info.input_layout == "NHWC"
        else (lambda b: f"{input_name}:{b}x3x{h}x{w}")
    )
    return {
        "trt_fp16_enable": info.precision in ("fp16", "int8"),
        "trt_int8_enable": info.precision == "int8",
        "trt_profile_min_shapes": shape(1),
        "trt_profile_opt_shapes": shape(1),
        "trt_profile_max_shapes": shape(info.max_batch or TRT_DEFAULT_MAX_BATCH),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
    }


class OnnxBackend(Backend):
    name = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called from several threads at once

    def __init__(self, path: Path, device: str = "auto", num_threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError(
                f"{path}: .onnx models need onnxruntime; pip install 'okdhp-edge[runtime]' (or onnxruntime)"
            ) from None
        require_file(path, "ONNX")
        if device not in DEVICE_PROVIDERS:
            raise ValueError(f"unknown device {device!r} for ONNX Runtime; valid: {', '.join(DEVICE_PROVIDERS)}")
        spec, session = read_sidecar(path), None
        if spec is None:  # the embedded copy: read through a CPU session, reused when the CPU is the choice
            session = _open_session(ort, path, ["CPUExecutionProvider"], num_threads)
            spec = _session_spec(session, path)
        info = spec.export_info
        providers = select_providers(device, ort.get_available_providers(), quantized=info.precision == "int8")
        if session is None or providers != ["CPUExecutionProvider"]:
            session = _open_session(ort, path, [_with_options(p, path, spec) for p in providers], num_threads)
        self.session = session
        used = session.get_providers()
        if used[0] != providers[0]:
            message = (
                f"{path}: onnxruntime could not start {providers[0]} and runs on {used[0]}; check the GPU "
                "drivers and the onnxruntime build"
            )
            if device != "auto":
                raise BackendUnavailableError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=4)
        self._choice = _why(device, info.precision == "int8")
        self._version = ort.__version__

        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(
                f"{path}: the model has {len(inputs)} inputs {[i.name for i in inputs]}; a pose student has exactly one"
            )
        outputs = {o.name: o for o in session.get_outputs()}
        wanted = info.output_name
        out = outputs.get(wanted) if wanted in outputs else next(iter(outputs.values()))
        self._output_name = out.name
        super().__init__(path, spec, _tensor(inputs[0]), _tensor(out), device=", ".join(used))
        if self.input.dtype in ("int8", "uint8"):
            raise ModelFileError(
                f"{path}: integer-input ONNX models carry no input scale; export INT8 ONNX with a float input "
                "(quantize/dequantize nodes inside), as okdhp_edge.export does"
            )
        self._dtype = np.dtype(self.input.dtype)

    def run(self, x: np.ndarray) -> np.ndarray:
        feed = {self.input.name: x.astype(self._dtype, copy=False)}
        return np.asarray(self.session.run([self._output_name], feed)[0], dtype=np.float32)

    def describe(self) -> str:
        return f"{self.name} {self._version} on {self.session.get_providers()[0]} ({self._choice})"


def _open_session(ort, path: Path, providers: list, num_threads: int | None):
    options = ort.SessionOptions()
    # CPU-only sessions log errors only; with an accelerator, ONNX Runtime's warnings (nodes left to
    # the CPU, a provider that failed to load) are what the user needs to see.
    options.log_severity_level = 3 if providers == ["CPUExecutionProvider"] else 2
    if num_threads:
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(
            f"{path}: onnxruntime cannot load this file ({first}). It is truncated, corrupt or not an ONNX model; "
            "re-export it with okdhp_edge.export or copy it again"
        ) from None


def embedded_spec(path: Path) -> ModelSpec:
    """The spec in the file's SPEC_KEY metadata property, read through a CPU session."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailableError(
            f"{path}: reading .onnx metadata needs onnxruntime; pip install 'okdhp-edge[runtime]'"
        ) from None
    require_file(path, "ONNX")
    return _session_spec(_open_session(ort, path, ["CPUExecutionProvider"], 1), path)


def _session_spec(session, path: Path) -> ModelSpec:
    embedded = session.get_modelmeta().custom_metadata_map.get(SPEC_KEY)
    if embedded is None:
        raise missing_spec_error(path, f" or an {SPEC_KEY!r} metadata property in the ONNX file")
    return load_spec_text(embedded, f"{path} (metadata_props {SPEC_KEY})")


def _with_options(provider: str, path: Path, spec: ModelSpec) -> str | tuple[str, dict[str, object]]:
    if provider != "TensorrtExecutionProvider":
        return provider
    return provider, tensorrt_provider_options(path, spec, spec.export_info.input_name or "input", _engine_cache(path))


def _engine_cache(path: Path) -> Path:
    """One TensorRT engine cache folder per file content: a re-exported model never meets the
    engine built from its predecessor."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return TRT_CACHE / f"{path.stem}-{digest}"


def _why(device: str, quantized: bool) -> str:
    if device != "auto":
        return f"device={device!r}"
    return "auto, INT8 QDQ: CUDA, else CPU, never Core ML" if quantized else "auto: CUDA, else Core ML, else CPU"


def _tensor(node) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    return TensorInfo(node.name, shape, ORT_DTYPES.get(node.type, node.type))
