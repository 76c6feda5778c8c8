"""Deployment targets: the format and precision each device runs best.

The defaults follow what the hardware accelerates: INT8 tensor cores on Jetson Orin, FP16 on
the Maxwell GPU of a Jetson Nano (no INT8 there), the Neural Engine's FP16 on iPhone,
full-integer INT8 for Android NPUs/DSPs/XNNPACK, and static QDQ INT8 for ONNX Runtime on CPUs.
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


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("jetson-orin", "tensorrt", "int8", "Jetson Orin (JetPack TensorRT): INT8 engine from symmetric QDQ ONNX",
               int8_scheme="symmetric"),
        Target("jetson-nano", "tensorrt", "fp16", "Jetson Nano (Maxwell GPU has no INT8): FP16 TensorRT engine"),
        Target("iphone", "coreml", "fp16", "iPhone / iPad: Core ML mlprogram in FP16 for the Neural Engine"),
        Target("android", "tflite", "int8", "Android: full-integer INT8 LiteRT for XNNPACK, NNAPI and DSP delegates",
               nhwc=True),
        Target("cpu", "onnx", "int8", "x86/ARM CPU: ONNX Runtime with static QDQ INT8 (per-channel weights)"),
    )
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ExportError(f"unknown target {name!r}; valid: {', '.join(TARGETS)}") from None
