"""ONNX Runtime backend for pose students: the session (backends/onnx_session.py, shared with
detectors) plus the student's spec, its output and the providers' options.

`device="auto"` takes CUDA, then Core ML, then CPU, whichever this onnxruntime build has, except
that INT8 (QDQ) files skip Core ML: ONNX Runtime's CPU provider runs QDQ groups as fused integer
kernels, while Core ML would get the graph cut into pieces around the quantize/dequantize pairs.
The TensorRT execution provider is used only when asked for (`device="tensorrt"`) because it
builds an engine on the first run, which takes minutes; it gets the file's precision flags, a
shape profile up to the artifact's max batch, and an on-disk engine cache.

On the CPU with more than one thread a student gets two sessions: one spreads a call over
`num_threads` intra-op threads (one person: the fastest path), and one runs on a single thread, for
the Predictor's parts of a call that run at once (several people: the parts, not the kernels, share
the cores; threads of two sessions would take each other's cores). Measured in
benchmarks/ort_intra_op.py and ort_spinning.py (docs/runtime.md, Benchmark).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from ...cache import cache_root
from ...spec import ModelSpec
from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import SPEC_KEY, load_spec_text, missing_spec_error, read_sidecar
from .base import Backend
from .onnx_session import DEVICE_PROVIDERS, OnnxModel, Provider, import_onnxruntime, open_session, select_providers

__all__ = ["OnnxBackend", "embedded_spec", "tensorrt_provider_options"]

TRT_CACHE = Path(os.environ.get("OKDHP_EDGE_TRT_CACHE") or cache_root() / "ort_trt")
TRT_DEFAULT_MAX_BATCH = 16  # profile ceiling for files whose metadata sets no max_batch (the Predictor's default)
FIX = "re-export it with okdhp_edge.export or copy it again"


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
        ort = import_onnxruntime(path)
        if device not in DEVICE_PROVIDERS:
            raise ValueError(f"unknown device {device!r} for ONNX Runtime; valid: {', '.join(DEVICE_PROVIDERS)}")
        spec, narrow = read_sidecar(path), None
        if spec is None:  # the embedded copy, read through the one-thread CPU session, which is kept
            narrow = open_session(path, ["CPUExecutionProvider"], 1, FIX)
            spec = _session_spec(narrow, path)
        info = spec.export_info
        providers = select_providers(device, ort.get_available_providers(), quantized=info.precision == "int8")
        on_cpu = providers == ["CPUExecutionProvider"]
        if on_cpu and narrow is None:
            narrow = open_session(path, providers, 1, FIX)
        if on_cpu and num_threads == 1:
            session = narrow
        else:
            options = [_with_options(p, path, spec) for p in providers]
            session = open_session(path, options, num_threads, FIX)
        self.model = OnnxModel(path, session)
        # the Predictor's parts of one call that run at once, on the CPU: one thread each
        self.part_model = OnnxModel(path, narrow) if on_cpu and session is not narrow else self.model
        # num_threads None: ONNX Runtime's own default, a thread per core, so as many parts
        self.parts = int(num_threads or os.cpu_count() or 1) if on_cpu else 1
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
        outputs = {o.name: o for o in self.model.outputs}
        out = outputs.get(info.output_name, self.model.outputs[0])
        self._output_names = [out.name]
        super().__init__(path, spec, self.model.input, out, device=", ".join(used))

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.model.run(x, self._output_names)[0]

    def run_part(self, x: np.ndarray) -> np.ndarray:
        return self.part_model.run(x, self._output_names)[0]

    def describe(self) -> str:
        return f"{self.name} {self._version} on {self.model.session.get_providers()[0]} ({self._choice})"


def embedded_spec(path: Path) -> ModelSpec:
    """The spec in the file's SPEC_KEY metadata property, read through a CPU session."""
    return _session_spec(open_session(path, ["CPUExecutionProvider"], 1, FIX), path)


def _session_spec(session, path: Path) -> ModelSpec:
    embedded = session.get_modelmeta().custom_metadata_map.get(SPEC_KEY)
    if embedded is None:
        raise missing_spec_error(path, f" or an {SPEC_KEY!r} metadata property in the ONNX file")
    return load_spec_text(embedded, f"{path} (metadata_props {SPEC_KEY})")


def _with_options(provider: str, path: Path, spec: ModelSpec) -> Provider:
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
