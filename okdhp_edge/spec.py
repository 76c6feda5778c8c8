"""The metadata that travels with every student and every exported artifact.

A `ModelSpec` is everything a consumer needs besides the weights: the architecture to rebuild
the network (training side), and the skeleton, input geometry, normalisation and decoding
(runtime side). It is stored as JSON next to safetensors weights and embedded in exports.
An exported artifact's spec also carries an `ExportInfo`: the contract export writes and the
runtime reads, typed once here so neither side spells its keys on its own.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .skeleton import Skeleton

__all__ = [
    "ARCH_TYPES",
    "ArchSpec",
    "DTYPES",
    "EnsembleArchSpec",
    "ExportInfo",
    "InputSpec",
    "LAYOUTS",
    "ModelSpec",
    "SPEC_METADATA_KEY",
    "SPEC_VERSION",
    "SpecError",
    "sidecar_path",
    "write_json_atomic",
]

SPEC_VERSION = 1
# Key of the spec embedded in an artifact (ONNX metadata_props, TFLite metadata, Core ML user metadata).
SPEC_METADATA_KEY = "okdhp_spec"
LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "float16", "int8", "uint8")
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class SpecError(ValueError):
    """A spec file or dict that cannot describe a model; the message names the file and field."""


@dataclass
class ArchSpec:
    """A plain hourglass student: stem, trunk stacks, optional width projection, branch stacks."""

    type: str = "hourglass"
    num_joints: int = 17
    trunk_stacks: int = 2
    trunk_channels: int = 256
    branch_stacks: int = 2
    branch_channels: int = 256
    hourglass_depth: int = 4


@dataclass
class EnsembleArchSpec:
    """The OKDHP training net's FAU ensemble: stem, trunk stacks, every branch and the FAU.

    It runs as a teacher (it costs all branches) with a student's input and output; `branches`
    holds [stacks, channels] per branch, in the training net's order.
    """

    type: str = "okdhp-ensemble"
    num_joints: int = 17
    trunk_stacks: int = 2
    trunk_channels: int = 256
    branches: list[list[int]] = field(default_factory=list)
    hourglass_depth: int = 4
    fau_reduction: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.branches, (list, tuple)) or not self.branches:
            raise ValueError(f"arch.branches: expected a non-empty list of [stacks, channels], got {self.branches!r}")
        pairs = []
        for branch in self.branches:
            if (
                not isinstance(branch, (list, tuple))
                or len(branch) != 2
                or not all(isinstance(v, int) and v > 0 for v in branch)
            ):
                raise ValueError(f"arch.branches: {branch!r} is not [stacks, channels] (two positive integers)")
            pairs.append([int(v) for v in branch])
        self.branches = pairs


# arch.type -> the dataclass describing it; a spec without a type is a plain hourglass student
ARCH_TYPES: dict[str, type] = {"hourglass": ArchSpec, "okdhp-ensemble": EnsembleArchSpec}


@dataclass
class InputSpec:
    """Network input: size (width, height), colour order, layout and 0-255 scale normalisation."""

    width: int = 256
    height: int = 256
    color: str = "RGB"
    layout: str = "NCHW"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_padding: float = 1.25


@dataclass
class ExportInfo:
    """How to feed one exported artifact (tensor names, layouts, dtype, batch) and where it came from.

    Stored flat as the spec's `export` object; `batch` None is written "dynamic", and fields left
    None are not written. Format-specific facts (opset, calibration, quantization parameters, the
    TensorRT build command, ...) live in `details`, stored beside the typed fields: the runtime
    never needs them, the report and the people reading the sidecar do.
    """

    format: str = "safetensors"
    precision: str = "fp32"
    input_name: str | None = None
    output_name: str | None = None
    input_layout: str = "NCHW"
    output_layout: str = "NCHW"
    input_dtype: str = "float32"
    batch: int | None = None  # None: dynamic
    max_batch: int | None = None  # the most crops one call may carry (TensorRT profile, Core ML range); None: no limit
    int8_scheme: str | None = None  # INT8 ONNX: "qdq" (uint8 activations, CPU) or "symmetric" (TensorRT can build it)
    device_specific: bool = False  # True: runs only on the GPU / TensorRT version that built it
    source_sha256: str | None = None  # of the student weights it was exported from
    created: str | None = None
    okdhp_edge_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}
        data["batch"] = "dynamic" if self.batch is None else self.batch
        clash = sorted(set(self.details) & set(data))
        if clash:
            raise SpecError(f"export details {clash} would overwrite typed fields of the export section")
        return {**{k: v for k, v in data.items() if v is not None}, **copy.deepcopy(self.details)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> ExportInfo:
        if not isinstance(data, dict):
            raise SpecError(f"{source}: export: expected an object")
        typed = {f.name for f in fields(cls)} - {"details"}
        known = {k: v for k, v in data.items() if k in typed}
        batch = known.pop("batch", "dynamic")
        if batch not in (None, "dynamic") and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise SpecError(
                f"{source}: export.batch must be 'dynamic' or a positive integer, got {batch!r}; re-export the model"
            )
        max_batch = known.get("max_batch")
        if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
            raise SpecError(
                f"{source}: export.max_batch must be a positive integer, got {max_batch!r}; re-export the model"
            )
        info = cls(
            batch=None if batch in (None, "dynamic") else batch,
            details={k: copy.deepcopy(v) for k, v in data.items() if k not in typed},
            **known,
        )
        info.input_layout, info.output_layout = str(info.input_layout).upper(), str(info.output_layout).upper()
        for name, valid in (("input_layout", LAYOUTS), ("output_layout", LAYOUTS), ("input_dtype", DTYPES)):
            if getattr(info, name) not in valid:
                raise SpecError(
                    f"{source}: export.{name}={getattr(info, name)!r} is not one of {list(valid)}; re-export the model"
                )
        return info


@dataclass
class ModelSpec:
    """Architecture, skeleton, geometry, decoding and provenance of one student (or FAU ensemble)."""

    name: str
    arch: ArchSpec | EnsembleArchSpec
    skeleton: Skeleton
    input: InputSpec = field(default_factory=InputSpec)
    heatmap_stride: int = 4
    decoding: str = "argmax-quarter-offset"
    compression_rate: float = 1.0
    params: int = 0
    macs: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)
    export: ExportInfo | None = None  # set on an exported artifact's spec; None for a student
    version: int = SPEC_VERSION

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input.width // self.heatmap_stride, self.input.height // self.heatmap_stride

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input.width, self.input.height

    @property
    def export_info(self) -> ExportInfo:
        """The export section, or what a plain (non-exported) student implies."""
        return self.export or ExportInfo(input_layout=self.input.layout.upper())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, export=None))
        data["export"] = self.export.to_dict() if self.export else {}
        data["skeleton"] = self.skeleton.to_dict()
        data["input"]["mean"] = list(self.input.mean)
        data["input"]["std"] = list(self.input.std)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> ModelSpec:
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("version", SPEC_VERSION)
        if version > SPEC_VERSION:
            raise SpecError(
                f"{source}: spec version {version} is newer than this okdhp-edge ({SPEC_VERSION}); upgrade okdhp-edge"
            )
        try:
            arch = _build_arch(data["arch"], f"{source}: arch")
            inp = _build(InputSpec, data.get("input", {}), f"{source}: input")
            inp.mean = tuple(float(v) for v in inp.mean)
            inp.std = tuple(float(v) for v in inp.std)
            skeleton = Skeleton.from_dict(data["skeleton"])
            top = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - top)
            if unknown:
                raise SpecError(f"{source}: unknown field(s) {unknown}; valid: {sorted(top)}")
            spec = cls(
                name=str(data["name"]),
                arch=arch,
                skeleton=skeleton,
                input=inp,
                heatmap_stride=int(data.get("heatmap_stride", 4)),
                decoding=str(data.get("decoding", "argmax-quarter-offset")),
                compression_rate=float(data.get("compression_rate", 1.0)),
                params=int(data.get("params", 0)),
                macs=int(data.get("macs", 0)),
                provenance=dict(data.get("provenance", {})),
                export=ExportInfo.from_dict(data["export"], source) if data.get("export") else None,
                version=int(version),
            )
        except KeyError as err:
            raise SpecError(f"{source}: missing field {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            if isinstance(err, SpecError):
                raise
            raise SpecError(f"{source}: {err}") from None
        if arch.num_joints != skeleton.num_keypoints:
            raise SpecError(
                f"{source}: arch.num_joints={arch.num_joints} but skeleton {skeleton.name!r} has "
                f"{skeleton.num_keypoints} keypoints"
            )
        if spec.input.width % spec.heatmap_stride or spec.input.height % spec.heatmap_stride:
            raise SpecError(
                f"{source}: input {spec.input_size} is not divisible by heatmap_stride {spec.heatmap_stride}"
            )
        return spec

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"{source}: not valid JSON ({err}); the spec file is corrupt or truncated") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelSpec:
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"{path}: spec file not found")
        return cls.from_json(path.read_text(encoding="utf-8"), str(path))

    def save(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, self.to_dict())


def _build(kind: type, data: Any, where: str):
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected an object")
    valid = {f.name for f in fields(kind)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown}; valid: {sorted(valid)}")
    return kind(**data)


def _build_arch(data: Any, where: str) -> ArchSpec | EnsembleArchSpec:
    kind = ARCH_TYPES.get(data.get("type", "hourglass")) if isinstance(data, dict) else ArchSpec
    if kind is None:
        raise SpecError(f"{where}: unknown type {data['type']!r}; valid: {', '.join(ARCH_TYPES)}")
    return _build(kind, data, where)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """The spec file that travels next to an exported artifact: `x-int8.onnx` -> `x-int8.onnx.json`
    (also for `.mlpackage` directories)."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")
