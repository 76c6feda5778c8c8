"""What a new user meets first: the export CLI's answer to a checkpoint, help for every benchmark
option, and export output free of third-party noise that does not concern them."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_artifacts import make_student

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return make_student(tmp_path_factory.mktemp("first-hour"))


def _export_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "okdhp_edge.export", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_export_of_a_training_checkpoint_points_at_the_students(tmp_path):
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "checkpoint-best.pt").write_bytes(b"not a student")
    done = _export_cli(str(run / "checkpoint-best.pt"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "training checkpoint" in done.stderr
    assert str(run / "students" / "target.safetensors") in done.stderr
    done = _export_cli(str(run), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and str(run / "students" / "target.safetensors") in done.stderr


def test_every_benchmark_option_has_help():
    from okdhp_edge.runtime.benchmark import build_parser

    actions = [a for a in build_parser()._actions if a.dest != "help"]
    assert len(actions) >= 10 and all(a.help for a in actions), [a.dest for a in actions if not a.help]


def test_onnx_export_prints_no_torchvision_or_future_warnings(student, tmp_path):
    done = _export_cli(
        str(student), "--format", "onnx", "--precision", "fp32", "--verify-images", "0", "--out", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert "torchvision is not installed" not in done.stderr
    assert "FutureWarning" not in done.stderr
    assert "artifact:" in done.stdout


@pytest.mark.parametrize(
    "logger, noise",
    [
        ("torch.onnx._internal.exporter._registration", "torchvision is not installed. Skipping torchvision::nms"),
        ("torchao", "Failed to load /x/_C_mxfp8.so: Could not load this library"),
        ("coremltools", "Failed to load _MLModelProxy: No module named 'coremltools.libcoremlpython'"),
    ],
)
def test_export_drops_only_the_named_messages(logger, noise, caplog):
    import okdhp_edge.export  # noqa: F401  (installs the filters)

    with caplog.at_level(logging.WARNING, logger=logger):
        logging.getLogger(logger).warning(noise)
        logging.getLogger(logger).warning("conversion failed at operator X")
    messages = [r.getMessage() for r in caplog.records]
    assert noise not in messages
    assert "conversion failed at operator X" in messages, "the filter must not hide other messages"
