"""Teacher labelling (okdhp_edge.data.label) with a known teacher: an exported student run here
through the real ONNX Runtime, whose answers the tests recompute independently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_artifacts import export_onnx, make_student, person_frame, write_video

from okdhp_edge.boxes import keypoint_similarity
from okdhp_edge.codec import ABSENT
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.coco import load_coco
from okdhp_edge.data.label import LabelConfig, label, main, teacher_regions
from okdhp_edge.data.label_filter import DROP_REASONS, FilterConfig, flip_back, judge
from okdhp_edge.runtime import Predictor
from okdhp_edge.skeleton import COCO17

SIGMAS = np.asarray(COCO17.sigmas)


def test_rules_drop_low_scores_flip_and_temporal_disagreement():
    box = np.array([[0, 0, 100, 200]], np.float64)
    points = np.tile(np.linspace(10, 90, 17)[:, None], (1, 2))[None]
    scores = np.full((1, 17), 0.9)
    scores[0, 0] = 0.1  # low score
    flipped = points.copy()
    flipped[0, 5] += 40  # the mirror disagrees on the left shoulder
    keep, reason = judge(points, scores, box, flipped, [], SIGMAS, FilterConfig())
    assert DROP_REASONS[reason[0, 0]] == "low_score" and DROP_REASONS[reason[0, 5]] == "flip"
    assert keep[0].sum() == 15 and (reason[0][keep[0]] == -1).all()
    moved = points.copy()
    moved[0, 11] += 60  # the hip jumped in the neighbouring frame
    keep, reason = judge(points, scores, box, points, [points, moved], SIGMAS, FilterConfig())
    assert DROP_REASONS[reason[0, 11]] == "temporal" and keep[0].sum() == 15  # every adjacent frame must agree
    walked = moved + [25.0, -10.0]  # the person walked: that movement is not held against the teacher
    keep, reason = judge(points, scores, box, points, [walked], SIGMAS, FilterConfig())
    assert DROP_REASONS[reason[0, 11]] == "temporal" and keep[0].sum() == 15
    keep, _ = judge(points, scores, box, points, [points + [25.0, -10.0]], SIGMAS, FilterConfig())
    assert keep[0].sum() == 16
    # a keypoint well outside the frame is a guess: dropped; a few pixels past the edge is kept
    outside = points.copy()
    outside[0, 9, 1], outside[0, 10, 1] = 140.0, 103.0  # a 100-pixel-high frame: 5 % margin = 5 pixels
    keep, reason = judge(outside, scores, box, outside, [], SIGMAS, FilterConfig(), frame_size=(100, 100))
    assert DROP_REASONS[reason[0, 9]] == "outside" and keep[0, 10] and keep[0].sum() == 15
    # flip_back undoes a mirror: x -> W - 1 - x and left/right swapped
    back = flip_back(points, 101, COCO17.flip_index)
    assert back[0, 5, 0] == 100 - points[0, 6, 0]
    np.testing.assert_allclose(flip_back(back, 101, COCO17.flip_index), points)


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("teacher")
    return export_onnx(make_student(root), root)


@pytest.fixture()
def frames(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"f{i}.png"), person_frame(seed=i, box=(100 + 10 * i, 20, 200 + 10 * i, 230)))
    return folder


def _annotations(out: Path) -> dict[str, dict]:
    return {s: json.loads((out / "annotations" / f"person_keypoints_{s}.json").read_text()) for s in ("train", "val")}


def test_kept_keypoints_are_the_teachers_and_flip_inconsistent_ones_dropped(teacher_path, frames, tmp_path):
    predictor = Predictor(teacher_path)

    def teacher_and_mirror(source: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The teacher's keypoints and scores on the frame, and its similarity with the mirror's answer."""
        ref, mirror = predictor.predict(source), predictor.predict(np.ascontiguousarray(source[:, ::-1]))
        back = mirror.keypoints[0][COCO17.flip_index].astype(np.float64)
        back[:, 0] = source.shape[1] - 1 - back[:, 0]
        box = ref.boxes[0]
        area = np.array([(box[2] - box[0]) * (box[3] - box[1])])
        return (
            ref.keypoints[0],
            ref.scores[0],
            keypoint_similarity(ref.keypoints.astype(np.float64), back[None], area, SIGMAS)[0],
        )

    # an untrained teacher: thresholds at its medians so that every rule has work to do
    answers = [teacher_and_mirror(cv2.imread(str(p))) for p in sorted(frames.iterdir())]
    min_score = float(np.median(np.concatenate([a[1] for a in answers])))
    flip_agreement = float(np.median(np.concatenate([a[2] for a in answers])))
    config = LabelConfig(
        val_fraction=0.25, filter=FilterConfig(min_score=min_score, flip_agreement=flip_agreement, min_keypoints=1)
    )
    summary = label([frames], teacher_path, tmp_path / "out", config=config, progress=False)
    anns = _annotations(tmp_path / "out")
    assert [len(anns[s]["images"]) for s in ("train", "val")] == [3, 1]
    seen = {"kept": 0, "flip": 0, "low_score": 0, "outside": 0}
    for split in ("train", "val"):
        for img, ann in zip(anns[split]["images"], anns[split]["annotations"]):
            image = cv2.imread(str(tmp_path / "out" / "images" / split / img["file_name"]))
            assert image is not None and ann["image_id"] == img["id"]
            source = cv2.imread(str(frames / f"f{int(img['file_name'][-10:-4])}.png"))
            keypoints, scores, sim = teacher_and_mirror(source)  # the teacher, recomputed on the source frame
            agree, confident = sim >= flip_agreement, scores >= min_score
            height, width = source.shape[:2]
            margin = config.filter.outside_margin * height  # an untrained teacher guesses points past the edges too
            inside = ((keypoints >= -margin) & (keypoints <= [width - 1 + margin, height - 1 + margin])).all(axis=1)
            joints = np.array(ann["keypoints"]).reshape(17, 3)
            kept = joints[:, 2] == 2
            np.testing.assert_array_equal(kept, agree & confident & inside)
            placed = kept | (~inside & kept.any())  # past the frame: v=0 with its place (absent)
            np.testing.assert_allclose(joints[placed, :2], keypoints[placed], atol=0.01)
            assert ann["num_keypoints"] == kept.sum() and (joints[~placed] == 0).all()
            assert (joints[~inside, 2] == 0).all()
            seen["outside"] += (placed & ~inside).sum()
            seen["kept"] += kept.sum()
            seen["flip"] += (confident & ~agree).sum()
            seen["low_score"] += (~confident).sum()
    assert min(seen.values()) > 0, seen  # the run kept some and dropped some for each reason
    assert summary["keypoints_kept"] == seen["kept"] and summary["dropped"]["flip"] == seen["flip"]
    assert summary["dropped"]["low_score"] == seen["low_score"]
    train = load_coco(tmp_path / "out", "train", COCO17)  # what `--data coco:OUT` reads
    assert len(train.samples) == 3
    assert sum((s.joints[:, 2] == ABSENT).sum() for s in train.samples) > 0  # read back as absent


