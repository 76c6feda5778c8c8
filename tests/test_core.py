"""Torch-free core: skeletons, crop geometry, heatmap codec, specs, preprocessing."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from okdhp_edge import (
    COCO17,
    MPII16,
    ArchSpec,
    HeatmapCodec,
    InputSpec,
    ModelSpec,
    SpecError,
    apply_affine,
    box_to_center_size,
    crop_affine,
    decode_heatmaps,
    flip_heatmaps,
    get_skeleton,
    invert_affine,
)
from okdhp_edge.codec import ABSENT
from okdhp_edge.preprocess import crop_people, normalize
from okdhp_edge.spec import ExportInfo


def test_skeletons_are_consistent():
    assert COCO17.num_keypoints == 17 and len(COCO17.sigmas) == 17
    assert MPII16.num_keypoints == 16
    for sk in (COCO17, MPII16):
        idx = sk.flip_index
        assert sorted(idx) == list(range(sk.num_keypoints))
        assert [idx[i] for i in idx] == list(range(sk.num_keypoints))  # an involution
        for a, b in sk.flip_pairs:
            swapped = {sk.keypoints[a].replace("left", "L").replace("right", "left").replace("L", "right")}
            assert swapped == {sk.keypoints[b]}
    with pytest.raises(ValueError, match="valid: coco17, mpii16"):
        get_skeleton("body25")


def test_box_to_center_size_pads_to_aspect():
    center, size = box_to_center_size([10, 20, 50, 220], aspect_ratio=0.75, padding=1.25)
    np.testing.assert_allclose(center, [30, 120])
    np.testing.assert_allclose(size, [200 * 0.75 * 1.25, 200 * 1.25])
    with pytest.raises(ValueError, match="non-finite"):
        box_to_center_size([0, 0, np.nan, 5], 1.0)


def test_affine_round_trip_and_center_mapping():
    center, size = np.array([100.0, 80.0]), np.array([60.0, 80.0])
    m = crop_affine(center, size, (96, 128), rotation_deg=30)
    np.testing.assert_allclose(apply_affine(center[None], m)[0], [47.5, 63.5], atol=1e-4)
    pts = np.random.default_rng(0).uniform(0, 200, (20, 2))
    back = apply_affine(apply_affine(pts, m), invert_affine(m))
    np.testing.assert_allclose(back, pts, atol=1e-3)


def test_mirrored_window_equals_mirrored_crop():
    """Flipping a crop (x -> W-1-x) must equal cropping the mirrored image: flip test relies on it."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    spec = InputSpec(width=48, height=64)
    box = np.array([[40.0, 20.0, 100.0, 110.0]])
    crops, _ = crop_people(image, box, spec)
    mirrored = image[:, ::-1].copy()
    w = image.shape[1]
    mbox = np.array([[w - 1 - 100.0, 20.0, w - 1 - 40.0, 110.0]])
    mcrops, _ = crop_people(mirrored, mbox, spec)
    diff = np.abs(crops[0, :, ::-1].astype(int) - mcrops[0].astype(int))
    assert diff.mean() < 1.0


@pytest.mark.parametrize("size", [((96, 128), (24, 32)), ((256, 256), (64, 64)), ((192, 256), (48, 64))])
def test_codec_round_trip_within_quarter_pixel(size):
    codec = HeatmapCodec(*size)
    rng = np.random.default_rng(0)
    w, h = size[0]
    pts = np.stack([rng.uniform(12, w - 12, 200), rng.uniform(12, h - 12, 200)], axis=1)
    for chunk in np.split(pts, 10):
        hm, weight = codec.encode(chunk, np.ones(len(chunk)))
        assert weight.all() and np.isclose(hm.max(axis=(1, 2)), 1.0, atol=0.1).all()
        decoded, scores = codec.decode(hm)
        err = np.abs(codec.input_to_heatmap(decoded) - codec.input_to_heatmap(chunk))
        assert err.max() <= 0.25 + 1e-5
        assert (scores > 0.7).all()


def test_codec_weights_zero_for_invisible_and_far_outside():
    codec = HeatmapCodec((64, 64), (16, 16), sigma=2.0)
    hm, weight = codec.encode(np.array([[30, 30], [30, 30], [-200, 30], [70, 30]]), np.array([2, 0, 2, 2]))
    assert weight.tolist() == [1, 0, 0, 1]  # (70,30) is off the map but its Gaussian still reaches it
    assert hm[1].max() == 0 and hm[2].max() == 0


