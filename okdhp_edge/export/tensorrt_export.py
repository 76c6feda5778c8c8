"""The TensorRT format: `build(job)` builds an engine from our ONNX, or through torch_tensorrt.

Engines are specific to the GPU and TensorRT version that built them. Where the `tensorrt`
Python package is importable (a Jetson with JetPack, a CUDA machine with TensorRT) the engine is
built here with the TensorRT Python API: FP16 from the FP32 ONNX, INT8 either explicitly from
the symmetric QDQ ONNX or implicitly with TensorRT's entropy calibrator on the FP32 ONNX.
Elsewhere the ONNX is written together with the exact `trtexec` command that builds the
engine on the device.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
from pathlib import Path

import numpy as np
from torch import nn

from ..runtime.backends.tensorrt import io_tensor_names
from ..spec import ModelSpec
from .errors import ConversionError, ExportError, conversion_error, require
from .graph import fold_batchnorm
from .job import Built, Job
from .metadata import artifact_spec, embed_onnx, sidecar_path, write_sidecar
from .onnx_export import onnx_info, write_onnx

__all__ = [
    "build",
    "build_engine",
    "calibration_cache_path",
    "compile_with_torch_tensorrt",
    "engine_io_names",
    "tensorrt_available",
    "torch_tensorrt_available",
    "trtexec_command",
]


def build(job: Job) -> Built:
    """The engine where TensorRT is importable; elsewhere the ONNX it is built from, with the
    engine's sidecar and trtexec command ("deferred": the engine is built on the device)."""
    config = job.config
    engine = job.path()
    notes = ["TensorRT engines are device-specific: build on (and for) the GPU and TensorRT version that runs them"]
    if config.trt_route == "torch_tensorrt":
        compile_with_torch_tensorrt(
            job.model,
            job.spec,
            engine,
            config.precision,
            max_batch=config.max_batch,
            workspace_gb=config.trt_workspace_gb,
        )
        inp, out = engine_io_names(engine)
        info = job.export_info(
            "tensorrt",
            config.precision,
            input_name=inp,
            output_name=out,
            max_batch=config.max_batch,
            device_specific=True,
            details={"route": "torch_tensorrt"},
        )
        return Built(engine, info, None, notes)
    scheme = config.scheme
    source_precision = "int8" if config.precision == "int8" and scheme == "symmetric" else "fp32"
    if scheme == "calibrator" and config.precision == "int8" and not tensorrt_available():
        raise ExportError(
            "int8_scheme='calibrator' runs TensorRT's calibrator and needs the tensorrt package here; "
            "without it use int8_scheme='symmetric' (QDQ ONNX + trtexec command)"
        )
    onnx_path = job.path(config.precision, ".onnx", tag="-trt")
    onnx_details = write_onnx(job, onnx_path, source_precision, "symmetric")
    source = onnx_info(
        job,
        onnx_path,
        source_precision,
        "symmetric",
        {**onnx_details, "purpose": f"TensorRT {config.precision} engine source"},
        max_batch=config.max_batch,
    )
    command = trtexec_command(
        onnx_path,
        engine,
        job.spec,
        config.precision,
        input_name=source.input_name,
        max_batch=config.max_batch,
        workspace_gb=config.trt_workspace_gb,
        trt_version=config.trt_version,
    )
    details = {
        "route": "onnx",
        "onnx_source": onnx_path.name,
        **{k: v for k, v in onnx_details.items() if k != "opset"},
        "build_command": command,
    }
    info = job.export_info(
        "tensorrt",
        config.precision,
        input_name=source.input_name,
        output_name=source.output_name,
        max_batch=config.max_batch,
        device_specific=True,
        int8_scheme=source.int8_scheme,
        details=details,
    )
    if not tensorrt_available():
        # the engine's sidecar is written now, so the engine trtexec builds is ready for the runtime
        write_sidecar(engine, artifact_spec(job.spec, info))
        notes.append(
            "tensorrt is not importable here: build the engine on the device with the trtexec command; "
            "verification ran the ONNX TensorRT builds from on ONNX Runtime CPU"
        )
        extra = {
            "artifact_name": engine.name,
            "engine": str(engine),
            "engine_sidecar": sidecar_path(engine).name,
            "onnx_source": onnx_path.name,
            "trtexec": command,
            "device_specific": True,
        }
        return Built(onnx_path, source, embed_onnx, notes, extra, status="deferred")
    source_spec = artifact_spec(job.spec, source)
    write_sidecar(onnx_path, source_spec)
    embed_onnx(onnx_path, source_spec)
    calibration = job.calibration() if config.precision == "int8" and scheme == "calibrator" else None
    cache = None if calibration is None else calibration_cache_path(engine, job.source_sha256, calibration)
    build_engine(
        onnx_path,
        engine,
        job.spec,
        config.precision,
        input_name=source.input_name,
        max_batch=config.max_batch,
        workspace_gb=config.trt_workspace_gb,
        calibration=calibration,
        calibration_cache=cache,
    )
    return Built(engine, info, None, notes, {"onnx_source": onnx_path.name, "trtexec": command})


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def torch_tensorrt_available() -> bool:
    return importlib.util.find_spec("torch_tensorrt") is not None


