"""The metadata contract between an exported artifact and the runtime.

Every artifact carries the student's full `ModelSpec` (in `<artifact>.json`, and a copy embedded in
the file where the format allows). Its `export` section, an `ExportInfo` (okdhp_edge.spec, the one
type export writes), says how to feed the model: tensor names, layouts, dtype and batch. The
runtime checks these claims against the tensors the backend actually reports, so a mismatched or
foreign file fails at load time with a clear message instead of producing garbage keypoints or
crashing inside native code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..spec import SPEC_METADATA_KEY, ExportInfo, ModelSpec, SpecError, sidecar_path
from .errors import ModelFileError

__all__ = [
    "SPEC_KEY",
    "ExportInfo",
    "TensorInfo",
    "check_io",
    "load_spec_text",
    "missing_spec_error",
    "read_sidecar",
    "sidecar_path",
]

SPEC_KEY = SPEC_METADATA_KEY


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output as the backend reports it; None marks a dynamic dimension, and a
    shape of None a tensor whose rank the model does not declare (Core ML outputs often)."""

    name: str
    shape: tuple[int | None, ...] | None
    dtype: str
    aliases: tuple[str, ...] = ()

    def answers_to(self, name: str) -> bool:
        return name == self.name or name in self.aliases


def load_spec_text(text: str, source: str) -> ModelSpec:
    """Parse a spec, turning a `SpecError` into a `ModelFileError` that names the source."""
    try:
        return ModelSpec.from_json(text, source)
    except SpecError as err:
        raise ModelFileError(
            f"{err} (the model metadata is unusable: re-export the model with okdhp_edge.export)"
        ) from None


def read_sidecar(model_path: Path) -> ModelSpec | None:
    """The spec from `<artifact>.json`, or None when there is no sidecar."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{path}: cannot read the metadata sidecar ({err}); re-export the model") from None
    return load_spec_text(text, str(path))


def missing_spec_error(model_path: Path, extra: str = "") -> ModelFileError:
    return ModelFileError(
        f"{model_path}: no okdhp-edge metadata found (expected {sidecar_path(model_path).name} next to it{extra}). "
        "This looks like a model that okdhp_edge.export did not write; export the student with "
        "`okdhp_edge.export.export(...)`, or copy the sidecar JSON that came with the artifact."
    )


def _expected_shapes(spec: ModelSpec, info: ExportInfo) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
    w, h = spec.input_size
    hw, hh = spec.heatmap_size
    k = spec.skeleton.num_keypoints
    b = info.batch
    inp = (b, 3, h, w) if info.input_layout == "NCHW" else (b, h, w, 3)
    out = (b, k, hh, hw) if info.output_layout == "NCHW" else (b, hh, hw, k)
    return inp, out


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def check_io(spec: ModelSpec, inp: TensorInfo, out: TensorInfo, model_path: Path) -> int | None:
    """Check the metadata against the model's real tensors; returns the batch size to feed (None: any).

    Raises ModelFileError naming both sides when names, ranks, sizes, dtypes or batch disagree.
    """
    info = spec.export_info
    where = f"{model_path}: metadata ({sidecar_path(model_path).name} / embedded spec) does not match the model"
    fix = "re-export the model, or use the sidecar JSON that was written with this file"
    if info.input_name is not None and not inp.answers_to(info.input_name):
        raise ModelFileError(f"{where}: input is named {inp.name!r}, metadata says {info.input_name!r}; {fix}")
    if info.output_name is not None and not out.answers_to(info.output_name):
        raise ModelFileError(f"{where}: output is named {out.name!r}, metadata says {info.output_name!r}; {fix}")
    exp_in, exp_out = _expected_shapes(spec, info)
    for role, tensor, expected, layout in (
        ("input", inp, exp_in, info.input_layout),
        ("output", out, exp_out, info.output_layout),
    ):
        if tensor.shape is None:
            continue  # undeclared: the Predictor checks the first answer
        if len(tensor.shape) != 4:
            raise ModelFileError(
                f"{where}: {role} {tensor.name!r} has shape {_shape_text(tensor.shape)}, expected 4-D {layout} "
                f"{_shape_text(expected)}; {fix}"
            )
        for axis, (got, want) in enumerate(zip(tensor.shape[1:], expected[1:]), start=1):
            if got is not None and want is not None and got != want:
                raise ModelFileError(
                    f"{where}: {role} {tensor.name!r} has shape {_shape_text(tensor.shape)} but the spec "
                    f"({spec.name}, {layout}) implies {_shape_text(expected)} (axis {axis}); {fix}"
                )
    if info.input_dtype != inp.dtype:
        raise ModelFileError(f"{where}: input dtype is {inp.dtype}, metadata says {info.input_dtype}; {fix}")
    model_batch = inp.shape[0] if inp.shape else None
    if info.batch is None and model_batch is not None:
        raise ModelFileError(
            f"{where}: metadata says dynamic batch but the model's input has fixed batch {model_batch}; {fix}"
        )
    if info.batch is not None and model_batch is not None and model_batch != info.batch:
        raise ModelFileError(
            f"{where}: metadata says batch {info.batch} but the model's input has batch {model_batch}; {fix}"
        )
    return info.batch
