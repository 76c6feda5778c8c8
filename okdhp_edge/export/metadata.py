"""The spec that travels with every artifact: a sidecar JSON plus a copy inside the file.

Sidecar: `<artifact filename>.json` (e.g. `x-int8.onnx.json`) holding the full ModelSpec dict
with its `export` section (`okdhp_edge.spec.ExportInfo`, the type the runtime reads) filled.
Embedded under SPEC_KEY: ONNX `metadata_props`, a TFLite model metadata entry, Core ML user metadata.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..spec import SPEC_METADATA_KEY, ExportInfo, ModelSpec, SpecError, sidecar_path, write_json_atomic
from .errors import ExportError

__all__ = [
    "SPEC_KEY",
    "artifact_spec",
    "embed_onnx",
    "embed_tflite",
    "read_artifact_spec",
    "read_embedded_spec",
    "sha256_file",
    "sidecar_path",
    "write_sidecar",
]

SPEC_KEY = SPEC_METADATA_KEY


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_spec(spec: ModelSpec, info: ExportInfo) -> ModelSpec:
    """A copy of `spec` describing one artifact: `info` stamped with the time and this version.

    The input layout in `spec.input` follows the artifact, so `preprocess.normalize(crops,
    spec.input)` produces exactly the tensor the artifact takes.
    """
    out = copy.deepcopy(spec)
    out.export = replace(
        info,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        okdhp_edge_version=__version__,
        details=copy.deepcopy(info.details),
    )
    out.input.layout = info.input_layout
    return out


def write_sidecar(artifact: str | os.PathLike, spec: ModelSpec) -> Path:
    path = sidecar_path(artifact)
    write_json_atomic(path, spec.to_dict())
    return path


def embed_onnx(path: str | os.PathLike, spec: ModelSpec) -> None:
    """Store the spec JSON in the model's metadata_props (replacing an older copy)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    kept = [p for p in model.metadata_props if p.key != SPEC_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=SPEC_KEY, value=spec.to_json())
    model.doc_string = (
        f"okdhp-edge pose student {spec.name}: input {spec.input.width}x{spec.input.height}, heatmaps (N,K,h,w)"
    )
    tmp = Path(str(path) + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def embed_tflite(path: str | os.PathLike, spec: ModelSpec) -> bool:
    """Add the spec as TFLite model metadata `okdhp_spec`; False when the file keeps tensors
    outside the flatbuffer (>2 GB models), where only the sidecar carries it."""
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    data = path.read_bytes()
    root = schema.Model.GetRootAs(data, 0)
    if any(root.Buffers(i).Offset() > 1 for i in range(root.BuffersLength())):
        return False
    model = schema.ModelT.InitFromObj(root)
    model.metadata = [m for m in (model.metadata or []) if m.name not in (SPEC_KEY, SPEC_KEY.encode())]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(spec.to_json().encode("utf-8"), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = SPEC_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(data) + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(builder.Output())
    os.replace(tmp, path)
    return True


def read_embedded_spec(path: str | os.PathLike) -> ModelSpec:
    """The spec stored inside an .onnx, .tflite or .mlpackage artifact, read by the runtime's reader
    for the format (the one the Predictor uses when the sidecar is missing)."""
    from ..runtime.backends import read_embedded_spec as runtime_read
    from ..runtime.errors import BackendUnavailableError, ModelFileError

    try:
        return runtime_read(path)
    except (ModelFileError, BackendUnavailableError) as err:
        raise ExportError(str(err)) from None


def read_artifact_spec(path: str | os.PathLike) -> ModelSpec:
    """The spec of an exported artifact: its sidecar JSON, else the copy embedded in the file."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        return ModelSpec.load(sidecar)
    if not path.exists():
        raise ExportError(f"{path}: artifact not found")
    try:
        return read_embedded_spec(path)
    except SpecError:
        raise
    except ExportError as err:
        raise ExportError(f"{err} (no sidecar {sidecar.name} either)") from None
