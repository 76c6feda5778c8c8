"""The person detector's training CLI: the pose trainer's config style (YAML, --config, --set), one
`error:` line and exit code 2 for each mistake a new user makes, its run folder, and a run stopped
with Ctrl-C that resumes to the same weights as an uninterrupted one."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from okdhp_edge.detection.cli import main
from okdhp_edge.detection.config import load_det_config
from okdhp_edge.detection.net import DetSpec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights" / "okdhp-person" / "okdhp-person.json"


def small(out: Path, *extra: str) -> list[str]:
    """A run of a few seconds: a 128x96 network on 12 scenes, 64x64 crops, one thread, no export."""
    return [
        "--out",
        str(out),
        "--set",
        "model.width=128",
        "--set",
        "model.height=96",
        "--set",
        "data.crop=[64,64]",
        "--synthetic",
        "12",
        "--batch",
        "4",
        "--threads",
        "1",
        "--no-export",
        *extra,
    ]


@pytest.mark.parametrize(
    "args, names",
    [
        (
            ["--real", "coco:{tmp}/missing", "--synthetic", "0"],
            ["coco:{tmp}/missing", "not found", "okdhp_edge.data.label"],
        ),
        (["--real", "imagenet:/x"], ["data.real", "'imagenet:/x'", "coco:DIR"]),
        (["--real", "coco:/a", "--real-weights", "1,2"], ["data.real_weights", "2 weights for 1 real entries"]),
        (["--real", "coco:/a", "--real-weights", "-1"], ["data.real_weights", ">= 0"]),
        (["--real-weights", "one"], ["--real-weights 'one'", "one per --real"]),
        (["--resume", "{tmp}/nope.pt"], ["{tmp}/nope.pt", "checkpoint not found", "auto"]),
        (["--steps", "-5"], ["optim.steps", "-5", ">= 1"]),
        (["--steps", "0"], ["optim.steps", "0", ">= 1"]),
        (["--batch", "0"], ["optim.batch_size"]),
        (["--set", "optim.stepz=3"], ["unknown key(s) ['stepz']", "steps"]),
        (["--config", "{tmp}/none.yaml"], ["{tmp}/none.yaml", "config file not found"]),
        (["--amp", "fp16", "--device", "cpu"], ["fp16 needs a CUDA device"]),
    ],
)
def test_each_mistake_is_one_error_line_and_exit_code_2(tmp_path, capsys, args, names):
    out = tmp_path / "run"
    argv = ["--out", str(out), *[a.format(tmp=tmp_path) for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for name in names:
        assert name.format(tmp=tmp_path) in err, err
    assert not out.exists()  # nothing written before the mistake is found


def test_an_unwritable_output_is_found_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(small(blocker / "run", "--steps", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --out {blocker / 'run'}: {blocker} is a file, not a folder; pass --out a folder path"


def test_the_shell_sees_one_line_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "okdhp_edge.detection", "--out", str(tmp_path / "run"), "--steps", "-5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: okdhp_edge/configs/detector/person-det.yaml + command line: optim.steps: -5 must be >= 1"
    ]


def test_config_file_flags_and_set_merge_in_that_order(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("optim: {steps: 7, lr: 0.01}\ndata: {zoom: 0.2}\n")
    assert main(["--config", str(path), "--steps", "9", "--set", "data.zoom=0.5", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["steps"] == 9 and printed["optim"]["lr"] == 0.01 and printed["data"]["zoom"] == 0.5
    assert printed["optim"]["batch_size"] == load_det_config().optim.batch_size  # the rest from the default


def test_the_shipped_detector_s_command_still_resolves_to_its_recipe(capsys):
    """weights/okdhp-person's JSON names the command that trained it: every flag of it still means what it did."""
    record = json.loads(SHIPPED.read_text())
    argv = shlex.split(record["provenance"]["command"])[3:]
    assert main([*argv, "--print-config"]) == 0
    config, recipe = yaml.safe_load(capsys.readouterr().out), record["recipe"]
    model = {k: v for k, v in config["model"].items() if k != "init"}
    assert model == DetSpec(**record["spec"]).to_dict() and config["model"]["init"] is None  # new fields: defaults
    assert (config["optim"]["steps"], config["optim"]["batch_size"], config["optim"]["lr"]) == (
        recipe["steps"],
        recipe["batch"],
        recipe["lr"],
    )
    assert config["optim"]["weight_decay"] == recipe["weight_decay"] and config["data"]["crop"] == recipe["crop"]
    assert config["data"]["zoom_out"] == 0.0
    for key in ("synthetic", "synthetic_share", "zoom", "real_first"):
        assert config["data"][key] == recipe[key], key
    assert (config["system"]["seed"], config["system"]["threads"]) == (recipe["seed"], recipe["threads"])
    assert config["system"]["checkpoint_every"] == recipe["checkpoint_every"]