def _shapes(spec: ModelSpec, max_batch: int, opt_batch: int) -> tuple[tuple[int, ...], ...]:
    w, h = spec.input_size
    return (1, 3, h, w), (min(opt_batch, max_batch), 3, h, w), (max_batch, 3, h, w)


def trtexec_command(
    onnx_path: Path,
    engine_path: Path,
    spec: ModelSpec,
    precision: str,
    *,
    input_name: str,
    max_batch: int,
    opt_batch: int = 1,
    workspace_gb: float = 2.0,
    trt_version: str = "10",
) -> str:
    """The trtexec line that builds the same engine on the device (run it next to the ONNX file).

    `trt_version` is the device's TensorRT: before 8.4 trtexec sizes the workspace with
    `--workspace=MiB` and wants `--explicitBatch`; 8.4 replaced that with `--memPoolSize`, and 10
    removed the old flags.
    """
    lo, opt, hi = ("x".join(str(d) for d in shape) for shape in _shapes(spec, max_batch, opt_batch))
    workspace_mib = int(workspace_gb * 1024)
    args = [
        "trtexec",
        f"--onnx={onnx_path.name}",
        f"--saveEngine={engine_path.name}",
        f"--minShapes={input_name}:{lo}",
        f"--optShapes={input_name}:{opt}",
        f"--maxShapes={input_name}:{hi}",
    ]
    if _version(trt_version) < (8, 4):
        args += ["--explicitBatch", f"--workspace={workspace_mib}"]
    else:
        args.append(f"--memPoolSize=workspace:{workspace_mib}M")
    if precision == "fp16":
        args.append("--fp16")
    elif precision == "int8":
        args += ["--int8", "--fp16"]  # INT8 where the QDQ nodes say so, FP16 for the rest
    return " ".join(shlex.quote(a) for a in args)


