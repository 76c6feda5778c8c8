"""Every bad input from issue 6 gives a clear error (or the documented clip), never a crash in a backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from runtime_artifacts import export_onnx, export_tflite, make_student, person_frame

from okdhp_edge.runtime import InputError, ModelFileError, Predictor
from okdhp_edge.runtime.predictor import check_boxes
from okdhp_edge.skeleton import MPII16


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bad-input-artifacts")
    student = make_student(out)
    return {"torch": student, "onnx": export_onnx(student, out), "tflite": export_tflite(student, out)}


@pytest.fixture(scope="module")
def predictor(artifacts) -> Predictor:
    return Predictor(artifacts["onnx"], num_threads=1)


def copy_artifact(src: Path, dst: Path) -> Path:
    """Copy an artifact and its sidecar under a new name."""
    shutil.copyfile(src, dst)
    shutil.copyfile(src.with_name(src.name + ".json"), dst.with_name(dst.name + ".json"))
    return dst


def edit_sidecar(path: Path, change) -> None:
    sidecar = path.with_name(path.name + ".json")
    data = json.loads(sidecar.read_text())
    change(data)
    sidecar.write_text(json.dumps(data))


def load_error(path: Path, match: str, **kwargs) -> str:
    with pytest.raises(ModelFileError, match=match) as info:
        Predictor(path, **kwargs)
    message = str(info.value)
    assert str(path) in message, f"message does not name the file: {message}"
    return message


# -- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((64, 64, 3), np.float32), r"uint8.*\(image \* 255\)"),
        (np.zeros((64, 64, 3), np.uint16), "uint8"),
        (np.zeros((64, 64, 3), bool), "uint8"),
        (None, "image is None.*cv2.imread"),
        ([[0, 1], [2, 3]], "numpy array"),
        (np.zeros((2, 64, 64, 3), np.uint8), "one image"),
        (np.zeros((64, 64, 2), np.uint8), r"expected HxWx3"),
        (np.zeros((64, 64, 5), np.uint8), r"expected HxWx3"),
        (np.zeros((64,), np.uint8), r"expected HxWx3"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
        (np.zeros((64, 0, 3), np.uint8), "empty"),
    ],
)
def test_bad_images_are_clear_errors(predictor, image, match):
    with pytest.raises(InputError, match=match):
        predictor.predict(image)


# -- boxes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "boxes, match",
    [
        ([[10, 10, np.nan, 100]], r"box\(es\) \[0\] contain NaN"),
        ([[0, 0, 50, 50], [10, np.inf, 20, 30]], r"box\(es\) \[1\] contain NaN or infinity"),
        ([[100, 10, 50, 100]], "x2 < x1"),
        ([[10, 10, 10, 100]], "degenerate"),
        ([[400, 10, 500, 100]], "outside the 320x240 image"),
        ([[-90, -90, -10, -10]], "outside"),
        ([[10, 10, 50, 100, 0.9]], r"boxes\[:, :4\]"),
        ([[10, 10, 50]], "N x 4"),
        ([["a", "b", "c", "d"]], "numeric"),
    ],
)
def test_bad_boxes_are_clear_errors(predictor, boxes, match):
    with pytest.raises(InputError, match=match):
        predictor.predict(person_frame(), boxes)


def test_boxes_partly_outside_are_clipped_to_the_image(predictor):
    result = predictor.predict(person_frame(), [[-30, 200, 100, 400], [300, -5, 500, 100]])
    np.testing.assert_array_equal(result.boxes, [[0, 200, 100, 239], [300, 0, 319, 100]])
    assert np.isfinite(result.keypoints).all()


def test_unclipped_boxes_keep_regions_past_the_edges_and_refuse_the_rest():
    """check_boxes(clip=False), for models that pad their own regions (BlazePoseLandmarker)."""
    boxes = [[-30, 200, 100, 900], [300, -5, 500, 100]]
    np.testing.assert_array_equal(check_boxes(boxes, 320, 240, clip=False), boxes)
    with pytest.raises(InputError, match="outside the 320x240 image"):
        check_boxes([[400, 10, 500, 100]], 320, 240, clip=False)
    with pytest.raises(InputError, match="NaN"):
        check_boxes([[0, 0, np.nan, 10]], 320, 240, clip=False)


# -- model files --------------------------------------------------------------------------------


def test_missing_and_empty_files(tmp_path):
    load_error(tmp_path / "nothing.onnx", "not found")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    load_error(empty, "empty")


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_truncated_model_file(artifacts, tmp_path, fmt):
    src = artifacts[fmt]
    truncated = copy_artifact(src, tmp_path / src.name)
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    message = load_error(truncated, "truncated")
    assert "re-export" in message


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
def test_foreign_file_with_model_suffix(artifacts, tmp_path, suffix):
    fake = tmp_path / f"holiday{suffix}"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    src = artifacts["onnx" if suffix == ".onnx" else "tflite"]
    shutil.copyfile(src.with_name(src.name + ".json"), fake.with_name(fake.name + ".json"))
    load_error(fake, "not an? (ONNX|TFLite) model")


def foreign_onnx(path: Path, in_shape, out_shape, op: str = "Identity") -> Path:
    """A valid ONNX model that is not a pose student."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_foreign_onnx_without_metadata(tmp_path):
    model = foreign_onnx(tmp_path / "classifier.onnx", [1, 3, 224, 224], [1, 3, 224, 224])
    message = load_error(model, "no okdhp-edge metadata")
    assert "classifier.onnx.json" in message and "okdhp_edge.export" in message


