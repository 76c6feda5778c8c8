"""The checkpoint-best metric is checked against the data before training: MPII without head boxes
fails early naming the file, the field and the fix, instead of never writing checkpoint-best."""

from __future__ import annotations

import json
import shutil

import pytest

from okdhp_edge.data import build_dataset, generate_dataset
from okdhp_edge.data.synthetic import mpii_annotation_path
from okdhp_edge.eval import Evaluator
from okdhp_edge.skeleton import COCO17, MPII16
from okdhp_edge.spec import InputSpec
from okdhp_edge.train.config import ConfigError
from okdhp_edge.train.evaluate import selection_metric

SPEC = InputSpec(width=96, height=128)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("selection")
    generate_dataset(path, num_train=1, num_val=3, seed=7, progress=False)
    return path


def _without_head_boxes(root, tmp_path, keep: int = 0):
    """A copy of the set whose MPII val entries lose their head boxes (all but the first `keep`)."""
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    path = mpii_annotation_path(copy, "val")
    entries = json.loads(path.read_text())
    for entry in entries[keep:]:
        del entry["head_box"]
    path.write_text(json.dumps(entries))
    return copy, path, len(entries)


def test_mpii_without_head_boxes_fails_early_naming_file_field_and_fix(root, tmp_path):
    copy, path, _ = _without_head_boxes(root, tmp_path)
    with pytest.warns(UserWarning, match="no entry has a 'head_box'"):
        ds = build_dataset(f"mpii:{copy}", "val", SPEC, MPII16)
    assert "pckh@0.5" not in _ground_truth_metrics(ds)  # what used to happen silently
    with pytest.raises(ConfigError) as err:
        selection_metric("auto", ds)
    message = str(err.value)
    assert str(path) in message and "'head_box'" in message and "eval.metric=pck@0.2" in message
    assert "checkpoint-best" in message
    with pytest.raises(ConfigError, match="head_box"):
        selection_metric("pckh@0.5", ds)
    assert selection_metric("pck@0.2", ds) == "pck@0.2"  # the named fix is accepted


def test_some_missing_head_boxes_are_reported(root, tmp_path):
    copy, path, n = _without_head_boxes(root, tmp_path, keep=1)
    with pytest.warns(UserWarning, match=f"{n - 1} of {n} people have no 'head_box'"):
        ds = build_dataset(f"mpii:{copy}", "val", SPEC, MPII16)
    assert selection_metric("auto", ds) == "pckh@0.5"
    assert "pckh@0.5" in _ground_truth_metrics(ds)


def test_metric_must_match_the_data_kind(root, recwarn):
    mpii = build_dataset(f"mpii:{root}", "val", SPEC, MPII16)
    coco = build_dataset(f"coco:{root}", "val", SPEC, COCO17)
    assert not [w for w in recwarn if "head_box" in str(w.message)]
    assert selection_metric("auto", mpii) == "pckh@0.5"
    assert selection_metric("auto", coco) == "ap"
    with pytest.raises(ConfigError, match="needs COCO-kind data"):
        selection_metric("ap", mpii)
    with pytest.raises(ConfigError, match="needs MPII-kind data"):
        selection_metric("pckh@0.5", coco)


def _ground_truth_metrics(ds) -> dict:
    ev = Evaluator(ds)
    gt = ds.ground_truth()
    ev.add(gt["joints"][..., :2], (gt["joints"][..., 2] > 0).astype("float32"), range(len(ds)))
    return ev.compute()


def test_training_on_mpii_without_head_boxes_stops_before_the_first_epoch(root, tmp_path, capsys):
    from okdhp_edge.train.cli import main

    copy, path, _ = _without_head_boxes(root, tmp_path)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="head_box"):
        code = main(
            [
                "--preset",
                "paper-mpii",
                "--data",
                f"mpii:{copy}",
                "--out",
                str(out),
                "--batch-size",
                "1",
                "--no-progress",
                "--set",
                "data.workers=0",
            ]
        )
    assert code == 2  # bad input, found before the first epoch
    err = capsys.readouterr().err
    assert str(path) in err and "eval.metric=pck@0.2" in err
    assert not out.exists()  # nothing trained, nothing written
