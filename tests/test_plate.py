"""The clean-plate maker (okdhp_edge.data.plate) on real files: a video of a static scene with a
moving square, written with OpenCV, and folders of PNG frames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.label_sources import find_sources
from okdhp_edge.data.plate import main, median_plate
from okdhp_edge.data.synthetic.render import background_photos

W, H, SQUARE = 160, 120, 24


def scene() -> np.ndarray:
    """A smooth background (codecs keep it) with some edges."""
    y, x = np.mgrid[0:H, 0:W]
    image = np.stack([40 + x * 0.8, 60 + y * 0.9, 90 + (x + y) * 0.3], axis=-1).astype(np.uint8)
    cv2.rectangle(image, (20, 70), (60, 110), (30, 140, 200), -1)
    return image


def frame(i: int, n: int) -> np.ndarray:
    """The scene with a white square crossing it left to right: any pixel is covered in few frames."""
    image = scene()
    x = int(i * (W - SQUARE) / (n - 1))
    image[40 : 40 + SQUARE, x : x + SQUARE] = 255
    return image


def write_video(path: Path, n: int = 40) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (W, H))
    assert writer.isOpened(), "this OpenCV build cannot write mp4v"
    for i in range(n):
        writer.write(frame(i, n))
    writer.release()
    return path


def write_folder(folder: Path, n: int = 20) -> Path:
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), frame(i, n))
    return folder


def test_video_plate_is_the_background_without_the_square(tmp_path):
    plate = median_plate(write_video(tmp_path / "clip.mp4"), every=2)
    assert plate.shape == (H, W, 3) and plate.dtype == np.uint8
    diff = np.abs(plate.astype(int) - scene().astype(int))
    assert diff.mean() < 4.0  # mp4v alone: about 2.5 per frame on this scene
    assert diff[40 : 40 + SQUARE].max() < 20  # the square's path: background within codec tolerance, no white left


def test_folder_plate_is_exact_and_keeps_at_most_max_frames_spread_over_the_range(tmp_path, capsys):
    folder = write_folder(tmp_path / "frames")
    np.testing.assert_array_equal(median_plate(folder, every=1), scene())  # PNG frames: lossless
    assert main([str(folder), "--out", str(tmp_path / "p.png"), "--every", "1", "--max-frames", "5"]) == 0
    assert "median of 5 frames from 0 to 16" in capsys.readouterr().out
    assert main([str(folder), "--out", str(tmp_path / "p.png"), "--start", "3", "--stop", "14", "--every", "2"]) == 0
    assert "median of 6 frames from 3 to 13" in capsys.readouterr().out


def test_frames_from_start_in_videos_and_folders(tmp_path):
    video, folder = find_sources([write_video(tmp_path / "clip.mp4", n=20), write_folder(tmp_path / "frames", n=20)])
    assert [f.index for f in video.frames(5, 3)] == [3, 8, 13, 18]
    assert [f.index for f in folder.frames(5, 3)] == [3, 8, 13, 18]
    assert [f.index for f in video.frames(7)] == [0, 7, 14]  # the labeller's call is unchanged


def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, dict[str, int], str]]:
    """name: (SRC, frame range, words the error must contain)."""
    garbage = tmp_path / "broken.avi"
    garbage.write_bytes(b"not a video" * 100)
    (tmp_path / "empty").mkdir()
    sizes = write_folder(tmp_path / "sizes", n=5)
    cv2.imwrite(str(sizes / "f003.png"), np.zeros((H // 2, W, 3), np.uint8))
    few = write_folder(tmp_path / "few", n=5)
    return {
        "missing": (tmp_path / "nope.mp4", {}, "no such file"),
        "unreadable video": (garbage, {}, "re-encode"),
        "no images": (tmp_path / "empty", {}, "no images"),
        "sizes": (sizes, {"every": 1}, "f003.png: 160x60, but the first frame is 160x120"),
        "too few": (few, {"every": 2, "start": 1}, "at least 3"),
    }


@pytest.mark.parametrize("case", ["missing", "unreadable video", "no images", "sizes", "too few"])
def test_bad_input_names_the_file_and_the_fix_and_writes_nothing(tmp_path, capsys, case):
    source, frames, words = bad_inputs(tmp_path)[case]
    out = tmp_path / "plates" / "plate.png"
    assert main([str(source), "--out", str(out), *(f"--{k}={v}" for k, v in frames.items())]) == 2
    err = capsys.readouterr().err
    assert words in err and source.name in err
    assert not out.parent.exists()
    with pytest.raises(DatasetError, match=words):
        median_plate(source, **frames)


def test_out_must_be_a_png(tmp_path, capsys):
    assert main([str(write_folder(tmp_path / "frames", n=5)), "--out", str(tmp_path / "plate.jpg")]) == 2
    assert ".png" in capsys.readouterr().err and not (tmp_path / "plate.jpg").exists()


def test_cli_writes_the_plate_where_the_generator_finds_it(tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    out = tmp_path / "new" / "plates" / "scene.png"
    proc = subprocess.run(
        [sys.executable, "-m", "okdhp_edge.data.plate", str(video), "--out", str(out), "--every", "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "median of 10 frames from 0 to 36, 160x120" in proc.stdout
    assert f"--set data.backgrounds={out.parent}" in proc.stdout and f"--backgrounds {out.parent}" in proc.stdout
    assert [p.name for p in out.parent.iterdir()] == ["scene.png"]  # no partial file left
    assert background_photos(out.parent) == (str(out.resolve()),)
    np.testing.assert_array_equal(cv2.imread(str(out)), median_plate(video, every=4))