def test_codec_teaches_absent_keypoints_as_empty_maps():
    points, visible = np.array([[30, 30], [30, 30], [30, 30]]), np.array([2, ABSENT, 0])
    hm, weight = HeatmapCodec((64, 64), (16, 16), sigma=2.0, absent_weight=0.5).encode(points, visible)
    assert weight.tolist() == [1, 0.5, 0]  # absent: weighed, so "not here" is learnt; unlabelled: skipped
    assert hm[0].max() > 0.9 and hm[1].max() == 0 and hm[2].max() == 0
    assert HeatmapCodec((64, 64), (16, 16)).encode(points, visible)[1].tolist() == [1, 0, 0]  # off by default
    with pytest.raises(ValueError, match="absent_weight"):
        HeatmapCodec((64, 64), (16, 16), absent_weight=2.0)


def test_decode_handles_batches_and_borders():
    hm = np.zeros((2, 3, 8, 8), np.float32)
    hm[0, 0, 0, 0] = 1
    hm[1, 2, 4, 7] = 1
    hm[1, 2, 4, 6] = 0.5
    coords, scores = decode_heatmaps(hm)
    assert coords.shape == (2, 3, 2) and scores.shape == (2, 3)
    np.testing.assert_allclose(coords[0, 0], [0, 0])
    np.testing.assert_allclose(coords[1, 2], [7, 4])  # no step off the border


def test_flip_heatmaps_is_exact_mirror():
    codec = HeatmapCodec((96, 128), (24, 32))
    pts = np.array([[20.3, 50.1], [70.0, 40.2]])
    hm, _ = codec.encode(pts, np.ones(2))
    flipped = flip_heatmaps(hm[None], [1, 0])[0]
    mirrored_pts = np.array([[95 - 70.0, 40.2], [95 - 20.3, 50.1]])
    expected, _ = codec.encode(mirrored_pts, np.ones(2))
    np.testing.assert_allclose(flipped, expected, atol=1e-5)


def _spec_dict():
    return ModelSpec(name="s", arch=ArchSpec(num_joints=17), skeleton=COCO17).to_dict()


def test_spec_round_trip_and_errors(tmp_path):
    spec = ModelSpec(
        name="s", arch=ArchSpec(num_joints=17), skeleton=COCO17, input=InputSpec(96, 128), compression_rate=0.5
    )
    path = tmp_path / "s.json"
    spec.save(path)
    loaded = ModelSpec.load(path)
    assert loaded.to_dict() == spec.to_dict() and loaded.heatmap_size == (24, 32)
    bad = _spec_dict()
    bad["arch"]["num_joints"] = 16
    with pytest.raises(SpecError, match="num_joints=16"):
        ModelSpec.from_dict(bad, "x.json")
    bad = _spec_dict()
    bad["arch"]["widht"] = 3
    with pytest.raises(SpecError, match=r"x.json: arch: unknown field\(s\) \['widht'\]"):
        ModelSpec.from_dict(bad, "x.json")
    path.write_text(json.dumps(_spec_dict())[:50])
    with pytest.raises(SpecError, match="corrupt or truncated"):
        ModelSpec.load(path)
    with pytest.raises(SpecError, match="not found"):
        ModelSpec.load(tmp_path / "missing.json")


def test_normalize_colour_order_and_layout():
    spec = InputSpec(width=4, height=2, mean=(0, 0, 0), std=(1, 1, 1))
    crop = np.zeros((1, 2, 4, 3), np.uint8)
    crop[..., 0] = 10  # blue in BGR
    x = normalize(crop, spec, bgr=True)
    assert x.shape == (1, 3, 2, 4) and x.dtype == np.float32
    assert (x[0, 2] == 10).all() and (x[0, 0] == 0).all()  # blue is the last RGB channel
    assert (normalize(crop, spec, bgr=False)[0, 0] == 10).all()


