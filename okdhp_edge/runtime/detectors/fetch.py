"""Fetch the default person detector once: MediaPipe's pose_detection.tflite from the mediapipe
wheel on the package index (`pip download --no-deps`), unpacked into a cache. mediapipe itself is
never installed or imported; only the model file and the wheel's licence are kept.

    python -m okdhp_edge.runtime.detectors.fetch          # prints the cached model's path
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["CACHE", "default_model_path", "fetch_default_model"]

CACHE = Path(os.environ.get("OKDHP_EDGE_CACHE", Path.home() / ".cache" / "okdhp_edge")) / "detectors"
WHEEL = "mediapipe==0.10.14"  # the last wheels that carry the model files; Apache-2.0
# Any platform's wheel holds the same model: pin one so the fetch works from every machine.
PIP_TARGET = ["--only-binary=:all:", "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11", "--implementation", "cp"]
MEMBER = "mediapipe/modules/pose_detection/pose_detection.tflite"
LICENSE = "mediapipe-0.10.14.dist-info/LICENSE"
SHA256 = "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"
NAME = "mediapipe-pose_detection.tflite"


def default_model_path() -> Path:
    return CACHE / NAME


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_default_model(quiet: bool = False) -> Path:
    """The cached model file, downloading the wheel with pip first when it is not cached yet."""
    target = default_model_path()
    if target.is_file() and _sha256(target) == SHA256:
        return target
    from ..errors import ModelFileError

    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, *PIP_TARGET, "-d", tmp, "--quiet"]
        if not quiet:
            print(f"okdhp_edge: fetching the default person detector from the package index ({WHEEL}, about 36 MB, once) into {CACHE}", file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mediapipe-*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ModelFileError(
                f"{target}: the default detector is not cached and `pip download {WHEEL}` failed ({last}); "
                f"on an offline machine, copy {NAME} into {CACHE}, or pass a YOLO export: Detector('yolo11n.onnx')"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(MEMBER)
            (CACHE / "mediapipe-LICENSE").write_bytes(wheel.read(LICENSE))
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise ModelFileError(f"{target}: the model in {wheels[0].name} is not the expected file (sha256 differs); report this")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


if __name__ == "__main__":
    print(fetch_default_model())