def calibration_cache_path(engine_path: Path, weights_sha256: str, calibration: np.ndarray) -> Path:
    """Where TensorRT's INT8 calibrator keeps its activation ranges for these weights and crops.

    The ranges belong to one set of weights: the name carries a hash of the student's weights and
    of the calibration crops, so a retrained student (or other crops) is calibrated afresh instead
    of silently reusing the previous model's cache.
    """
    digest = hashlib.sha256(weights_sha256.encode())
    digest.update(np.ascontiguousarray(calibration, dtype=np.float32).tobytes())
    return engine_path.with_name(f"{engine_path.stem}-{digest.hexdigest()[:16]}.calib")


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise ExportError(f"TensorRT version {text!r} is not like '8.2' or '10'") from None


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    spec: ModelSpec,
    precision: str,
    *,
    input_name: str,
    max_batch: int,
    opt_batch: int = 1,
    workspace_gb: float = 2.0,
    calibration: np.ndarray | None = None,
    calibration_cache: Path | None = None,
) -> Path:
    """Parse `onnx_path` and build a serialized engine with the TensorRT Python API.

    `calibration` selects implicit INT8 (entropy calibrator over these crops, FP32 ONNX, ranges
    cached in `calibration_cache` when given, see `calibration_cache_path`); without it an INT8 build
    expects the symmetric QDQ ONNX (explicit quantization).
    """
    trt = require("tensorrt", "tensorrt", "building TensorRT engines")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"conversion to tensorrt failed: the ONNX parser rejected {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    lo, opt, hi = _shapes(spec, max_batch, opt_batch)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, lo, opt, hi)
    config.add_optimization_profile(profile)
    calibrator = None
    if precision == "int8" and calibration is not None:
        calibrator = _entropy_calibrator(trt, calibration, calibration_cache)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConversionError(
            f"conversion to tensorrt failed: the builder returned no engine for {onnx_path.name} "
            "(see the TensorRT log above for the layer it stopped at)"
        )
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, engine_path)
    return engine_path


def _entropy_calibrator(trt, data: np.ndarray, cache_path: Path | None):
    """TensorRT's IInt8EntropyCalibrator2 fed from our calibration crops (one crop per batch)."""
    import torch

    if not torch.cuda.is_available():
        raise ExportError("TensorRT INT8 calibration needs a CUDA GPU; none is visible")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.data = data
            self.index = 0
            self.device = torch.empty((1, *data.shape[1:]), dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if self.index >= len(self.data):
                return None
            self.device.copy_(torch.from_numpy(np.ascontiguousarray(self.data[self.index : self.index + 1])))
            self.index += 1
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            if cache_path is not None:
                cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()


def compile_with_torch_tensorrt(
    model: nn.Module,
    spec: ModelSpec,
    engine_path: Path,
    precision: str,
    *,
    max_batch: int,
    opt_batch: int = 1,
    workspace_gb: float = 2.0,
) -> Path:
    """Second route: torch_tensorrt compiles the student itself into a raw engine (fp32/fp16)."""
    if precision == "int8":
        raise ExportError(
            "the torch_tensorrt route builds fp32/fp16 engines; for int8 use trt_route='onnx' "
            "(explicit INT8 from the symmetric QDQ ONNX)"
        )
    torch_tensorrt = require("torch_tensorrt", "tensorrt", "the torch_tensorrt route")
    import torch

    if not torch.cuda.is_available():
        raise ExportError("the torch_tensorrt route needs a CUDA GPU; none is visible")
    net = _Half(fold_batchnorm(model)) if precision == "fp16" else fold_batchnorm(model)
    net = net.cuda().eval()
    lo, opt, hi = _shapes(spec, max_batch, opt_batch)
    example = torch.zeros((2, *lo[1:]), device="cuda")
    try:
        program = torch.export.export(
            net, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=max_batch)},)
        )
        engine = torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine(
            program,
            arg_inputs=[torch_tensorrt.Input(min_shape=lo, opt_shape=opt, max_shape=hi, dtype=torch.float32)],
            workspace_size=int(workspace_gb * (1 << 30)),
        )
    except Exception as err:
        raise conversion_error("tensorrt (torch_tensorrt)", err) from err
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(bytes(engine))
    os.replace(tmp, engine_path)
    return engine_path


class _Half(nn.Module):
    """FP16 weights and compute with float32 input/output (explicit typing keeps exactly this)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, x):
        return self.net(x.half()).float()


def engine_io_names(engine_path: Path) -> tuple[str, str]:
    """Input and output tensor names of a built engine."""
    trt = require("tensorrt", "tensorrt", "reading TensorRT engines")
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise ConversionError(f"{engine_path}: TensorRT could not deserialize the engine it just built")
    inputs, outputs = io_tensor_names(engine, trt)
    return inputs[0], outputs[0]
