"""A posable 3-D stick figure with body proportions, projected orthographically to 2-D.

Body frame: +x is the person's LEFT, +y is down, +z is forward (where the face points). The
camera looks along -z, so a person at yaw 0 faces the camera and their left side lands on the
image's right, which is COCO's convention; at yaw 180 they face away and left is on the left.
Only geometry that survives a mirror (face direction, depth order) tells left from right, so
horizontal-flip augmentation stays consistent with the rendered data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...skeleton import COCO17

__all__ = ["Figure", "Proportions", "sample_proportions", "sample_pose", "build_figure", "POSE_FAMILIES"]

POSE_FAMILIES = ("stand", "walk", "reach", "crouch", "sit", "random")

# Named 3-D points every figure has, COCO-17's first (in its order); COCO-17 and MPII-16 are both read
# from these.
POINTS = (
    *COCO17.keypoints,
    *("pelvis", "thorax", "upper_neck", "head_top", "head_center", "left_hand", "right_hand", "left_toe", "right_toe"),
)
P = {name: i for i, name in enumerate(POINTS)}


@dataclass(frozen=True)
class Proportions:
    """Segment lengths and thicknesses as fractions of the standing height."""

    head_r: float
    neck: float
    torso: float
    shoulder_w: float
    hip_w: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    foot: float
    arm_t: float
    leg_t: float
    torso_depth: float


def sample_proportions(rng: np.random.Generator) -> Proportions:
    """Adult-like proportions with enough spread that no single limb length is a giveaway."""
    u = rng.uniform
    return Proportions(
        head_r=u(0.055, 0.072),
        neck=u(0.025, 0.05),
        torso=u(0.27, 0.34),
        shoulder_w=u(0.19, 0.27),
        hip_w=u(0.12, 0.19),
        upper_arm=u(0.16, 0.2),
        forearm=u(0.14, 0.17),
        thigh=u(0.22, 0.27),
        shin=u(0.21, 0.26),
        foot=u(0.07, 0.1),
        arm_t=u(0.04, 0.068),
        leg_t=u(0.055, 0.09),
        torso_depth=u(0.09, 0.14),
    )


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _limb_dir(side: float, abduction: float, flexion: float) -> np.ndarray:
    """Unit vector hanging down (+y), swung outwards by `abduction`, forwards by `flexion` (radians)."""
    cf = math.cos(flexion)
    return np.array([side * math.sin(abduction) * cf, math.cos(abduction) * cf, math.sin(flexion)])


def _bend(d: np.ndarray, towards: np.ndarray, angle: float, side: float) -> np.ndarray:
    """Rotate unit vector d by `angle` within the plane spanned by d and `towards`."""
    b = towards - float(towards @ d) * d
    n = float(np.linalg.norm(b))
    if n < 1e-4:
        b = np.array([side, 0.0, 0.0]) - d[0] * side * d
        n = float(np.linalg.norm(b)) or 1.0
    b = b / n
    return math.cos(angle) * d + math.sin(angle) * b


def sample_pose(rng: np.random.Generator, family: str | None = None) -> dict[str, float]:
    """Joint angles in degrees for one of POSE_FAMILIES (random family when None)."""
    fam = family or str(rng.choice(POSE_FAMILIES, p=[0.18, 0.2, 0.2, 0.12, 0.1, 0.2]))
    u = rng.uniform
    pose = {
        "lean": u(-8, 15),
        "side_bend": u(-8, 8),
        "twist": u(-20, 20),
        "head_yaw": u(-50, 50),
        "head_pitch": u(-20, 25),
        "head_roll": u(-15, 15),
    }
    for s in ("l", "r"):
        pose[f"{s}_arm_abd"] = u(5, 35)
        pose[f"{s}_arm_flex"] = u(-20, 30)
        pose[f"{s}_elbow"] = u(0, 40)
        pose[f"{s}_elbow_dir_x"] = u(-0.4, 0.8)
        pose[f"{s}_elbow_dir_y"] = u(-0.8, 0.4)
        pose[f"{s}_leg_abd"] = u(0, 12)
        pose[f"{s}_leg_flex"] = u(-8, 12)
        pose[f"{s}_knee"] = u(0, 15)
    if fam == "walk":
        swing = u(15, 40) * rng.choice([-1, 1])
        pose.update(l_leg_flex=swing, r_leg_flex=-swing, l_arm_flex=-swing * 0.8, r_arm_flex=swing * 0.8)
        pose.update(l_knee=u(5, 60), r_knee=u(5, 60), l_elbow=u(10, 70), r_elbow=u(10, 70))
    elif fam == "reach":
        for s in ("l", "r"):
            if rng.random() < 0.7:
                pose[f"{s}_arm_abd"] = u(40, 175)
                pose[f"{s}_arm_flex"] = u(-20, 80)
                pose[f"{s}_elbow"] = u(0, 140)
    elif fam == "crouch":
        flex = u(40, 100)
        pose.update(l_leg_flex=flex + u(-15, 15), r_leg_flex=flex + u(-15, 15), lean=u(15, 45))
        pose.update(l_knee=u(70, 140), r_knee=u(70, 140), l_leg_abd=u(5, 35), r_leg_abd=u(5, 35))
        pose.update(l_arm_flex=u(10, 70), r_arm_flex=u(10, 70), l_elbow=u(20, 120), r_elbow=u(20, 120))
    elif fam == "sit":
        pose.update(l_leg_flex=u(70, 100), r_leg_flex=u(70, 100), l_knee=u(60, 100), r_knee=u(60, 100), lean=u(-10, 15))
        pose.update(l_elbow=u(30, 110), r_elbow=u(30, 110), l_arm_flex=u(0, 50), r_arm_flex=u(0, 50))
    elif fam == "random":
        for s in ("l", "r"):
            pose[f"{s}_arm_abd"] = u(-10, 175)
            pose[f"{s}_arm_flex"] = u(-40, 90)
            pose[f"{s}_elbow"] = u(0, 150)
            pose[f"{s}_leg_abd"] = u(-5, 50)
            pose[f"{s}_leg_flex"] = u(-30, 100)
            pose[f"{s}_knee"] = u(0, 140)
        pose.update(lean=u(-15, 40), side_bend=u(-20, 20), twist=u(-35, 35))
    pose["family"] = fam  # type: ignore[assignment]
    return pose


@dataclass
class Figure:
    """3-D points (len(POINTS), 3) of one posed person in body units (standing height 1)."""

    points: np.ndarray
    props: Proportions
    forward: np.ndarray  # head's facing direction (unit)
    chest: np.ndarray  # torso's facing direction (unit)

    def transformed(self, rotation: np.ndarray) -> Figure:
        return Figure(self.points @ rotation.T, self.props, rotation @ self.forward, rotation @ self.chest)


def build_figure(props: Proportions, pose: dict[str, float]) -> Figure:
    """Forward kinematics: pelvis at the origin, body frame as in the module docstring."""
    rad = math.radians
    pts = np.zeros((len(POINTS), 3))
    # positive lean tips forward (+z)
    r_torso = _rot_y(rad(pose["twist"])) @ _rot_z(rad(pose["side_bend"])) @ _rot_x(rad(-pose["lean"]))
    neck_base = r_torso @ np.array([0.0, -props.torso, 0.0])
    pts[P["pelvis"]] = 0.0
    for side, name in ((1.0, "left"), (-1.0, "right")):
        pts[P[f"{name}_shoulder"]] = neck_base + r_torso @ np.array([side * props.shoulder_w / 2, 0.035, 0.0])
        pts[P[f"{name}_hip"]] = np.array([side * props.hip_w / 2, 0.0, 0.0])
    pts[P["thorax"]] = (pts[P["left_shoulder"]] + pts[P["right_shoulder"]]) / 2
    r_head = r_torso @ _rot_y(rad(pose["head_yaw"])) @ _rot_x(rad(-pose["head_pitch"])) @ _rot_z(rad(pose["head_roll"]))
    neck_top = neck_base + r_torso @ np.array([0.0, -props.neck, 0.0])
    pts[P["upper_neck"]] = neck_top
    hr = props.head_r
    center = neck_top + r_head @ np.array([0.0, -hr * 0.95, 0.0])
    pts[P["head_center"]] = center
    face = {
        "head_top": (0.0, -1.0, 0.0),
        "nose": (0.0, 0.2, 1.08),
        "left_eye": (0.38, -0.12, 0.86),
        "right_eye": (-0.38, -0.12, 0.86),
        "left_ear": (0.98, 0.05, -0.08),
        "right_ear": (-0.98, 0.05, -0.08),
    }
    for name, offset in face.items():
        pts[P[name]] = center + r_head @ (np.array(offset) * hr)
    for side, s, name in ((1.0, "l", "left"), (-1.0, "r", "right")):
        upper = r_torso @ _limb_dir(side, rad(pose[f"{s}_arm_abd"]), rad(pose[f"{s}_arm_flex"]))
        towards = r_torso @ np.array([side * pose[f"{s}_elbow_dir_x"], pose[f"{s}_elbow_dir_y"], 1.0])
        fore = _bend(upper, towards, rad(pose[f"{s}_elbow"]), side)
        elbow = pts[P[f"{name}_shoulder"]] + upper * props.upper_arm
        wrist = elbow + fore * props.forearm
        pts[P[f"{name}_elbow"]], pts[P[f"{name}_wrist"]] = elbow, wrist
        pts[P[f"{name}_hand"]] = wrist + fore * props.arm_t * 0.9
        thigh = _limb_dir(side, rad(pose[f"{s}_leg_abd"]), rad(pose[f"{s}_leg_flex"]))
        shin = _bend(thigh, np.array([0.0, 0.0, -1.0]), rad(pose[f"{s}_knee"]), side)
        knee = pts[P[f"{name}_hip"]] + thigh * props.thigh
        ankle = knee + shin * props.shin
        pts[P[f"{name}_knee"]], pts[P[f"{name}_ankle"]] = knee, ankle
        toe_dir = _bend(shin, np.array([0.0, 0.3, 1.0]), math.pi / 2, side)
        pts[P[f"{name}_toe"]] = ankle + toe_dir * props.foot
    forward = r_head @ np.array([0.0, 0.0, 1.0])
    chest = r_torso @ np.array([0.0, 0.0, 1.0])
    return Figure(pts, props, forward, chest)


def view_rotation(yaw_deg: float, roll_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """Body -> camera rotation: turn about the vertical, tilt, then roll in the image plane."""
    return _rot_z(math.radians(roll_deg)) @ _rot_x(math.radians(pitch_deg)) @ _rot_y(math.radians(yaw_deg))
