"""Deployment targets: the format, precision and ONNX opset each device runs, and what of this SDK
runs there.

The defaults follow what the hardware accelerates and what its software parses: INT8 tensor cores
on Jetson Orin (JetPack 5.1 ships TensorRT 8.5 and JetPack 6.0 TensorRT 8.6, whose ONNX parsers
document opsets up to 17); FP16 on the Maxwell GPU of a Jetson Nano (no INT8; JetPack 4.6 ships
TensorRT 8.2, which parses up to opset 13 and predates trtexec's --memPoolSize); the Neural
Engine's FP16 on iPhone; full-integer INT8 LiteRT on Android; static QDQ INT8 for ONNX Runtime
on CPUs, which was faster than LiteRT's INT8 on the x86 CPU that measured both (its note says
which measurement; on ARM the order may flip).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ExportError

__all__ = ["TARGETS", "Target", "get_target"]


@dataclass(frozen=True)
class Target:
    name: str
    format: str
    precision: str
    description: str
    int8_scheme: str = "auto"
    nhwc: bool = False
    opset: int = 18  # ONNX opset of the ONNX file (the artifact, or the TensorRT engine's source)
    trt_version: str = "10"  # TensorRT on the device: picks the trtexec flags
    notes: tuple[str, ...] = ()  # printed with every export for this target: what runs on the device


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "jetson-orin",
            "tensorrt",
            "int8",
            "Jetson Orin (JetPack 5.1/6.x): INT8 TensorRT engine from symmetric QDQ ONNX, opset 17",
            int8_scheme="symmetric",
            opset=17,
            trt_version="8.5",
            notes=(
                "Jetson Orin: build the engine on the device with the trtexec line (TensorRT 8.5 and later accept "
                "it); the okdhp_edge runtime runs the engine with Python >= 3.10 and TensorRT >= 8.5 Python bindings "
                "plus cuda-python: JetPack 6 (Python 3.10); on JetPack 5 (Python 3.8) it does not install, so "
                "load the engine from your own TensorRT code there",
            ),
        ),
        Target(
            "jetson-nano",
            "tensorrt",
            "fp16",
            "Jetson Nano (JetPack 4.6, TensorRT 8.2, no INT8): FP16 engine from opset-13 ONNX",
            opset=13,
            trt_version="8.2",
            notes=(
                "Jetson Nano (JetPack 4.6: TensorRT 8.2, CUDA 10.2, Python 3.6): the ONNX is opset 13 and the "
                "trtexec line uses TensorRT 8.2's flags, so the engine builds on the Nano; the okdhp_edge runtime "
                "does not run there (it needs Python >= 3.10 and TensorRT >= 8.5): load the engine from your own "
                "TensorRT 8.2 code (C++ or Python 3.6), feeding the crops as the sidecar JSON describes",
            ),
        ),
        Target("iphone", "coreml", "fp16", "iPhone / iPad: Core ML mlprogram in FP16 for the Neural Engine"),
        Target(
            "android",
            "tflite",
            "int8",
            "Android: full-integer INT8 LiteRT with NHWC input/output (CPU/XNNPACK)",
            nhwc=True,
            notes=(
                "Android: the app runs the .tflite with LiteRT itself; the okdhp_edge runtime (desktop/Linux "
                "Python) runs it on the CPU with XNNPACK and exposes no GPU/NNAPI delegates. Ship the "
                "<artifact>.json sidecar as an app asset to read the input size, normalisation and skeleton",
            ),
        ),
        Target(
            "cpu",
            "onnx",
            "int8",
            "x86/ARM CPU: ONNX Runtime with static QDQ INT8 (per-channel weights); on the x86 Xeon measured, as "
            "fast as TFLite INT8 at 1 thread and within 1.13x at 2 (docs/export.md)",
            notes=(
                # the faster INT8 artifact depends on the CPU, so the report says which measurement chose it
                "chosen over TFLite INT8 by measurement: through the runtime, ONNX INT8 took 0.88-1.05x TFLite "
                "INT8's time at 1 thread and 1.02-1.13x at 2 on the edge students (2026-12-07, an idle x86-64 Intel "
                "Xeon with AVX512-VNNI, 2 vCPUs, onnxruntime 1.32.0, ai-edge-litert 2.3.0; docs/export.md, 'Threads "
                "and spinning'), and it runs where LiteRT has no wheel (Python 3.8 on JetPack 5). On the smaller "
                "'tiny' students (0.05-0.12 GMACs) TFLite INT8 was 1.35-1.53x faster for one person on that CPU, so "
                "the bundled ones ship both files (docs/runtime.md, 'Bundled students: which file runs'). On ARM CPUs "
                "(Raspberry Pi, Jetson) XNNPACK is usually the faster INT8 path: time both there with "
                "benchmarks/export_matrix.py and use --target android's .tflite if it wins",
            ),
        ),
    )
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ExportError(f"unknown target {name!r}; valid: {', '.join(TARGETS)}") from None