def test_people_without_enough_labels_become_ignore_entries(teacher_path, frames, tmp_path):
    config = LabelConfig(val_fraction=0.0, filter=FilterConfig(min_score=0.0, flip_agreement=1.0, min_keypoints=17))
    summary = label([frames], teacher_path, tmp_path / "out", config=config, progress=False)
    anns = _annotations(tmp_path / "out")["train"]["annotations"]
    assert len(anns) == 4 and summary["people_ignored"] == 4
    assert all(
        a["num_keypoints"] == 0 and not any(a["keypoints"]) and a["iscrowd"] == 0 and a["bbox"][2] > 0 for a in anns
    )
    with pytest.raises(DatasetError, match="4 skipped"):  # the COCO loader skips them (no labelled keypoint)
        load_coco(tmp_path / "out", "train", COCO17)


def test_resume_skips_finished_frames_and_redoes_a_cut_one(teacher_path, frames, tmp_path):
    out = tmp_path / "out"
    label([frames], teacher_path, out, progress=False)
    progress = out / "progress.jsonl"
    first = _annotations(out)
    lines = progress.read_text().splitlines()
    assert len(lines) == 4
    progress.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])  # interrupted while writing frame 3
    label([frames], teacher_path, out, progress=False)
    names = [json.loads(line)["name"] for line in progress.read_text().splitlines()[2:]]
    assert sorted(names) == sorted(json.loads(line)["name"] for line in lines[2:])  # only frames 3 and 4 redone
    assert _annotations(out) == first
    with pytest.raises(DatasetError, match="other settings \\(config\\)"):
        label([frames], teacher_path, out, config=LabelConfig(every=2), progress=False)


