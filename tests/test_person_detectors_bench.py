"""benchmarks/person_detectors.py's scoring on boxes worked out by hand: which detection finds which
person, duplicates, small boxes inside someone's box, false people per empty frame, AP. A wrong
piece here would misreport every detector, so each rule is pinned on a frame small enough to check
by eye."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from person_detectors import (  # noqa: E402
    DevFrame,
    assign,
    average_precision,
    duplicates,
    score_sweep,
    small_inside,
    summarize,
)

PERSON_A = [0, 0, 40, 100]  # a standing person, 40 x 100 px
PERSON_B = [100, 0, 140, 100]


def boxes(*rows) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 5)


def truth(*rows) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 4)


def test_assign_greedy_in_score_order_at_iou_half():
    people = truth(PERSON_A, PERSON_B)
    found = boxes(
        [0, 0, 40, 100, 0.5],  # exact on A, lower score
        [0, 10, 40, 100, 0.9],  # IoU 0.9 with A, higher score: takes A first
        [100, 0, 140, 48, 0.8],  # IoU 0.48 with B: too loose
        [100, 0, 140, 50, 0.7],
    )  # IoU 0.5 with B: finds B
    assert assign(found, people).tolist() == [-1, 0, -1, 1]
    assert assign(boxes(), people).tolist() == []
    assert assign(found, truth()).tolist() == [-1, -1, -1, -1]


def test_duplicates_second_box_on_a_found_person_or_a_better_box():
    people = truth(PERSON_A, PERSON_B)
    found = boxes(
        [0, 0, 40, 100, 0.9],  # finds A
        [0, 5, 40, 100, 0.8],  # a second box on A: duplicate
        [100, 0, 140, 100, 0.7],  # finds B
        [300, 0, 340, 100, 0.6],
    )  # a false find far from anyone: not a duplicate
    person = assign(found, people)
    assert duplicates(found, people, person).tolist() == [False, True, False, False]
    # A frame without people: the same false person twice (near-identical boxes) counts once as a duplicate
    ghosts = boxes([0, 0, 100, 100, 0.6], [2, 0, 100, 98, 0.9], [300, 0, 340, 40, 0.5])
    assert duplicates(ghosts, truth(), assign(ghosts, truth())).tolist() == [True, False, False]


def test_small_inside_counts_eye_sized_boxes_not_far_people():
    people = truth(PERSON_A)
    found = boxes(
        [0, 0, 40, 100, 0.9],  # finds A (area 4000)
        [10, 10, 20, 20, 0.8],  # 100 px^2 inside A's box: an eye
        [30, 90, 50, 100, 0.7],  # 200 px^2, half outside: not inside
        [0, 0, 30, 60, 0.6],
    )  # 1800 px^2 inside A: bigger than a face
    person = assign(found, people)
    assert small_inside(found, people, person).tolist() == [False, True, False, False]
    # inside a person the detector missed, or another false box, counts as well
    assert small_inside(boxes([10, 10, 20, 20, 0.8]), people, np.array([-1])).tolist() == [True]
    ghosts = boxes([0, 0, 200, 200, 0.9], [50, 50, 60, 60, 0.8])
    assert small_inside(ghosts, truth(), assign(ghosts, truth())).tolist() == [False, True]
    # a small box that is itself a person is never counted
    kid = truth(PERSON_A, [10, 10, 20, 20])
    pair = boxes([0, 0, 40, 100, 0.9], [10, 10, 20, 20, 0.8])
    assert small_inside(pair, kid, assign(pair, kid)).tolist() == [False, False]


def test_summarize_keeps_people_frames_and_empty_frames_apart():
    frames = [
        (boxes([0, 0, 40, 100, 0.9], [300, 0, 340, 100, 0.4]), truth(PERSON_A, PERSON_B)),  # A found, one false
        (boxes([0, 0, 50, 50, 0.8], [1, 0, 50, 50, 0.7]), truth()),  # empty frame, two false (one a duplicate)
        (boxes(), truth()),  # empty frame, nothing found
    ]
    row = summarize(frames)
    assert row["people"] == 2 and row["frames"] == 3 and row["detections"] == 4
    assert row["recall_iou50"] == 0.5 and row["precision_iou50"] == 0.5
    assert row["ap50"] == 0.5  # precision 1 up to recall 0.5, never more
    assert row["empty_frames"] == 2 and row["false_per_empty_frame"] == 1.0
    assert row["duplicates"] == 1 and row["small_inside"] == 0
    empty_only = summarize(frames[1:])
    assert empty_only["recall_iou50"] is None and empty_only["ap50"] is None
    assert summarize(frames[:1])["false_per_empty_frame"] is None


def test_average_precision_by_hand():
    # hits in score order 1, 0, 1 of 2 people: precision 1 at recall 0.5, 2/3 at recall 1
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1.0, 0.0, 1.0]), 2) == pytest.approx(
        0.5 + 0.5 * 2 / 3
    )
    assert average_precision(np.zeros(0), np.zeros(0), 3) == 0.0


def test_score_sweep_drops_boxes_below_each_threshold_on_the_use_asked():
    dev = [
        DevFrame("a", "people", "held-out", Path("a.jpg"), truth(PERSON_A)),
        DevFrame("b", "nobody", "held-out", Path("b.jpg"), truth()),
        DevFrame("c", "street", "trainable", Path("c.jpg"), truth(PERSON_B)),
    ]
    found = {
        "a": boxes([0, 0, 40, 100, 0.42]),  # finds A at 0.42
        "b": boxes([0, 0, 50, 50, 0.33], [60, 0, 90, 50, 0.56]),  # two false people
        "c": boxes(),  # a trainable miss: not in the held-out sweep
    }
    sweep = score_sweep(found, dev, "held-out")
    assert list(sweep)[:3] == ["0.30", "0.35", "0.40"]
    assert sweep["0.30"]["recall_iou50"] == 1.0 and sweep["0.30"]["false_per_empty_frame"] == 2.0
    assert sweep["0.35"]["false_per_empty_frame"] == 1.0 and sweep["0.40"]["recall_iou50"] == 1.0
    assert sweep["0.45"]["recall_iou50"] == 0.0 and sweep["0.45"]["false_per_empty_frame"] == 1.0
    assert sweep["0.60"]["false_per_empty_frame"] == 0.0 and sweep["0.60"]["people"] == 1
