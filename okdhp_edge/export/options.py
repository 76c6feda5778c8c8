"""What an export run should produce: format, precision and the knobs of each converter."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from .errors import ExportError

__all__ = [
    "CALIB_AVERAGING",
    "CALIB_METHODS",
    "ExportConfig",
    "FORMATS",
    "FORMAT_OPTIONS",
    "INT8_RESIDUALS",
    "INT8_SCHEMES",
    "PRECISIONS",
    "SUFFIXES",
    "TRT_ROUTES",
]

FORMATS = ("onnx", "tflite", "coreml", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "coreml": ".mlpackage", "tensorrt": ".engine"}
CALIB_METHODS = ("average", "minmax", "entropy", "percentile")
INT8_SCHEMES = ("auto", "qdq", "symmetric", "calibrator")
INT8_RESIDUALS = ("auto", "float", "int8")
CALIB_AVERAGING = 0.01  # "average" calibration: weight of each new crop's min/max in the running range
TRT_ROUTES = ("onnx", "torch_tensorrt")
_WEIGHTS_ONLY = "Core ML INT8 quantizes weights only"
# Options only some formats use: option -> (those formats, why the others have no use for it).
# Set to anything but its default for another format, an option is an error, never silently ignored.
FORMAT_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "opset": (("onnx", "tensorrt"), "only ONNX files (and the ONNX a TensorRT engine is built from) have an opset"),
    "calib_method": (
        ("onnx", "tensorrt"),
        "TFLite INT8 calibrates with PT2E's moving-average min/max observer; " + _WEIGHTS_ONLY,
    ),
    "int8_scheme": (("onnx", "tensorrt"), "TFLite INT8 is always symmetric int8; " + _WEIGHTS_ONLY),
    "int8_residual": (("onnx", "tflite", "tensorrt"), _WEIGHTS_ONLY),
    "equalize": (("onnx", "tflite", "tensorrt"), _WEIGHTS_ONLY + ", there are no activation ranges to even out"),
    "nhwc": (("onnx", "tflite"), "Core ML and TensorRT take NCHW input"),
    "image_input": (("coreml",), "only a Core ML package can take an RGB image and normalise it inside the model"),
    "max_batch": (("coreml", "tensorrt"), "ONNX files take any batch, LiteRT models a batch of 1"),
    "trt_route": (("tensorrt",), "it picks how a TensorRT engine is built"),
    "trt_workspace_gb": (("tensorrt",), "it sizes TensorRT's builder workspace"),
    "trt_version": (("tensorrt",), "it picks the trtexec flags of the device's TensorRT"),
}


@dataclass
class ExportConfig:
    """One export: which artifact to build and how to calibrate and verify it.

    int8_scheme: "qdq" (uint8 activations, fastest on ONNX Runtime CPU), "symmetric" (int8
    activations with zero point 0: the QDQ ONNX TensorRT builds INT8 engines from),
    "calibrator" (TensorRT's own entropy calibrator; needs `tensorrt` here) or "auto" (qdq for
    onnx, symmetric for tensorrt). `metric` is the accuracy that `max_drop` applies to.
    int8_residual: "int8" (= "auto") quantizes everything (full-integer: fastest, and what
    integer-only accelerators such as NNAPI/DSP delegates need); "float" keeps the residual
    stream (skip sums, pooling, upsampling and the pre-activation BatchNorms) in float while every
    other convolution runs in INT8: a little more accurate, somewhat slower (docs/export.md).
    `equalize` rescales activation channels before INT8 calibration (exact in float, see equalize.py).
    `synthetic_images` sizes a generated synthetic val split (None: the data module's default).
    """

    format: str = "onnx"
    precision: str = "fp32"
    out_dir: Path = Path("exports")
    opset: int = 18
    nhwc: bool = False
    calib_data: str = "synthetic"
    calib_split: str = "val"  # the split of calib_data that calibration and verification crops come from
    calib_images: int = 512  # the moving-average ranges forget the first crops only after a few hundred
    calib_method: str = "average"  # typical (per-crop averaged) ranges; docs/export.md compares the methods
    int8_scheme: str = "auto"
    int8_residual: str = "auto"
    equalize: bool = True
    image_input: bool = False
    max_batch: int = 32
    verify_images: int = 64
    max_drop: float | None = None
    metric: str = "pck@0.2"
    synthetic_images: int | None = None
    num_threads: int = 2
    seed: int = 0
    trt_route: str = "onnx"
    trt_workspace_gb: float = 2.0
    trt_version: str = "10"  # TensorRT on the device: "8.2" prints trtexec's --workspace, later ones --memPoolSize
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.format = str(self.format).lower()
        self.precision = str(self.precision).lower()
        _choice("format", self.format, FORMATS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("calib_method", self.calib_method, CALIB_METHODS)
        _choice("int8_scheme", self.int8_scheme, INT8_SCHEMES)
        _choice("trt_route", self.trt_route, TRT_ROUTES)
        _choice("int8_residual", self.int8_residual, INT8_RESIDUALS)
        if self.opset < 13:
            raise ExportError(
                f"opset {self.opset} is too old: use opset >= 13 (default 18; 13 is what TensorRT 8.2 parses)"
            )
        if self.opset < 17 and (self.precision == "int8" or self.format not in ("onnx", "tensorrt")):
            raise ExportError(
                f"opset {self.opset} is for fp32/fp16 ONNX and TensorRT exports (TensorRT 8.2, Jetson Nano); "
                "INT8 and the other formats need opset >= 17"
            )
        _choice("calib_split", self.calib_split, ("val", "train"))
        if self.calib_images < 1:
            raise ExportError(f"calib_images must be >= 1, got {self.calib_images}")
        if self.verify_images < 0:
            raise ExportError(f"verify_images must be >= 0 (0 skips verification), got {self.verify_images}")
        if self.max_batch < 1:
            raise ExportError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_drop is not None and self.max_drop < 0:
            raise ExportError(f"max_drop must be >= 0 accuracy points, got {self.max_drop}")
        self._reject_ignored_options()
        if self.int8_scheme == "calibrator" and self.format != "tensorrt":
            raise ExportError("int8_scheme='calibrator' is TensorRT's calibrator: use it with format='tensorrt'")
        if self.int8_scheme == "qdq" and self.format == "tensorrt":
            raise ExportError("TensorRT INT8 needs symmetric quantization: use int8_scheme='symmetric' or 'calibrator'")

    def _reject_ignored_options(self) -> None:
        defaults = {f.name: f.default for f in fields(self)}
        for name, (formats, why) in FORMAT_OPTIONS.items():
            if self.format not in formats and getattr(self, name) != defaults[name]:
                raise ExportError(
                    f"{name} (--{name.replace('_', '-')}) applies to {', '.join(formats)} only, "
                    f"not format={self.format!r}: {why}"
                )

    @classmethod
    def option_names(cls) -> list[str]:
        return sorted(f.name for f in fields(cls))

    @property
    def scheme(self) -> str:
        """The INT8 scheme actually used ("auto" resolved for the format)."""
        if self.int8_scheme != "auto":
            return self.int8_scheme
        return "symmetric" if self.format == "tensorrt" else "qdq"

    @property
    def residual(self) -> str:
        """Where the residual stream runs in INT8 exports ("auto" resolved for the format)."""
        if self.int8_residual != "auto":
            return self.int8_residual
        return "int8"


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ExportError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
