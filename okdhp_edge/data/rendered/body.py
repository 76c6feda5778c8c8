"""Shape, pose and linear blend skinning of the body model, in numpy.

Every bone's rest frame is the world frame moved to the bone's head, so a pose is one rotation per
bone about its head, expressed in the rest pose's axes (+x the person's left, +y up, +z forward).
Poses are drawn per family (standing, walking, sitting, ...) inside anatomical joint ranges.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .assets import BONE, BONES, PARTS, BodyModel

__all__ = ["POSE_FAMILIES", "PosedBody", "Rig", "sample_pose", "sample_shape"]

POSE_FAMILIES = ("stand", "walk", "sit", "crouch", "arms_up", "arms_spread", "reach", "bend", "gesture", "random")
_FAMILY_WEIGHTS = np.array([0.16, 0.14, 0.1, 0.07, 0.08, 0.07, 0.1, 0.06, 0.12, 0.1])


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    a = np.asarray(axis, np.float64)
    a = a / (np.linalg.norm(a) + 1e-12)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _swing(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The smallest rotation turning direction src into direction dst."""
    src, dst = src / np.linalg.norm(src), dst / np.linalg.norm(dst)
    axis = np.cross(src, dst)
    s, c = np.linalg.norm(axis), float(np.dot(src, dst))
    if s < 1e-9:
        return np.eye(3) if c > 0 else _axis_angle(np.array([0.0, 0.0, 1.0]), math.pi)
    return _axis_angle(axis, math.atan2(s, c))


