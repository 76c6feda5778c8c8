"""Top-down sample transform: person box -> crop -> normalised input + heatmap targets.

Validation crops go through `preprocess.crop_people`, the function the runtime and export
calibration use, so a model is scored on exactly the pixels it will see when deployed.
Training adds scale, rotation, horizontal flip (folded into the crop affine, so the image is
warped once), colour jitter and half-body crops, all drawn from a caller-supplied generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..codec import HeatmapCodec
from ..geometry import apply_affine, box_to_center_size, crop_affine, invert_affine, warp_crop
from ..preprocess import crop_people, normalize
from ..skeleton import Skeleton
from ..spec import InputSpec

__all__ = ["AugmentConfig", "TopDownTransform", "upper_body_mask"]

_UPPER_WORDS = ("nose", "eye", "ear", "shoulder", "elbow", "wrist", "head", "neck", "thorax")


@dataclass
class AugmentConfig:
    """Training augmentation; defaults follow the paper's MPII recipe (COCO: scale 0.3, rotation 40).

    scale: window size x clip(1 + scale * N(0, 1), 1 - scale, 1 + scale).
    rotation: degrees, clip(rotation * N(0, 1), -2 rotation, 2 rotation), applied with rotation_prob.
    brightness / contrast / saturation: factors drawn from [1 - v, 1 + v].
    half_body_prob: crop around the upper or lower body when at least half_body_min_joints are labelled.
    """

    scale: float = 0.25
    rotation: float = 30.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    half_body_prob: float = 0.0
    half_body_min_joints: int = 8

    def __post_init__(self) -> None:
        for name in ("rotation_prob", "flip_prob", "half_body_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("scale", "brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.rotation < 0:
            raise ValueError(f"AugmentConfig.rotation must be >= 0, got {self.rotation}")


def upper_body_mask(skeleton: Skeleton) -> np.ndarray:
    """Boolean (K,) marking head, arm and torso-top joints, read from the keypoint names."""
    return np.array([any(w in name for w in _UPPER_WORDS) for name in skeleton.keypoints])


class TopDownTransform:
    """Turns (BGR image, box, joints) into the network's input, target and geometry."""

    def __init__(
        self,
        input_spec: InputSpec,
        skeleton: Skeleton,
        heatmap_stride: int = 4,
        sigma: float = 2.0,
        augment: AugmentConfig | None = None,
        absent_weight: float = 0.0,
    ) -> None:
        w, h = input_spec.width, input_spec.height
        if w % heatmap_stride or h % heatmap_stride:
            raise ValueError(f"input size {w}x{h} is not divisible by heatmap_stride {heatmap_stride}")
        # The data always yields CHW tensors (what torch wants); NHWC only matters to exported models.
        self.spec = replace(input_spec, layout="NCHW")
        self.skeleton = skeleton
        self.codec = HeatmapCodec((w, h), (w // heatmap_stride, h // heatmap_stride), sigma, absent_weight)
        self.augment = augment
        self._flip_index = np.asarray(skeleton.flip_index)
        self._upper = upper_body_mask(skeleton)
        self._mirror = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

    def __call__(
        self,
        image: np.ndarray,
        bbox_xyxy: np.ndarray,
        joints: np.ndarray,
        rng: np.random.Generator | None = None,
        ignore_boxes: np.ndarray | None = None,
    ) -> dict:
        """Returns image (3,H,W), target (K,h,w), target_weight (K,), ignore (h,w), crop_to_image
        (2,3) float32, flipped.

        `ignore` is 1 on the heatmap pixels that `ignore_boxes` (image-space xyxy boxes of people
        nobody labelled) cover after the crop's warp, else 0: a person the labels leave out is not
        background, so the loss must not teach the network to answer zero there.

        When `flipped`, the crop is mirrored and its channels are relabelled (the person's left
        arm is now drawn where a right arm would be): mapping target channel k back through
        crop_to_image lands on ground-truth joint skeleton.flip_index[k].
        """
        joints = np.asarray(joints, np.float32)
        if self.augment is None or rng is None:
            crops, back = crop_people(image, np.asarray(bbox_xyxy, np.float32)[None], self.spec)
            crop, crop_to_image = crops[0], back[0]
            to_crop = invert_affine(crop_to_image)
            points, vis = apply_affine(joints[:, :2], to_crop), joints[:, 2]
            flipped = False
        else:
            crop, crop_to_image, points, vis, flipped = self._augmented(image, bbox_xyxy, joints, rng)
        target, weight = self.codec.encode(points, vis)
        return {
            "image": normalize(crop[None], self.spec, bgr=True)[0],
            "target": target,
            "target_weight": weight,
            "ignore": self._ignore_mask(ignore_boxes, crop_to_image),
            "crop_to_image": crop_to_image.astype(np.float32),
            "flipped": np.bool_(flipped),
        }

    def _ignore_mask(self, boxes: np.ndarray | None, crop_to_image: np.ndarray) -> np.ndarray:
        """Heatmap-sized mask, 1 inside the warped boxes (rotated crops map a box to a quadrilateral)."""
        w, h = self.codec.heatmap_size
        mask = np.zeros((h, w), np.uint8)
        if boxes is None or len(boxes) == 0:
            return mask.astype(np.float32)
        to_crop = invert_affine(crop_to_image)
        for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
            corners = apply_affine(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]), to_crop)
            quad = self.codec.input_to_heatmap(corners.astype(np.float32))
            cv2.fillConvexPoly(
                mask, np.round(np.clip(quad, -1e4, 1e4) * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4
            )
        return mask.astype(np.float32)

    def _augmented(self, image, bbox_xyxy, joints, rng):
        aug, spec = self.augment, self.spec
        aspect = spec.width / spec.height
        center, size = box_to_center_size(bbox_xyxy, aspect, spec.crop_padding)
        if aug.half_body_prob > 0 and rng.random() < aug.half_body_prob:
            center, size = self._half_body(joints, aspect, rng, center, size)
        s = float(np.clip(1.0 + aug.scale * rng.standard_normal(), 1.0 - aug.scale, 1.0 + aug.scale))
        size = size * s
        rot = 0.0
        if aug.rotation > 0 and rng.random() < aug.rotation_prob:
            rot = float(np.clip(aug.rotation * rng.standard_normal(), -2 * aug.rotation, 2 * aug.rotation))
        matrix = crop_affine(center, size, (spec.width, spec.height), rot).astype(np.float64)
        flip = rng.random() < aug.flip_prob
        if flip:  # mirror the crop (x -> W - 1 - x) in the same warp
            matrix = (self._mirror @ np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
        crop = warp_crop(image, matrix, (spec.width, spec.height))
        points, vis = apply_affine(joints[:, :2], matrix), joints[:, 2]
        if flip:  # the mirrored person's left side is the original right side
            points, vis = points[self._flip_index], vis[self._flip_index]
        crop = self._jitter(crop, rng)
        return crop, invert_affine(matrix), points, vis, bool(flip)

    def _half_body(self, joints, aspect, rng, center, size):
        """Window around the labelled upper- or lower-body joints (HRNet-style), when there are enough."""
        labelled = joints[:, 2] > 0
        if labelled.sum() < self.augment.half_body_min_joints:
            return center, size
        upper, lower = labelled & self._upper, labelled & ~self._upper
        pick = upper if (rng.random() < 0.5 and upper.sum() > 2) or lower.sum() <= 2 else lower
        if pick.sum() < 2:
            return center, size
        pts = joints[pick, :2]
        box = np.concatenate([pts.min(0), pts.max(0)])
        return box_to_center_size(box, aspect, self.spec.crop_padding * 1.2)

    def _jitter(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        aug = self.augment
        if aug.brightness == 0 and aug.contrast == 0 and aug.saturation == 0:
            return crop
        b = 1.0 + rng.uniform(-aug.brightness, aug.brightness)
        c = 1.0 + rng.uniform(-aug.contrast, aug.contrast)
        s = 1.0 + rng.uniform(-aug.saturation, aug.saturation)
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        if not math.isclose(s, 1.0):
            crop = cv2.addWeighted(crop, s, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), 1.0 - s, 0.0)
        mean = float(gray.mean())
        # out = b * ((x - mean) * c + mean), saturated to [0, 255]
        return cv2.addWeighted(crop, b * c, crop, 0.0, b * (1.0 - c) * mean)
