"""The model file format: safetensors weights + a JSON spec (also embedded in the weights'
metadata), for students and the FAU ensemble alike. The spec's `arch.type` says which network to
rebuild; files never go through pickle.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..spec import SPEC_METADATA_KEY, ArchSpec, EnsembleArchSpec, ModelSpec, SpecError
from .ensemble import EnsembleNet
from .okdhp import OKDHPSpec
from .posenet import HourglassNet

__all__ = ["StudentFileError", "network_from_arch", "load_student", "save_student", "student_paths"]


def network_from_arch(arch: ArchSpec | EnsembleArchSpec) -> nn.Module:
    """The (untrained) network a spec's architecture describes."""
    if isinstance(arch, EnsembleArchSpec):
        return EnsembleNet(OKDHPSpec.from_ensemble_arch(arch))
    return HourglassNet(arch)


class StudentFileError(ValueError):
    """A model file (a student or an ensemble) that is missing, corrupt or does not match its spec."""


def student_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, spec) paths for `x.safetensors`, `x.json` or the stem `x`."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_student(student: nn.Module, spec: ModelSpec, path: str | os.PathLike) -> Path:
    """Write weights and spec atomically (a student, or an EnsembleNet under its spec); returns the weights path."""
    from safetensors.torch import save_file

    weights_path, spec_path = student_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in student.state_dict().items()}
    tmp = weights_path.with_name(weights_path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt", SPEC_METADATA_KEY: spec.to_json()})
    os.replace(tmp, weights_path)
    spec.save(spec_path)
    return weights_path


def load_student(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelSpec]:
    """Rebuild the network its spec describes (a student, or an ensemble) and load its weights
    (eval mode); either maps crops to (N, K, h, w) heatmaps. Never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, spec_path = student_paths(path)
    if not weights_path.is_file():
        raise StudentFileError(f"{weights_path}: model weights not found (expected NAME.safetensors next to NAME.json)")
    try:
        spec = ModelSpec.load(spec_path)
    except SpecError as err:
        raise StudentFileError(str(err)) from None
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise StudentFileError(
            f"{weights_path}: cannot read safetensors ({err}); the file is corrupt or truncated, re-export it"
        ) from None
    model = network_from_arch(spec.arch)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise StudentFileError(
            f"{weights_path}: weights do not match the architecture in {spec_path} "
            f"(missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: {unexpected[:3]})"
        )
    for key, tensor in tensors.items():
        if tensor.shape != expected[key].shape:
            raise StudentFileError(
                f"{weights_path}: weights do not match the architecture in {spec_path} "
                f"(tensor {key!r} has shape {tuple(tensor.shape)}, the spec implies {tuple(expected[key].shape)})"
            )
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), spec
