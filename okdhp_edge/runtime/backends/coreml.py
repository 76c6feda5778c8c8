"""Core ML backend (`.mlpackage`): coremltools' `MLModel.predict`, which only runs on macOS.

Off macOS the backend refuses at load time with a clear message instead of failing at predict.
Packages exported with an image input (`input_kind: "image"`, normalisation inside the model)
get the crops back as RGB pixels: the normalised batch is mapped back through mean and std,
which restores the exact 0-255 values.
Note: coremltools imports torch when torch happens to be installed; a runtime-only install on a
Mac has no torch, so nothing extra is loaded there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ...spec import ModelSpec
from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import SPEC_KEY, TensorInfo, load_spec_text, missing_spec_error, read_sidecar
from .base import Backend

__all__ = ["CoreMLBackend", "embedded_spec", "read_package"]

COMPUTE_UNITS = {"auto": "ALL", "coreml": "ALL", "ane": "CPU_AND_NE", "gpu": "CPU_AND_GPU", "cpu": "CPU_ONLY"}
ARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32"}


class CoreMLBackend(Backend):
    name = "coreml"

    def __init__(self, path: Path, device: str = "auto", num_threads: int | None = None) -> None:
        if sys.platform != "darwin":
            raise BackendUnavailableError(
                f"{path}: Core ML models run only on macOS/iOS (this is {sys.platform}); "
                "use the .onnx or .tflite export of the same student here"
            )
        if device not in COMPUTE_UNITS:
            raise ValueError(f"unknown device {device!r} for Core ML; valid: {', '.join(COMPUTE_UNITS)}")
        try:
            import coremltools as ct
        except ImportError:
            raise BackendUnavailableError(
                f"{path}: .mlpackage models need coremltools: pip install 'okdhp-edge[coreml]'"
            ) from None
        spec, inp, out = read_package(path, ct)
        try:
            self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[device]))
        except Exception as err:  # coremltools raises generic exceptions for unloadable packages
            raise ModelFileError(f"{path}: Core ML cannot load this package ({err}); re-export it") from None
        super().__init__(path, spec, inp, out, device=COMPUTE_UNITS[device])
        self._image_input = inp.dtype == "uint8"  # only image features read as uint8 (see _tensor)
        if self._image_input:
            try:
                from PIL import Image
            except ImportError:
                raise BackendUnavailableError(
                    f"{path}: Core ML image inputs are fed as PIL images: pip install pillow"
                ) from None
            self._pil = Image

    def run(self, x: np.ndarray) -> np.ndarray:
        if not self._image_input:
            result = self.model.predict({self.input.name: x.astype(np.dtype(self.input.dtype), copy=False)})
            return np.asarray(result[self.output.name], dtype=np.float32)
        mean = np.asarray(self.spec.input.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.spec.input.std, np.float32).reshape(1, 3, 1, 1)
        pixels = np.clip(np.round(x * std + mean), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)  # RGB NHWC
        outs = [self.model.predict({self.input.name: self._pil.fromarray(p, "RGB")})[self.output.name] for p in pixels]
        return np.concatenate([np.asarray(o, dtype=np.float32).reshape(1, *np.shape(o)[-3:]) for o in outs])


def embedded_spec(path: Path) -> ModelSpec:
    """The spec in the package's `okdhp_spec` user metadata (readable on any OS)."""
    try:
        import coremltools as ct
    except ImportError:
        raise BackendUnavailableError(
            f"{path}: reading .mlpackage metadata needs coremltools: pip install 'okdhp-edge[coreml]'"
        ) from None
    return _described_spec(_description(path, ct), path)


def _described_spec(description, path: Path) -> ModelSpec:
    embedded = description.metadata.userDefined.get(SPEC_KEY)
    if embedded is None:
        raise missing_spec_error(path, f" or {SPEC_KEY!r} in the package's user metadata")
    return load_spec_text(embedded, f"{path} (user metadata {SPEC_KEY})")


def _description(path: Path, ct):
    if not path.exists():
        raise ModelFileError(f"{path}: model file not found")
    try:
        return ct.utils.load_spec(str(path)).description
    except Exception as err:  # coremltools raises generic exceptions for unreadable packages
        raise ModelFileError(
            f"{path}: coremltools cannot read this package ({err}); it is incomplete or not Core ML: re-export it"
        ) from None


def read_package(path: Path, ct) -> tuple[ModelSpec, TensorInfo, TensorInfo]:
    """Spec and I/O of a Core ML package, read from its protobuf (works on any OS, no prediction)."""
    description = _description(path, ct)
    spec = read_sidecar(path) or _described_spec(description, path)
    if len(description.input) != 1:
        raise ModelFileError(f"{path}: the model has {len(description.input)} inputs; a pose student has exactly one")
    wanted = spec.export_info.output_name
    outputs = list(description.output)
    out = next((o for o in outputs if o.name == wanted), outputs[0])
    return spec, _tensor(description.input[0], ct), _tensor(out, ct)


def _tensor(feature, ct) -> TensorInfo:
    kind_of = feature.type.WhichOneof("Type")
    if kind_of == "imageType":
        image = feature.type.imageType
        return TensorInfo(feature.name, (1, 3, int(image.height), int(image.width)), "uint8")
    if kind_of != "multiArrayType":
        raise ModelFileError(
            f"Core ML feature {feature.name!r} is a {kind_of}; okdhp-edge models take a tensor or an image"
        )
    array = feature.type.multiArrayType
    kind = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
    shape: list[int | None] = [int(d) for d in array.shape]
    flexibility = array.WhichOneof("ShapeFlexibility")
    if flexibility == "shapeRange":
        for axis, size in enumerate(array.shapeRange.sizeRanges):
            if size.lowerBound != size.upperBound:
                shape[axis] = None
    elif flexibility == "enumeratedShapes":
        for axis in range(len(shape)):
            if len({tuple(s.shape)[axis] for s in array.enumeratedShapes.shapes}) > 1:
                shape[axis] = None
    return TensorInfo(feature.name, tuple(shape) if shape else None, ARRAY_DTYPES.get(kind, kind.lower()))
