"""Keypoint layouts as plain data: names, mirror pairs, limbs for drawing, OKS sigmas.

Everything downstream (flip augmentation, flip test, drawing, COCO evaluation, exported
metadata) reads these tables instead of hard-coding joint indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Skeleton", "COCO17", "MPII16", "SKELETONS", "get_skeleton"]


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout. `flip_pairs` list (left, right) index pairs swapped by a mirror."""

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    limbs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        for a, b in self.flip_pairs + self.limbs:
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"skeleton {self.name!r}: index pair ({a}, {b}) out of range 0..{k - 1}")
        if self.sigmas and len(self.sigmas) != k:
            raise ValueError(f"skeleton {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def flip_index(self) -> list[int]:
        """Channel permutation that turns a mirrored prediction back into the original order."""
        index = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "limbs": [list(p) for p in self.limbs],
            "sigmas": list(self.sigmas),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Skeleton:
        return cls(
            name=str(data["name"]),
            keypoints=tuple(str(k) for k in data["keypoints"]),
            flip_pairs=tuple((int(a), int(b)) for a, b in data.get("flip_pairs", [])),
            limbs=tuple((int(a), int(b)) for a, b in data.get("limbs", [])),
            sigmas=tuple(float(s) for s in data.get("sigmas", [])),
        )


COCO17 = Skeleton(
    name="coco17",
    keypoints=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    limbs=(
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),
    # Per-keypoint OKS constants published with the COCO keypoint challenge.
    sigmas=(
        0.026,
        0.025,
        0.025,
        0.035,
        0.035,
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
    ),
)

MPII16 = Skeleton(
    name="mpii16",
    keypoints=(
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    limbs=(
        (0, 1),
        (1, 2),
        (2, 6),
        (6, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 9),
        (7, 12),
        (12, 11),
        (11, 10),
        (7, 13),
        (13, 14),
        (14, 15),
    ),
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO17, MPII16)}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton {name!r}; valid: {', '.join(sorted(SKELETONS))}") from None