def test_core_does_not_import_torch():
    code = (
        "import sys, okdhp_edge, okdhp_edge.boxes, okdhp_edge.codec, okdhp_edge.geometry, okdhp_edge.skeleton, "
        "okdhp_edge.spec, okdhp_edge.preprocess\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of the modules a file imports, relative imports resolved against `package`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_dependencies_run_one_way():
    """The core imports nothing of ours above it; the runtime only the core (torch-side backends are
    registered by module path, never imported by the runtime's own code)."""
    root = Path(__file__).resolve().parents[1] / "okdhp_edge"
    above = ("okdhp_edge.models", "okdhp_edge.train", "okdhp_edge.data", "okdhp_edge.export", "okdhp_edge.eval")
    files = [p for p in root.glob("*.py")] + list((root / "runtime").rglob("*.py"))
    for path in files:
        parts = path.relative_to(root.parent).with_suffix("").parts
        package = ".".join(parts if parts[-1] == "__init__" else parts[:-1]).removesuffix(".__init__")
        bad = sorted(
            n for n in _imports(path, package) if n.startswith(above) or n == "torch" or n.startswith("torch.")
        )
        assert not bad, f"{path.relative_to(root.parent)} imports {bad}"


def test_export_runs_artifacts_only_through_the_runtime():
    """Verification and the export benchmark run artifacts through the runtime's backends (the
    Predictor's path): no export module opens a session, interpreter or engine to run it itself."""
    repo = Path(__file__).resolve().parents[1]
    files = list((repo / "okdhp_edge" / "export").rglob("*.py")) + [repo / "benchmarks" / "export_matrix.py"]
    running = ("InferenceSession", ".invoke(", "execute_async", ".predict(")
    for path in files:
        text = path.read_text(encoding="utf-8")
        found = [call for call in running if call in text]
        assert not found, f"{path.relative_to(repo)} runs a model itself ({found}); use okdhp_edge.runtime.backends"
    assert not (repo / "okdhp_edge" / "export" / "runners.py").exists()


# Export sections as the exporter wrote them before ExportInfo was typed (a TensorRT-source INT8
# ONNX and a full-integer TFLite): they must load and write back byte for byte.
OLD_EXPORT_SECTIONS = [
    {
        "batch": "dynamic",
        "calibration": {"images": 16, "method": "average", "source": "synthetic"},
        "created": "2026-11-26T02:58:24+00:00",
        "device_specific": False,
        "equalized": True,
        "format": "onnx",
        "input_dtype": "float32",
        "input_layout": "NCHW",
        "input_name": "input",
        "int8_residual": "int8",
        "int8_scheme": "symmetric",
        "max_batch": 32,
        "okdhp_edge_version": "0.1.0",
        "opset": 17,
        "output_layout": "NCHW",
        "output_name": "heatmaps",
        "precision": "int8",
        "purpose": "TensorRT int8 engine source",
        "source_sha256": "0f" * 32,
    },
    {
        "batch": 1,
        "calibration": {"images": 16, "method": "pt2e-moving-average-minmax", "source": "synthetic"},
        "created": "2026-11-26T02:57:15+00:00",
        "device_specific": False,
        "equalized": True,
        "format": "tflite",
        "input_dtype": "int8",
        "input_layout": "NCHW",
        "input_name": "serving_default_args_0",
        "input_quantization": {"scale": 0.01683146134018898, "zero_point": -3},
        "int8_residual": "int8",
        "okdhp_edge_version": "0.1.0",
        "output_dtype": "int8",
        "output_layout": "NCHW",
        "output_name": "serving_default_output_0_output",
        "output_quantization": {"scale": 0.0021858331747353077, "zero_point": -94},
        "precision": "int8",
        "source_sha256": "0f" * 32,
    },
]


@pytest.mark.parametrize("section", OLD_EXPORT_SECTIONS, ids=["onnx-int8-trt-source", "tflite-int8"])
def test_export_section_is_typed_and_keeps_the_on_disk_format(section):
    data = ModelSpec(name="s", arch=ArchSpec(), skeleton=COCO17).to_dict()
    assert data["export"] == {}, "a plain student writes an empty export section"
    data["export"] = section
    spec = ModelSpec.from_json(json.dumps(data))
    assert isinstance(spec.export, ExportInfo) and spec.export.format == section["format"]
    assert spec.export.batch == (None if section["batch"] == "dynamic" else section["batch"])
    assert "opset" in spec.export.details or "input_quantization" in spec.export.details
    assert json.loads(spec.to_json()) == data


@pytest.mark.parametrize(
    "change, words",
    [
        ({"batch": 0}, "export.batch"),
        ({"max_batch": "8"}, "export.max_batch"),
        ({"output_layout": "CHW"}, "output_layout"),
        ({"input_dtype": "int4"}, "input_dtype"),
    ],
)
def test_export_section_errors_name_the_field(change, words):
    data = ModelSpec(name="s", arch=ArchSpec(), skeleton=COCO17).to_dict()
    data["export"] = {**OLD_EXPORT_SECTIONS[0], **change}
    with pytest.raises(SpecError, match=words):
        ModelSpec.from_dict(data, "x.onnx.json")