def test_init_starts_from_trained_weights_of_the_same_network(tmp_path, capsys):
    first, tuned = tmp_path / "first", tmp_path / "tuned"
    assert main(small(first, "--steps", "2")) == 0
    weights = first / "person-det.safetensors"
    # a learning rate too small to move anything: the fine-tuned weights are the ones it started from
    assert main(small(tuned, "--steps", "1", "--init", str(weights), "--lr", "1e-20")) == 0
    a, b = load_file(str(weights)), load_file(str(tuned / "person-det.safetensors"))
    learnt = [k for k in a if "running_" not in k and "num_batches" not in k]  # batch norm's statistics move anyway
    assert learnt and all(torch.allclose(a[k], b[k], atol=1e-6) for k in learnt)
    assert yaml.safe_load((tuned / "config.yaml").read_text())["model"]["init"] == str(weights)
    capsys.readouterr()
    assert main(small(tmp_path / "other", "--steps", "1", "--init", str(weights), "--set", "model.context=1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {weights}: its network") and "model.context" in err and len(err.splitlines()) == 1
    assert main(small(tmp_path / "none", "--steps", "1", "--init", str(tmp_path / "no.safetensors"))) == 2
    assert "no.safetensors: cannot load detector weights" in capsys.readouterr().err


def test_zoomed_out_crops_show_the_whole_frame_two_to_four_times_smaller():
    from okdhp_edge.detection.data import DetectionFrames, Frame

    image = np.full((192, 256, 3), 200, np.uint8)
    frame = Frame(image, np.array([[28, 16, 228, 176]], np.float32), np.zeros((192, 256), np.uint8))
    crops = DetectionFrames([frame], (256, 192), 4, zoom_out=1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        item = crops.sample(rng)
        height = np.exp(item["size"][0, 1]) * 4  # log of the side in cells, back to pixels
        assert item["mask"][0] == 1 and 160 / 4 - 1 <= height <= 160 / 2 + 1, height
    normal = DetectionFrames([frame], (256, 192), 4).sample(np.random.default_rng(0))
    assert np.exp(normal["size"][0, 1]) * 4 > 160 * 0.6 - 1  # the usual crops: scale 0.6-1.6


@pytest.mark.slow
def test_a_run_stopped_with_ctrl_c_resumes_to_the_same_weights(tmp_path):
    steps = ["--steps", "40", "--set", "system.checkpoint_every=1", "--set", "system.log_every=5"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(small(whole, *steps)) == 0
    # SIGINT as a terminal delivers it (a child may inherit an ignored SIGINT from the test process)
    as_from_a_terminal = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('okdhp_edge.detection', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", as_from_a_terminal, *small(cut, *steps)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (cut / "checkpoint-last.pt").is_file():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: saved" in err, err[-2000:]
    stopped_at = torch.load(cut / "checkpoint-last.pt", weights_only=True)["step"]
    assert 1 <= stopped_at < 40
    assert main(small(cut, *steps, "--resume", "auto")) == 0
    a, b = (load_file(str(run / "person-det.safetensors")) for run in (whole, cut))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (whole, cut)]
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]] == list(range(5, 41, 5))
    assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]]
    # the run folder's config.yaml is a config file: it reads back as the run's config
    assert load_det_config(cut / "config.yaml").to_dict() == load_det_config(whole / "config.yaml").to_dict()


def test_the_any_scene_detector_s_stages_still_resolve_to_its_recipe(capsys):
    """weights/okdhp-any's JSON names its seven training runs; every flag of each still parses, and the
    last one resolves to the recipe recorded beside the weights."""
    record = json.loads((ROOT / "weights" / "okdhp-any" / "okdhp-any.json").read_text())
    stages = record["provenance"]["stages"]
    assert len(stages) == 7 and "--init" not in stages[0] and all("--init" in s for s in stages[1:])
    for stage in stages:
        assert main([*shlex.split(stage)[3:], "--print-config"]) == 0
        config = yaml.safe_load(capsys.readouterr().out)
    recipe = record["recipe"]
    assert {k: v for k, v in config["model"].items() if k != "init"} == {
        k: v for k, v in recipe["model"].items() if k != "init"
    }
    assert config["optim"] == recipe["optim"] and config["data"]["real"] == recipe["data"]["real"]
    assert config["data"]["real_weights"] == recipe["data"]["real_weights"] == record["data"]["real_weights"]
    for key in ("synthetic", "synthetic_share", "zoom", "zoom_out", "crop"):
        assert config["data"][key] == recipe["data"][key], key


def test_real_weights_give_each_entry_its_share_of_the_real_crops():
    from okdhp_edge.detection.data import Frame
    from okdhp_edge.detection.train import _sources

    def frames(n: int) -> list[Frame]:
        return [Frame(np.zeros((64, 64, 3), np.uint8), np.zeros((0, 4), np.float32), np.zeros((64, 64), np.uint8))] * n

    overrides = {"data": {"synthetic": 0, "real": ["coco:/a", "coco:/b", "coco:/c"], "crop": [64, 64]}}
    config = load_det_config(overrides=overrides)
    (pooled,) = _sources(config, [frames(90)])  # no weights: one pool, every frame alike
    assert len(pooled[0]) == 90 and pooled[1] == 1.0
    overrides["data"]["real_weights"] = [1, 3, 0]
    weighted = _sources(load_det_config(overrides=overrides), [frames(90), frames(5), frames(7)])
    assert [(len(crops), share) for crops, share in weighted] == [(90, 0.25), (5, 0.75)]  # a 0 weight drops its entry


def test_weighted_real_entries_train_end_to_end_and_are_recorded(tmp_path):
    import cv2

    from okdhp_edge.data.label import LabelConfig
    from okdhp_edge.data.teachers.box import Nobody, box

    entries = []
    for name, count in (("a", 3), ("b", 2)):
        folder = tmp_path / f"frames-{name}"
        folder.mkdir()
        for i in range(count):
            cv2.imwrite(str(folder / f"{i}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
        box([folder], tmp_path / name, teacher=Nobody(), config=LabelConfig(val_fraction=0))
        entries += ["--real", f"coco:{tmp_path / name}"]
    out = tmp_path / "run"
    assert main(small(out, "--steps", "1", "--synthetic", "0", *entries, "--real-weights", "1,4")) == 0
    data = json.loads((out / "person-det.json").read_text(encoding="utf-8"))["data"]
    assert data["real_frames"] == 5 and data["real_weights"] == [1.0, 4.0]
