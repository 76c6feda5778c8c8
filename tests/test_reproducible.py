"""The README's commands install from a lock (Makefile, `make lock`), and the runtime stays quiet."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from okdhp_edge.runtime.errors import ModelFileError

LOCK = (
    REPO / "requirements" / f"lock-py{sys.version_info[0]}{sys.version_info[1]}-{sys.platform}-{platform.machine()}.txt"
)


def read_pins(path) -> dict[str, str]:
    """name -> pinned version of a pip requirements file of `name==version` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.split(";")[0].strip()
    return pins


def project_requirements() -> list[Requirement]:
    """The base dependencies and those of every extra that `all` names, as pyproject.toml lists them."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted, found = ["all"], []
    while wanted:
        for text in extras[wanted.pop()]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
                wanted.extend(requirement.extras)
            else:
                found.append(requirement)
    return [Requirement(text) for text in project["dependencies"]] + found


@pytest.fixture(scope="module")
def lock_pins() -> dict[str, str]:
    if not LOCK.exists():
        pytest.skip(f"no lock for this platform ({LOCK.name}); `make lock` resolves one")
    return read_pins(LOCK)


def test_lock_pins_every_requirement_within_its_range(lock_pins):
    """A dependency added to pyproject.toml without `make lock` would install unpinned."""
    for requirement in project_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in lock_pins, f"{requirement} is not in {LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(lock_pins[name], prereleases=True), (requirement, lock_pins[name])


def test_lock_keeps_the_constraints_pins(lock_pins):
    constraints = [
        Requirement(line)
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for constraint in constraints:
        pinned = lock_pins[canonicalize_name(constraint.name)]
        assert constraint.specifier.contains(pinned, prereleases=True), (
            f"{LOCK.name}: {constraint.name}=={pinned} breaks {constraint}"
        )


def test_lock_names_no_local_path(lock_pins):
    text = LOCK.read_text()
    assert "file://" not in text and " @ " not in text, "the lock must not pin this checkout's own path"
    assert "+cpu" not in lock_pins.get("torch", ""), "torch's local tag would refuse the CUDA build on a GPU machine"


def test_litert_prints_no_banner_in_normal_use():
    """LiteRT's C++ core announces its XNNPACK delegate on stderr unless the runtime silences it."""
    from okdhp_edge.runtime.detectors.fetch import fetch_model

    try:
        fetch_model("pose_detection", quiet=True)
    except ModelFileError as err:
        pytest.skip(f"MediaPipe's detector (a .tflite the runtime opens with LiteRT) is not available: {err}")
    code = (
        "import numpy as np; from okdhp_edge.runtime import Detector; "
        "d = Detector('mediapipe', num_threads=1); d(np.zeros((240, 320, 3), np.uint8)); print('ran')"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ran", run.stderr
    assert "XNNPACK" not in run.stderr and run.stderr.strip() == "", run.stderr
