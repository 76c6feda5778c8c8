"""The FAU ensemble as a model file: it rebuilds OKDHPNet's ensemble exactly, loads through the
students' loader, keeps the students' on-disk format as it was, and bad files are named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export import one_thread  # noqa: F401  (autouse: one torch thread in this module)

from okdhp_edge.models import (
    EnsembleNet,
    HourglassNet,
    OKDHPNet,
    StudentFileError,
    describe_ensemble,
    describe_student,
    extract_student,
    get_preset,
    load_student,
    save_student,
)
from okdhp_edge.spec import ArchSpec, EnsembleArchSpec, ModelSpec, SpecError
from okdhp_edge.train.config import load_config
from okdhp_edge.train.ensemble import main as ensemble_main
from okdhp_edge.trainkit.checkpoint import save_checkpoint

PRESET = get_preset("tiny")


@pytest.fixture(scope="module")
def net() -> OKDHPNet:
    """The tiny preset's training net with BatchNorm statistics and FAU weights off their defaults."""
    torch.manual_seed(0)
    net = OKDHPNet(PRESET.network_spec())
    with torch.no_grad():
        net.fau.fc[2].weight.normal_(0, 0.5)  # make the branch weights differ per image and joint
        net.train()
        net(torch.randn(4, 3, 128, 96))
    return net.eval()


@pytest.fixture(scope="module")
def files(net, tmp_path_factory) -> tuple[Path, Path]:
    """(ensemble, student) weights written side by side."""
    root = tmp_path_factory.mktemp("files")
    ensemble = save_student(net, describe_ensemble(PRESET, net.spec, {"note": "test"}), root / "ensemble")
    student = save_student(extract_student(net, 2), describe_student(PRESET, 2), root / "student")
    return ensemble, student


def test_the_ensemble_file_computes_the_training_net_s_ensemble(net, files):
    model, spec = load_student(files[0])
    assert isinstance(model, EnsembleNet) and not model.training
    assert isinstance(spec.arch, EnsembleArchSpec) and spec.arch.branches == [[2, 64], [1, 48], [1, 32]]
    x = torch.randn(3, 3, 128, 96)
    with torch.no_grad():
        out, heatmaps = net(x), model(x)
    assert not torch.allclose(out["weights"][0], out["weights"][1])  # the FAU really weighs per image
    assert torch.equal(heatmaps, out["ensemble"])
    assert heatmaps.shape == (3, 17, *spec.heatmap_size[::-1])  # a student's (N, K, h, w) contract
    assert spec.params == sum(p.numel() for p in net.parameters()) and spec.compression_rate > 1
    assert spec.provenance == {"preset": "tiny", "note": "test"}


def test_students_and_ensembles_load_through_one_loader_and_one_predictor(files):
    from okdhp_edge.runtime import Predictor

    (ensemble, _), (student, _) = load_student(files[0]), load_student(files[1])
    assert isinstance(ensemble, EnsembleNet) and isinstance(student, HourglassNet)
    image = np.random.default_rng(0).integers(0, 255, (200, 160, 3), np.uint8)
    for path in files:
        result = Predictor(path).predict(image, np.array([[20, 10, 140, 190]], np.float32))
        assert result.keypoints.shape == (1, 17, 2)


def test_a_student_file_keeps_its_on_disk_format(files):
    arch = json.loads(files[1].with_suffix(".json").read_text())["arch"]
    assert sorted(arch) == [
        "branch_channels",
        "branch_stacks",
        "hourglass_depth",
        "num_joints",
        "trunk_channels",
        "trunk_stacks",
        "type",
    ]
    del arch["type"]  # a spec without a type is a plain hourglass student
    assert isinstance(
        ModelSpec.from_dict({**json.loads(files[1].with_suffix(".json").read_text()), "arch": arch}).arch, ArchSpec
    )