def test_foreign_onnx_with_a_borrowed_sidecar(artifacts, tmp_path):
    model = foreign_onnx(tmp_path / "classifier.onnx", [1, 3, 224, 224], [1, 3, 224, 224])
    shutil.copyfile(artifacts["onnx"].with_name(artifacts["onnx"].name + ".json"), tmp_path / "classifier.onnx.json")
    load_error(model, "does not match the model: input is named 'x'")


def test_shape_free_foreign_onnx_is_caught_at_predict(artifacts, tmp_path):
    """Fully symbolic shapes pass the load-time check; the output check at predict catches it."""
    model = foreign_onnx(tmp_path / "passthrough.onnx", ["n", "c", "h", "w"], ["n", "c", "h", "w"])
    shutil.copyfile(artifacts["onnx"].with_name(artifacts["onnx"].name + ".json"), tmp_path / "passthrough.onnx.json")
    edit_sidecar(model, lambda d: d["export"].update(input_name="x", output_name="y"))
    predictor = Predictor(model)
    with pytest.raises(ModelFileError, match=r"returned \(1, 3, 128, 96\).*promises heatmaps \(1, 17, 32, 24\)"):
        predictor.predict(person_frame(), [[10, 10, 100, 200]])


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d["input"].update(width=192), r"axis 3"),
        (lambda d: d.update(skeleton=MPII16.to_dict(), arch={**d["arch"], "num_joints": 16}), r"output .*axis 1"),
        (lambda d: d["export"].update(input_name="images"), "input is named 'input', metadata says 'images'"),
        (lambda d: d["export"].update(output_name="logits"), "output is named 'heatmaps', metadata says 'logits'"),
        (lambda d: d["export"].update(input_dtype="float16"), "input dtype is float32, metadata says float16"),
        (lambda d: d["export"].update(input_layout="NHWC"), r"axis 1"),
        (lambda d: d["export"].update(batch=0), "export.batch"),
        (lambda d: d["export"].update(output_layout="CHW"), "output_layout"),
        (lambda d: d.update(arch={**d["arch"], "num_joints": 16}), "arch.num_joints=16"),
    ],
    ids=[
        "input-width",
        "skeleton",
        "input-name",
        "output-name",
        "dtype",
        "layout",
        "batch",
        "bad-layout",
        "inconsistent-spec",
    ],
)
def test_onnx_metadata_not_matching_the_model(artifacts, tmp_path, change, match):
    model = copy_artifact(artifacts["onnx"], tmp_path / "student.onnx")
    edit_sidecar(model, change)
    load_error(model, match)


