"""Export of the FAU ensemble (trunk, every branch, the FAU's convolutions, Linear layers, softmax
and global mean): ONNX FP32 matches torch, FP16 to half precision, INT8 calibrates and verifies,
the runtime and the labeller take the artifact as a teacher. The ensemble is a micro OKDHP net
(two branches, 48x64) fitted for a few dozen steps, so its keypoints mean something; every
converter is the real one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from runtime_artifacts import person_frame
from test_export import fit, one_thread  # noqa: F401  (one_thread: autouse, one torch thread in this module)

from okdhp_edge.export import export, read_artifact_spec
from okdhp_edge.export.__main__ import main as export_main
from okdhp_edge.models import BranchSpec, EnsembleNet, Preset, describe_ensemble, load_student, save_student
from okdhp_edge.runtime import Predictor

MICRO = Preset(
    "micro",
    "test-sized OKDHP net",
    "coco17",
    (48, 64),
    1,
    16,
    (BranchSpec(1, 24), BranchSpec(1, 16)),
    hourglass_depth=2,
)
DATA = dict(calib_images=16, verify_images=24, synthetic_images=24, num_threads=1)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """A fitted micro ensemble file and its synthetic val data cache."""
    root = tmp_path_factory.mktemp("ensemble-export")
    torch.manual_seed(0)
    net = EnsembleNet(MICRO.network_spec())
    spec = describe_ensemble(MICRO)
    fit(net, spec, root / "cache")
    return {"root": root, "cache": root / "cache", "ensemble": save_student(net, spec, root / "run" / "ensemble")}


def run_export(workspace, precision: str, **options):
    return export(
        workspace["ensemble"],
        "onnx",
        precision,
        workspace["root"] / "out",
        cache_dir=workspace["cache"],
        **DATA,
        **options,
    )


@pytest.fixture(scope="module")
def results(workspace):
    return {p: run_export(workspace, p) for p in ("fp32", "fp16", "int8")}


def test_onnx_fp32_of_the_ensemble_matches_torch(results, workspace):
    fp32 = results["fp32"]
    assert fp32.ok and fp32.artifact.name == "ensemble-fp32.onnx"
    check = fp32.report["verification"]
    assert check["ran"] and check["heatmap_max_abs_diff"] < 1e-4 and check["kp_agreement@0.05"] == 100.0
    assert check["torch"]["pck@0.2"] > 30  # fitted: the comparison is about real keypoints
    ops = {n.op_type for n in onnx.load(str(fp32.artifact)).graph.node}
    assert {"Gemm", "Softmax", "ReduceMean"} <= ops and "BatchNormalization" not in ops  # the FAU, BN folded
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 48)).astype(np.float32)
    model, _ = load_student(workspace["ensemble"])
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(Predictor(fp32.artifact).backend.run(x), expected, atol=1e-4)


def test_onnx_fp16_of_the_ensemble_matches_torch_to_half_precision(results):
    check = results["fp16"].report["verification"]
    assert results["fp16"].ok and check["heatmap_max_abs_diff"] < 1e-2 and check["kp_agreement@0.05"] >= 95


def test_onnx_int8_of_the_ensemble_quantizes_the_fau_and_keeps_the_keypoints(results):
    int8 = results["int8"]
    assert int8.ok, int8.report.get("failure")
    graph = onnx.load(str(int8.artifact)).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert gemms and all(producers[n.input[1]] == "DequantizeLinear" for n in gemms)  # INT8 weights in the FAU
    details = read_artifact_spec(int8.artifact).export.details
    assert details["equalized"] is True and details["equalization"]["domains"] > 0
    check = int8.report["verification"]
    # the students' bar (tests/test_export.py): 0.05 of the box is under one heatmap pixel here
    assert check["kp_agreement@0.05"] >= 65.0 and check["drop"] < 10.0


def test_the_runtime_and_the_labeller_take_the_exported_ensemble_as_a_teacher(results, workspace, tmp_path, capsys):
    from okdhp_edge.data.label import main as label_main

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"f{i}.png"), person_frame(seed=i))
    teacher = results["int8"].artifact
    result = Predictor(teacher).predict(cv2.imread(str(frames / "f0.png")))
    assert result.keypoints.shape == (1, 17, 2)
    assert (
        label_main([str(frames), "--teacher", str(teacher), "--out", str(tmp_path / "labels"), "--min-score", "0"]) == 0
    )
    assert "2 frames, 2 people" in capsys.readouterr().out
    assert (tmp_path / "labels" / "annotations" / "person_keypoints_train.json").is_file()


def test_exporting_a_checkpoint_points_to_the_ensemble(workspace, capsys):
    checkpoint = workspace["root"] / "run" / "checkpoint-last.pt"
    assert export_main([str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{workspace['root'] / 'run' / 'ensemble.safetensors'}" in err and "python -m okdhp_edge.train.ensemble" in err
    )