def _variant(files, tmp_path: Path, name: str, edit) -> Path:
    """A copy of the ensemble files whose JSON spec went through `edit`."""
    data = json.loads(files[0].with_suffix(".json").read_text())
    edit(data["arch"])
    (tmp_path / f"{name}.json").write_text(json.dumps(data))
    (tmp_path / f"{name}.safetensors").write_bytes(files[0].read_bytes())
    return tmp_path / f"{name}.safetensors"


def test_a_mismatched_or_corrupt_ensemble_file_is_named(files, tmp_path):
    fewer = _variant(files, tmp_path, "fewer", lambda a: a.update(branches=[[2, 64], [1, 48]]))
    with pytest.raises(
        StudentFileError, match=r"fewer\.safetensors: weights do not match the architecture in .*fewer\.json"
    ):
        load_student(fewer)
    wider = _variant(files, tmp_path, "wider", lambda a: a.update(fau_reduction=2))
    with pytest.raises(StudentFileError, match=r"wider\.safetensors: .*tensor 'fau\.fc\.0\.\w+' has shape"):
        load_student(wider)
    bad = _variant(files, tmp_path, "bad", lambda a: a.update(branches=[[2, "64"]]))
    with pytest.raises(StudentFileError, match=r"bad\.json: arch\.branches: \[2, '64'\] is not \[stacks, channels\]"):
        load_student(bad)
    unknown = _variant(files, tmp_path, "unknown", lambda a: a.update(type="transformer"))
    with pytest.raises(
        StudentFileError, match=r"unknown\.json: arch: unknown type 'transformer'; valid: hourglass, okdhp-ensemble"
    ):
        load_student(unknown)
    data = files[0].read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 3])
    (tmp_path / "cut.json").write_text(files[0].with_suffix(".json").read_text())
    with pytest.raises(StudentFileError, match=r"cut\.safetensors: cannot read safetensors .*corrupt or truncated"):
        load_student(tmp_path / "cut")
    with pytest.raises(SpecError, match="arch: unknown field"):  # student fields are not an ensemble's
        ModelSpec.from_dict(
            {
                **json.loads(files[0].with_suffix(".json").read_text()),
                "arch": {"type": "okdhp-ensemble", "branches": [[1, 8]], "branch_stacks": 2},
            }
        )


def _checkpoint(net: OKDHPNet, path: Path, mode: str = "okdhp") -> Path:
    """A checkpoint as the trainer writes one after 2 epochs of `net`."""
    cfg = load_config("tiny", overrides={"mode": mode})
    network = {"preset": "tiny", "mode": mode, "target": 2, "branches": [[2, 64], [1, 48], [1, 32]]}
    history = [{"epoch": 1, "val": {"ensemble": {"pck@0.2": 50.0}}}]
    return save_checkpoint(
        path, {"model": net.state_dict(), "config": cfg.to_dict(), "network": network, "epoch": 2, "history": history}
    )


def test_the_ensemble_command_writes_it_from_a_run_s_checkpoint(net, tmp_path, capsys):
    run = tmp_path / "old-run"
    _checkpoint(net, run / "checkpoint-last.pt")
    assert ensemble_main([str(run)]) == 0
    assert f"python -m okdhp_edge.export {run / 'ensemble.safetensors'}" in capsys.readouterr().out
    model, spec = load_student(run / "ensemble.safetensors")
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(model(x), net(x)["ensemble"])
    assert spec.provenance["run"] == "old-run" and spec.provenance["checkpoint"] == "checkpoint-last.pt"
    assert spec.provenance["epochs"] == 2 and spec.provenance["metrics"] == {"pck@0.2": 50.0}

    _checkpoint(net, tmp_path / "single" / "checkpoint-last.pt", mode="independent")
    assert ensemble_main([str(tmp_path / "single"), "--out", str(tmp_path / "x")]) == 1
    assert "'independent' run has no trained FAU ensemble" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert ensemble_main([str(tmp_path / "nowhere")]) == 1
    assert "nowhere: checkpoint not found" in capsys.readouterr().err