def test_tflite_metadata_not_matching_the_model(artifacts, tmp_path):
    model = copy_artifact(artifacts["tflite"], tmp_path / "student.tflite")
    edit_sidecar(model, lambda d: d["export"].update(batch="dynamic"))
    load_error(model, "dynamic batch but the model's input has fixed batch 1")
    edit_sidecar(model, lambda d: d["export"].update(batch=1, input_name="pixels"))
    load_error(model, "metadata says 'pixels'")


def test_corrupt_sidecar_and_embedded_fallback(artifacts, tmp_path):
    model = copy_artifact(artifacts["onnx"], tmp_path / "student.onnx")
    sidecar = model.with_name(model.name + ".json")
    sidecar.write_text('{"name": "student", "arch": {')  # truncated JSON
    with pytest.raises(ModelFileError, match="not valid JSON") as info:
        Predictor(model)
    assert str(sidecar) in str(info.value)
    sidecar.unlink()  # without a sidecar the ONNX file's embedded okdhp_spec is used
    assert Predictor(model).spec.name == "tiny-b2-1x32"
    tflite = tmp_path / "bare.tflite"  # the TFLite flatbuffer carries the spec as metadata too
    shutil.copyfile(artifacts["tflite"], tflite)
    assert Predictor(tflite).spec.name == "tiny-b2-1x32"


def test_one_embedded_spec_reader_per_format_serves_runtime_and_export(artifacts, tmp_path):
    """runtime.backends.read_embedded_spec is the reader the backends fall back to and the one
    export's read_embedded_spec wraps: the same spec as the sidecar, a clear error where none is."""
    from okdhp_edge.export import ExportError
    from okdhp_edge.export import read_embedded_spec as export_read
    from okdhp_edge.runtime.backends import read_embedded_spec
    from okdhp_edge.spec import ModelSpec

    for path in (artifacts["onnx"], artifacts["tflite"]):
        sidecar = ModelSpec.load(path.with_name(path.name + ".json"))
        assert read_embedded_spec(path).to_dict() == sidecar.to_dict() == export_read(path).to_dict()
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(ModelFileError, match="carry no embedded okdhp-edge metadata"):
        read_embedded_spec(engine)
    with pytest.raises(ExportError, match="carry no embedded"):
        export_read(engine)
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="broken.tflite"):
        read_embedded_spec(broken)


def test_wrong_suffix_backend_and_device(artifacts, tmp_path):
    load_error(tmp_path / "model.pt", "unknown model type '.pt'")
    load_error(artifacts["onnx"].with_name(artifacts["onnx"].name + ".json"), "not the .json sidecar")
    with pytest.raises(ValueError, match="cannot read .*onnx files are read by backend 'onnx'"):
        Predictor(artifacts["onnx"], backend="litert")
    with pytest.raises(ValueError, match="unknown backend 'caffe'"):
        Predictor(artifacts["onnx"], backend="caffe")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        Predictor(artifacts["onnx"], device="gpu0")
    with pytest.raises(Exception, match="LiteRT backend runs on the CPU"):
        Predictor(artifacts["tflite"], device="cuda")
    with pytest.raises(ValueError, match="num_threads"):
        Predictor(artifacts["onnx"], num_threads=0)


def test_safetensors_without_torch_names_the_install_line():
    """The torch backend is registered by module path; with torch missing, opening a student says what to do."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from okdhp_edge.runtime import BackendUnavailableError, Predictor\n"
        "try:\n    Predictor('student.safetensors')\n"
        "except BackendUnavailableError as err:\n    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "student.safetensors: .safetensors students run through torch" in done.stdout
    assert "pip install 'okdhp-edge[train]'" in done.stdout