def rot_xyz(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    """Rotation by angles in degrees about x (pitch), then y (yaw), then z (roll)."""
    r = np.eye(3)
    for axis, ang in ((0, x), (1, y), (2, z)):
        if ang:
            r = _axis_angle(np.eye(3)[axis], math.radians(ang)) @ r
    return r


@dataclass
class PosedBody:
    """One posed, shaped body in its own frame (metres)."""

    vertices: np.ndarray  # (V, 3)
    keypoints: np.ndarray  # (23, 3) the regressor's points
    joints: np.ndarray  # (B, 3) posed bone heads
    head_top: np.ndarray  # (3,)


class Rig:
    """The body model with what posing needs precomputed (one per process)."""

    def __init__(self, model: BodyModel):
        self.m = model
        w = model.kp_weights.astype(np.float64)  # (K, S)
        nb = len(BONES)
        # The regressor is linear in the skinned vertices, so fold skin weights into it: per keypoint and
        # bone, the weighted sum of homogeneous rest vertices (plus one such sum per shape target).
        onehot = np.zeros((len(model.kp_vertices), nb))
        np.add.at(onehot, (np.arange(len(onehot))[:, None], model.kp_skin_bones), model.kp_skin_weights)
        kw = w[:, :, None] * onehot[None]  # (K, S, B)
        self.kp_mass = kw.sum(1)  # (K, B)
        self.kp_rest = np.einsum("ksb,sd->kbd", kw, model.kp_vertices.astype(np.float64), optimize=True)
        self.kp_target = np.einsum("ksb,tsd->tkbd", kw, model.kp_targets.astype(np.float64), optimize=True)
        self.parents = model.parents.astype(int)
        head = np.nonzero(model.part == PARTS.index("head"))[0]
        self.head_top_index = int(head[np.argmax(model.vertices[head, 1])])
        self.targets = {n: i for i, n in enumerate(model.target_names)}

    def shaped(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rest vertices, joints and keypoint sums for target weights `beta` (T,)."""
        m = self.m
        verts = m.vertices + np.tensordot(beta, m.vertex_targets, 1)
        joints = m.joints + np.tensordot(beta, m.joint_targets, 1)
        kp = self.kp_rest + np.tensordot(beta, self.kp_target, 1)
        return verts, joints, kp

    def pose(self, beta: np.ndarray, rotations: np.ndarray) -> PosedBody:
        """Skin the shaped body with per-bone local rotations (B, 3, 3)."""
        verts, joints, kp = self.shaped(beta)
        g = np.zeros((len(BONES), 3, 4))
        for j, p in enumerate(self.parents):
            r, h = rotations[j], joints[j]
            local = np.concatenate([r, (h - r @ h)[:, None]], 1)
            if p < 0:
                g[j] = local
            else:
                g[j, :, :3] = g[p, :, :3] @ local[:, :3]
                g[j, :, 3] = g[p, :, :3] @ local[:, 3] + g[p, :, 3]
        m = self.m
        blend = np.einsum("vk,vkij->vij", m.skin_weights, g[m.skin_bones])
        posed = np.einsum("vij,vj->vi", blend[:, :, :3], verts) + blend[:, :, 3]
        keypoints = np.einsum("bij,kbj->ki", g[:, :, :3], kp) + self.kp_mass @ g[:, :, 3]
        posed_joints = np.einsum("bij,bj->bi", g[:, :, :3], joints) + g[:, :, 3]
        return PosedBody(posed, keypoints, posed_joints, posed[self.head_top_index])


@functools.lru_cache(maxsize=1)
def _rest_dirs(joints_key: bytes) -> dict:
    joints = np.frombuffer(joints_key).reshape(-1, 3)
    out = {}
    for s in ("L", "R"):
        out[f"arm.{s}"] = joints[BONE[f"lowerarm01.{s}"]] - joints[BONE[f"upperarm01.{s}"]]
        out[f"leg.{s}"] = joints[BONE[f"lowerleg01.{s}"]] - joints[BONE[f"upperleg01.{s}"]]
    return out


def sample_shape(rng: np.random.Generator, rig: Rig) -> np.ndarray:
    """Target weights for an adult of random sex, build, height and age."""
    t, beta = rig.targets, np.zeros(len(rig.targets))
    male = float(rng.random() < 0.5)
    g = ("male", "female")[int(1 - male)]
    mix = rng.uniform(0.6, 1.0)
    beta[t[g]] = mix
    beta[t[("female", "male")[int(male)]]] = 1 - mix
    weight = rng.normal(0, 0.45)
    beta[t[f"{g}_heavy" if weight > 0 else f"{g}_thin"]] = min(abs(weight), 1.0)
    beta[t[f"{g}_muscle"]] = rng.uniform(0, 0.6)
    height = rng.uniform(-1, 1)
    beta[t[f"{g}_tall" if height > 0 else f"{g}_short"]] = abs(height)
    if rng.random() < 0.15:
        beta[t[f"{g}_old"]] = rng.uniform(0.3, 1.0)
        beta[t[g]] -= beta[t[f"{g}_old"]] * mix
    return beta


def _arm_dir(side: float, elevation: float, azimuth: float) -> np.ndarray:
    """Upper-arm direction: elevation from hanging (0) to overhead (180), azimuth 0 = sideways, 90 = forward."""
    e, a = math.radians(elevation), math.radians(azimuth)
    return np.array([side * math.sin(e) * math.cos(a), -math.cos(e), math.sin(e) * math.sin(a)])


def _leg_dir(side: float, flexion: float, abduction: float) -> np.ndarray:
    """Thigh direction: flexion forward from hanging (degrees; negative = backward), abduction outwards."""
    f, b = math.radians(flexion), math.radians(abduction)
    return np.array([side * math.sin(b), -math.cos(f) * math.cos(b), math.sin(f) * math.cos(b)])


def _family_angles(rng: np.random.Generator, family: str) -> dict:
    """Per-family ranges (degrees) of arm elevation/azimuth, elbow, hip flexion, knee and spine bend."""
    u = rng.uniform
    arm = [(u(5, 25), u(-20, 40), u(0, 30)) for _ in range(2)]
    leg = [(u(-5, 10), u(0, 8), u(0, 10)) for _ in range(2)]
    spine = u(-5, 10)
    if family == "walk":
        swing = u(10, 35)
        leg = [(swing, u(0, 5), u(0, 20)), (-swing * u(0.5, 1.0), u(0, 5), u(10, 50))]
        arm = [(u(5, 30), -80, u(0, 30)), (u(5, 30), 80, u(10, 50))]
        if rng.random() < 0.5:
            leg, arm = leg[::-1], arm[::-1]
    elif family == "sit":
        leg = [(u(65, 100), u(0, 20), u(60, 110)) for _ in range(2)]
        arm = [(u(15, 50), u(50, 90), u(30, 100)) for _ in range(2)]
    elif family == "crouch":
        leg = [(u(90, 130), u(5, 30), u(100, 145)) for _ in range(2)]
        arm = [(u(20, 80), u(50, 100), u(20, 110)) for _ in range(2)]
        spine = u(15, 45)
    elif family == "arms_up":
        arm = [(u(120, 178), u(-10, 70), u(0, 60)) for _ in range(2)]
        if rng.random() < 0.4:
            arm[int(rng.integers(2))] = (u(5, 40), u(-20, 60), u(0, 60))
    elif family == "arms_spread":
        arm = [(u(65, 110), u(-25, 25), u(0, 35)) for _ in range(2)]
    elif family == "reach":
        arm = [(u(50, 130), u(40, 110), u(0, 25)) for _ in range(2)]
        if rng.random() < 0.5:
            arm[int(rng.integers(2))] = (u(5, 30), u(-20, 40), u(0, 40))
        spine = u(-5, 25)
    elif family == "bend":
        spine = u(30, 75)
        leg = [(u(0, 30), u(0, 10), u(0, 40)) for _ in range(2)]
        arm = [(u(10, 80), u(40, 100), u(0, 50)) for _ in range(2)]
    elif family == "gesture":  # what a webcam sees: hands in front of the chest, near the face, waving
        arm = [(u(10, 150), u(20, 110), u(30, 150)) for _ in range(2)]
    elif family == "random":
        arm = [(u(0, 175), u(-40, 130), u(0, 145)) for _ in range(2)]
        leg = [(u(-25, 110), u(0, 40), u(0, 130)) for _ in range(2)]
        spine = u(-15, 50)
    return {"arm": arm, "leg": leg, "spine": spine}


def sample_pose(rng: np.random.Generator, rig: Rig, family: str | None = None) -> tuple[np.ndarray, str]:
    """Local bone rotations (B, 3, 3) for a pose of `family` (drawn when None), and the family."""
    if family is None:
        family = POSE_FAMILIES[int(rng.choice(len(POSE_FAMILIES), p=_FAMILY_WEIGHTS / _FAMILY_WEIGHTS.sum()))]
    a = _family_angles(rng, family)
    rest = _rest_dirs(rig.m.joints.astype(np.float64).tobytes())
    rot = np.tile(np.eye(3), (len(BONES), 1, 1))
    u = rng.uniform
    bend, side_bend, twist = a["spine"], u(-10, 10), u(-25, 25)
    for name in ("spine04", "spine03", "spine02", "spine01"):
        rot[BONE[name]] = rot_xyz(bend / 4, twist / 4, side_bend / 4)
    nod, turn, tilt = u(-25, 30), u(-55, 55), u(-15, 15)
    rot[BONE["neck01"]] = rot_xyz(nod / 2, turn / 2, tilt / 2)
    rot[BONE["head"]] = rot_xyz(nod / 2, turn / 2, tilt / 2)
    for (elev, azim, elbow), s, sign in zip(a["arm"], ("L", "R"), (1.0, -1.0)):
        u0 = rest[f"arm.{s}"]
        d = _arm_dir(sign, elev, azim)
        rot[BONE[f"clavicle.{s}"]] = rot_xyz(0, 0, sign * max(elev - 90, 0) * 0.2)
        rot[BONE[f"upperarm01.{s}"]] = _axis_angle(d, math.radians(u(-40, 40))) @ _swing(u0, d)
        rot[BONE[f"lowerarm01.{s}"]] = _axis_angle(np.cross(u0, [0.0, 0.0, 1.0]), math.radians(elbow))
        rot[BONE[f"wrist.{s}"]] = rot_xyz(u(-30, 30), u(-20, 20), u(-30, 30))
    for (flex, abd, knee), s, sign in zip(a["leg"], ("L", "R"), (1.0, -1.0)):
        v0 = rest[f"leg.{s}"]
        d = _leg_dir(sign, flex, abd)
        rot[BONE[f"upperleg01.{s}"]] = _axis_angle(d, math.radians(u(-15, 15))) @ _swing(v0, d)
        rot[BONE[f"lowerleg01.{s}"]] = _axis_angle(np.cross(v0, [0.0, 0.0, -1.0]), math.radians(knee))
        rot[BONE[f"foot.{s}"]] = rot_xyz(u(-15, 25), 0, 0)
    return rot, family
