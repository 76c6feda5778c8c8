"""Which pose continues which track: greedy assignment in two rounds, each gated by colour.

Round one scores each track x pose pair on (box IoU + OKS) / 2 against the track's predicted box
and keypoints; round two matches what is left on nearness (centre distance in track box heights),
which finds a person whose box jumped. A pair is matched only when the colours of the person's
clothes agree (appearance.py), so a passer-by does not take the ID of someone hidden. A partial
pose (legs or head lost) is compared with the bands of the track's colours that it covers, on the
track's whole-body box.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ...boxes import box_areas, iou_matrix, oks_matrix
from ..appearance import colour_signature, colour_similarity
from ..tracker_config import TrackerConfig
from .poses import Pose
from .track import Track

__all__ = ["Matching", "greedy_pairs", "match", "nearness"]

HEIGHT_RATIO = 2.0  # nearness: a track and a pose whose box heights differ more than this are not one person


@dataclass
class Matching:
    """The pairs matched, and the motion measured for the pairs whose pose is partial."""

    pairs: list[tuple[int, int]] = field(default_factory=list)  # (track, pose) indices, in the order matched
    shifts: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (track, pose) -> Track.shift_to

    def shift(
        self, tracks: Sequence[Track], poses: Sequence[Pose], pair: tuple[int, int], threshold: float
    ) -> np.ndarray:
        """The pair's Track.shift_to: as measured for the colour gate, or now."""
        shift = self.shifts.get(pair)
        return tracks[pair[0]].shift_to(poses[pair[1]], threshold) if shift is None else shift


def nearness(tracks: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """1 - centre distance / track box height for each track x pose xyxy box; -1 where the heights
    differ by over HEIGHT_RATIO."""

    def centre(b: np.ndarray) -> np.ndarray:
        return (b[:, :2] + b[:, 2:]) / 2

    height_t = np.clip(tracks[:, 3] - tracks[:, 1], 1, None)[:, None]
    height_p = np.clip(poses[:, 3] - poses[:, 1], 1, None)[None]
    distance = np.linalg.norm(centre(tracks)[:, None] - centre(poses)[None], axis=-1) / height_t
    ratio = np.maximum(height_t / height_p, height_p / height_t)
    return np.where(ratio <= HEIGHT_RATIO, 1.0 - distance, -1.0)


def greedy_pairs(
    rounds: Sequence[tuple[np.ndarray, np.ndarray]], colour: np.ndarray, least_colours: Sequence[float]
) -> list[tuple[int, int]]:
    """(track, pose) pairs, round by round: in each, the allowed pairs (its mask, and colour at least
    its least colour) by motion score + colour, best first, each track and pose used once overall."""
    pairs: list[tuple[int, int]] = []
    used_tracks: set[int] = set()
    used_poses: set[int] = set()
    for (motion, close), least_colour in zip(rounds, least_colours):
        allowed = close & (colour >= least_colour)
        score = np.where(allowed, motion + colour, -np.inf)
        for flat in np.argsort(-score, axis=None):
            ti, pi = (int(i) for i in np.unravel_index(flat, score.shape))
            if not allowed[ti, pi]:
                break
            if ti in used_tracks or pi in used_poses:
                continue
            used_tracks.add(ti)
            used_poses.add(pi)
            pairs.append((ti, pi))
    return pairs


def match(
    frame: np.ndarray,
    tracks: Sequence[Track],
    poses: Sequence[Pose],
    config: TrackerConfig,
    threshold: float,
    sigmas: np.ndarray | None,
) -> Matching:
    """Poses to tracks (see the module's docstring). threshold: the keypoint score that counts as
    seen (for OKS and motion); sigmas: the skeleton's OKS constants."""
    matching = Matching()
    if not tracks or not poses:
        return matching
    predicted = [t.predicted() for t in tracks]
    track_boxes = np.stack([p[0] for p in predicted])
    track_kpts = np.stack([p[1] for p in predicted])
    visible = np.stack([t.scores >= threshold for t in tracks])
    pose_boxes = np.stack([p.box for p in poses])
    similarity = 0.5 * iou_matrix(track_boxes, pose_boxes) + 0.5 * oks_matrix(
        track_kpts, np.stack([p.keypoints for p in poses]), box_areas(track_boxes), sigmas, visible
    )
    near = nearness(track_boxes, pose_boxes)
    by_motion = similarity >= config.match_threshold
    by_nearness = near >= 1.0 - config.near_distance
    colour = colour_similarity(np.stack([t.colour for t in tracks]), np.stack([p.colour for p in poses]))
    # partial poses, among the pairs some round could match: a far person is "part" of every taller track
    for ti, pi in zip(*np.nonzero(by_motion | by_nearness)):
        track, pose = tracks[ti], poses[pi]
        if track.is_partial(pose, config.partial_height):
            shift = matching.shifts[int(ti), int(pi)] = track.shift_to(pose, threshold)
            part = colour_signature(frame, track.body_box(shift), seen=pose.box)
            if part.any():
                colour[ti, pi] = colour_similarity(track.colour[None], part[None])[0, 0]
    matching.pairs = greedy_pairs(
        [(similarity, by_motion), (near, by_nearness)], colour, [config.match_colour, config.near_colour]
    )
    return matching