def test_video_frames_are_checked_against_their_neighbours(teacher_path, tmp_path):
    video = write_video(tmp_path / "walk.mp4", frames=12)
    config = LabelConfig(
        every=2, val_fraction=0.0, filter=FilterConfig(min_score=0.0, flip_agreement=0.0, temporal_agreement=0.9)
    )
    summary = label([video], teacher_path, tmp_path / "out", config=config, progress=False)
    assert summary["frames"] == 6
    assert summary["dropped"]["temporal"] > 0 and summary["dropped"]["flip"] == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "progress.jsonl").read_text().splitlines()]
    assert [int(r["name"][-6:]) for r in records] == [0, 2, 4, 6, 8, 10]


def test_held_out_media_are_refused_before_anything_is_written(teacher_path, media, tmp_path):
    # vtest.avi's frames from 606 on are the dev set's clip-val scene: a val split of 0.2 (and its
    # 30-frame gap) ends the training frames there, a smaller one would train on them; tree.avi is
    # held out whole, even beside trainable footage
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"vtest\.avi: is vtest\.avi, whose frames from 606 on are held out"):
        label([media / "vtest.avi"], teacher_path, out, config=LabelConfig(val_fraction=0.1), progress=False)
    stills = tmp_path / "stills"
    stills.mkdir()
    shutil.copy(media / "messi5.jpg", stills / "messi5.jpg")
    with pytest.raises(DatasetError, match=r"tree\.avi: is tree\.avi, a held-out evaluation file"):
        label([stills, media / "tree.avi"], teacher_path, out, progress=False)
    shutil.copy(media / "tree.avi", tmp_path / "garden.avi")  # known by content, not by name
    with pytest.raises(DatasetError, match=r"garden\.avi: is tree\.avi"):
        label([tmp_path / "garden.avi"], teacher_path, out, progress=False)
    assert not out.exists()
    config = LabelConfig(every=400, val_fraction=0.2, val_gap=30)  # the real-tiny recipe's split: frames 0-605 train
    summary = label([media / "vtest.avi"], teacher_path, out, config=config, progress=False)
    assert summary["frames"] == 2  # frames 0 and 400 (train); 800 is past the clip's 795


