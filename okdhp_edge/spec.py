"""The metadata that travels with every student and every exported artifact.

A `ModelSpec` is everything a consumer needs besides the weights: the architecture to rebuild
the network (training side), and the skeleton, input geometry, normalisation and decoding
(runtime side). It is stored as JSON next to safetensors weights and embedded in exports.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .skeleton import Skeleton

__all__ = [
    "ArchSpec", "InputSpec", "ModelSpec", "SPEC_METADATA_KEY", "SPEC_VERSION", "SpecError", "sidecar_path",
    "write_json_atomic",
]

SPEC_VERSION = 1
# Key of the spec embedded in an artifact (ONNX metadata_props, TFLite metadata, Core ML user metadata).
SPEC_METADATA_KEY = "okdhp_spec"
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
class ModelSpec:
    """Architecture, skeleton, geometry, decoding and provenance of one student."""

    name: str
    arch: ArchSpec
    skeleton: Skeleton
    input: InputSpec = field(default_factory=InputSpec)
    heatmap_stride: int = 4
    decoding: str = "argmax-quarter-offset"
    compression_rate: float = 1.0
    params: int = 0
    macs: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    version: int = SPEC_VERSION

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input.width // self.heatmap_stride, self.input.height // self.heatmap_stride

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input.width, self.input.height

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skeleton"] = self.skeleton.to_dict()
        data["input"]["mean"] = list(self.input.mean)
        data["input"]["std"] = list(self.input.std)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "ModelSpec":
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("version", SPEC_VERSION)
        if version > SPEC_VERSION:
            raise SpecError(f"{source}: spec version {version} is newer than this okdhp-edge ({SPEC_VERSION}); upgrade okdhp-edge")
        try:
            arch = _build(ArchSpec, data["arch"], f"{source}: arch")
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
                export=dict(data.get("export", {})),
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
                f"{source}: arch.num_joints={arch.num_joints} but skeleton {skeleton.name!r} has {skeleton.num_keypoints} keypoints"
            )
        if spec.input.width % spec.heatmap_stride or spec.input.height % spec.heatmap_stride:
            raise SpecError(f"{source}: input {spec.input_size} is not divisible by heatmap_stride {spec.heatmap_stride}")
        return spec

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> "ModelSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"{source}: not valid JSON ({err}); the spec file is corrupt or truncated") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelSpec":
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
