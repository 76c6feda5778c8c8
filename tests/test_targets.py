"""Device targets produce what their device can build: the ONNX opset its TensorRT parses, the
trtexec flags its TensorRT has, and notes that say which part of the SDK runs there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from runtime_artifacts import make_student

from okdhp_edge.export import TARGETS, ExportError, export, resolve_config
from okdhp_edge.export.tensorrt_export import trtexec_command
from okdhp_edge.models import load_student


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return make_student(tmp_path_factory.mktemp("targets"))


def _opset(path: Path) -> int:
    return max(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))


def _matches_torch(onnx_path: Path, student: Path) -> float:
    model, spec = load_student(student)
    w, h = spec.input_size
    x = np.random.default_rng(0).normal(size=(3, 3, h, w)).astype(np.float32)
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max())


def test_jetson_nano_writes_opset_13_and_tensorrt_8_2_flags(student, tmp_path):
    result = export(student, target="jetson-nano", out_dir=tmp_path, verify_images=0)
    assert result.report["status"] == "deferred"
    assert _opset(result.artifact) == 13, "TensorRT 8.2 (JetPack 4.6) parses up to opset 13"
    assert _matches_torch(result.artifact, student) < 1e-4, "dynamic batch and exact outputs at opset 13"
    command = result.report["trtexec"]
    assert "--workspace=2048" in command and "--explicitBatch" in command and "--fp16" in command
    assert "--memPoolSize" not in command, "trtexec 8.2 has no --memPoolSize"
    notes = " ".join(result.report["notes"])
    assert "does not run there" in notes and "Python 3.6" in notes


def test_targets_pick_an_opset_their_device_accepts(student, tmp_path):
    assert resolve_config(target="jetson-orin").opset == 17, "JetPack 6.0's TensorRT 8.6 documents opset 17"
    assert resolve_config(target="jetson-nano").opset == 13
    assert resolve_config(target="cpu").opset == 18, "ONNX Runtime takes the exporter's default"
    assert resolve_config(target="jetson-nano", opset=17).opset == 17, "an explicit opset wins"
    fp32 = export(student, "onnx", "fp32", tmp_path, opset=17, verify_images=0).artifact
    assert _opset(fp32) == 17 and _matches_torch(fp32, student) < 1e-4
    _, spec = load_student(student)
    orin = trtexec_command(
        Path("m.onnx"), Path("m.engine"), spec, "int8", input_name="input", max_batch=4, trt_version="8.5"
    )
    assert "--memPoolSize=workspace:2048M" in orin and "--workspace" not in orin and "--int8" in orin


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(format="onnx", precision="int8", opset=13), ["opset 13", "INT8"]),
        (dict(format="tflite", precision="fp32", opset=15), ["opset 15", "other formats"]),
        (dict(format="onnx", precision="fp32", opset=12), ["opset 12 is too old", "13"]),
    ],
)
def test_old_opsets_only_where_they_are_built(kwargs, words):
    with pytest.raises(ExportError) as err:
        resolve_config(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_android_target_promises_no_delegates_the_runtime_lacks():
    android = TARGETS["android"]
    text = android.description + " ".join(android.notes)
    assert "NNAPI" not in android.description and "DSP" not in android.description
    assert "exposes no GPU/NNAPI delegates" in text and ".json" in text


def test_cpu_target_report_says_which_measurement_chose_onnx_int8(student, tmp_path):
    text = " ".join(TARGETS["cpu"].notes)
    for word in ("TFLite INT8", "Xeon", "AVX512-VNNI", "2026-12-07", "docs/export.md", "export_matrix.py", "ARM"):
        assert word in text
    result = export(student, precision="fp32", target="cpu", out_dir=tmp_path, verify_images=0)
    assert any("chosen over TFLite INT8" in note for note in result.report["notes"])
    assert "chosen over TFLite INT8" in (tmp_path / "export_report.md").read_text()