def test_bad_input_is_named_and_leaves_nothing(teacher_path, frames, tmp_path, capsys):
    out = tmp_path / "out"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 100)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    not_pose = tmp_path / "teacher.onnx"
    not_pose.write_bytes(b"garbage" * 50)
    cases = [
        ([str(broken)], str(teacher_path), "broken.mp4: OpenCV cannot read a frame.*re-encode"),
        ([str(empty)], str(teacher_path), "empty: folder holds no images"),
        ([str(frames)], str(not_pose), "teacher.onnx: not a pose model.*pass an okdhp_edge export"),
    ]
    for sources, teacher, message in cases:
        assert main([*sources, "--teacher", teacher, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert __import__("re").search(message, err), err
        assert not out.exists()


def test_video_frames_come_with_their_adjacent_frames(tmp_path):
    from okdhp_edge.data.label_sources import find_sources

    video = write_video(tmp_path / "walk.mp4", frames=7)
    capture = cv2.VideoCapture(str(video))
    decoded = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        decoded.append(image)
    (source,) = find_sources([video])
    frames = list(source.frames(3))
    assert [f.index for f in frames] == [0, 3, 6] and source.length == 7
    for frame in frames:
        expected = [decoded[i] for i in (frame.index - 1, frame.index + 1) if 0 <= i < len(decoded)]
        np.testing.assert_array_equal(frame.image, decoded[frame.index])
        assert len(frame.neighbours) == len(expected)
        for got, want in zip(frame.neighbours, expected):
            np.testing.assert_array_equal(got, want)


def test_command_line_prints_the_summary(teacher_path, frames, tmp_path, capsys):
    assert main([str(frames), "--teacher", str(teacher_path), "--out", str(tmp_path / "out"), "--min-score", "0"]) == 0
    out = capsys.readouterr().out
    assert "4 frames, 4 people" in out and "keypoints kept" in out and f"--data coco:{tmp_path / 'out'}" in out


def test_blazepose_teacher_labels_a_real_person(tmp_path):
    """basketball1.png through `--teacher blazepose-full --detector default`: the man facing the
    camera on the left is found and nearly all his keypoints are kept, on him."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from footage import footage_dir

    from okdhp_edge.runtime import BlazePoseLandmarker, Detector, FetchError

    try:
        media = footage_dir()
    except (RuntimeError, OSError, StopIteration) as err:  # no apt-get / package index here: say why
        pytest.skip(f"opencv-doc footage not available: {err}")
    try:
        teacher, detector = BlazePoseLandmarker.fetch("full", num_threads=2), Detector(num_threads=2)
    except FetchError as err:
        pytest.skip(f"MediaPipe models not available: {err}")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "basketball1.png").write_bytes((media / "basketball1.png").read_bytes())
    summary = label(
        [folder], teacher, tmp_path / "out", detector=detector, config=LabelConfig(val_fraction=0.0), progress=False
    )
    anns = _annotations(tmp_path / "out")["train"]["annotations"]
    assert summary["keypoints_kept"] == sum(
        np.array(a["keypoints"]).reshape(17, 3)[:, 2].tolist().count(2) for a in anns
    )
    (ann,) = [a for a in anns if a["bbox"][0] < 200]  # the thrower facing the camera (the other: the near man at right)
    joints = np.array(ann["keypoints"]).reshape(17, 3)
    kept = joints[:, 2] == 2
    assert kept.sum() >= 14
    x, y = joints[kept, 0], joints[kept, 1]
    assert (
        (x > 20).all() and (x < 180).all() and (y > 70).all() and (y < 480).all()
    )  # on the man boxed by eye, x 35-160


def test_an_unreadable_image_is_skipped_with_a_warning(teacher_path, frames, tmp_path):
    (frames / "f9.png").write_bytes(b"\x89PNG truncated")
    with pytest.warns(UserWarning, match="f9.png: OpenCV cannot read this image"):
        summary = label([frames], teacher_path, tmp_path / "out", config=LabelConfig(val_fraction=0.0), progress=False)
    assert summary["frames"] == 4


def test_teacher_regions_extend_people_the_bottom_edge_cuts():
    boxes = np.array([[10, 20, 110, 99], [10, 20, 60, 80], [0, 50, 40, 98]], np.float32)  # a 100-pixel-high frame
    regions = teacher_regions(boxes, 100, 3.0)
    np.testing.assert_array_equal(regions[1], boxes[1])  # inside the frame: as given
    assert regions[0].tolist() == [10, 20, 110, 320] and regions[2].tolist() == [0, 50, 40, 170]  # 3 widths tall
    np.testing.assert_array_equal(teacher_regions(boxes, 100, 0.0), boxes)
    tall = np.array([[0, 0, 10, 99]], np.float32)  # already taller than 3 widths: unchanged
    np.testing.assert_array_equal(teacher_regions(tall, 100, 3.0), tall)
    with pytest.raises(ValueError, match="cut_body_widths"):
        LabelConfig(cut_body_widths=-1)
