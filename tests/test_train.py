"""Training: config validation, branch choice, one optimisation step, and small end-to-end runs
(artifacts, student files, resume, non-finite loss, Ctrl-C, the baseline modes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from okdhp_edge.codec import HeatmapCodec
from okdhp_edge.models import PRESETS, OKDHPNet, OKDHPSpec, get_preset, load_student
from okdhp_edge.train import ConfigError, OKDHPLoss, choose_branches, load_config
from okdhp_edge.train.cli import main
from okdhp_edge.train.evaluate import predict_heads
from okdhp_edge.train.network import SingleNet, network_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic-cache")


def small_run(cache: Path, out: Path, *extra: str) -> list[str]:
    """CLI arguments for a tiny run: ~20 training people, 1 thread (robust on a shared CPU), constant lr
    (so a run's trajectory does not depend on its epoch count)."""
    return [
        "--out",
        str(out),
        "--no-progress",
        "--batch-size",
        "8",
        "--set",
        f"data.cache_dir={cache}",
        "--set",
        "data.train_images=12",
        "--set",
        "data.val_images=4",
        "--set",
        "optim.schedule=step",
        "--set",
        "optim.lr_steps=[]",
        "--set",
        "optim.warmup_iters=0",
        "--set",
        "system.threads=1",
        "--set",
        "system.amp=off",
        "--set",
        "system.channels_last=false",
        "--set",
        "eval.samples=2",
        "--set",
        "loss.ramp_epochs=2",
        *extra,
    ]


# ----------------------------------------------------------------------------- config


def test_default_config_is_tiny_okdhp_on_synthetic_cpu_friendly_data(capsys):
    cfg = load_config()
    assert (cfg.model.preset, cfg.mode, cfg.data.source, cfg.system.device) == ("tiny", "okdhp", "synthetic", "auto")
    assert main(["--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "preset: tiny" in printed and "kl_temperature" in printed


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_ships_a_valid_yaml(name):
    cfg = load_config(name)
    assert cfg.model.preset == name
    assert network_spec(get_preset(name), cfg.model)[0].num_joints == get_preset(name).get_skeleton().num_keypoints


def test_the_preset_registry_and_the_shipped_recipes_match_one_to_one():
    from importlib import resources

    import yaml

    shipped = sorted(p.name for p in (resources.files("okdhp_edge") / "configs").iterdir() if p.name.endswith(".yaml"))
    assert sorted(p.recipe for p in PRESETS.values()) == shipped  # no recipe without a preset, no preset without one
    for name, preset in PRESETS.items():
        assert yaml.safe_load(preset.recipe_text())["model"]["preset"] == name  # each recipe names its own network


def test_the_shipped_recipe_takes_the_fine_tuning_data_of_the_docs(capsys):
    """docs/training.md's fine-tuning command: the shipped student's recipe with any mixture (its
    sampling weights travel with its data command, not in the recipe)."""
    recipe = Path(__file__).resolve().parents[1] / "weights" / "real-tiny" / "recipe.yaml"
    args = ["--config", str(recipe), "--mode", "single", "--data", "rendered+coco:/data/mine", "--print-config"]
    assert main(args) == 0 and "preset: tiny" in capsys.readouterr().out


def test_a_user_yaml_naming_a_network_preset_gets_that_preset_s_recipe_under_it(tmp_path, capsys):
    """As `--config weights/real-tiny/recipe.yaml` does: model.preset tiny, the rest of tiny.yaml kept."""
    path = tmp_path / "recipe.yaml"
    path.write_text("model: {preset: tiny, target: 0}\ndata: {weights: [1, 2]}\noptim: {epochs: 10}\n")
    mixture = {"data": {"source": "synthetic+coco:/data/mine"}}
    cfg = load_config(config_file=path, overrides=mixture)
    tiny = load_config("tiny")
    assert (cfg.model.preset, cfg.model.target, cfg.optim.epochs, cfg.data.weights) == ("tiny", 0, 10, [1.0, 2.0])
    assert (cfg.optim.lr, cfg.loss, cfg.data.augment) == (tiny.optim.lr, tiny.loss, tiny.data.augment)
    assert load_config("edge", path, mixture).model.preset == "edge"  # --preset still wins over the file
    assert main(["--config", str(path), "--data", "synthetic+coco:/data/mine", "--print-config"]) == 0
    assert "preset: tiny" in capsys.readouterr().out
    with pytest.raises(
        ConfigError, match="no config for preset 'huge'; valid presets: edge, paper-mpii, paper-unbalanced, tiny"
    ):
        load_config(overrides={"model": {"preset": "huge"}})


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"optim": {"lrr": 1}}, r"optim: unknown key\(s\) \['lrr'\]; valid: epochs, batch_size, lr"),
        ({"bogus": {}}, r"unknown key\(s\) \['bogus'\]; valid: mode, model, data"),
        ({"mode": "distill"}, r"mode: 'distill' is not valid; valid: okdhp, independent, single"),
        ({"optim": {"epochs": "ten"}}, r"optim.epochs: expected an integer"),
        ({"optim": {"schedule": "linear"}}, r"valid: step, cosine"),
        ({"system": {"amp": "yes"}}, r"system.amp: .yes. is not valid; valid: auto, off, bf16, fp16"),
        ({"system": {"device": "tpu"}}, r"valid: auto, cpu, cuda, cuda:N"),
        ({"model": {"branches": ["2x64", "big"]}}, r"'big' is not STACKSxWIDTH"),
        ({"model": {"branches": ["2x64"], "compression": [1.0]}}, r"either branches or compression"),
        ({"model": {"target": 5}}, r"model.target: 5 is not a branch index; valid: 0..2"),
        ({"model": {"trunk_grad": "branch"}}, r"model.trunk_grad: 'branch' is not valid; valid: all, target"),
        ({"model": {"ensemble_grad": "none"}}, r"model.ensemble_grad: 'none' is not valid; valid: all, fau"),
        (
            {"data": {"source": "imagenet"}},
            r"valid: synthetic, synthetic:DIR, rendered, rendered:DIR, pasted, pasted:CUTOUTS, coco:PATH or mpii:PATH",
        ),
        ({"data": {"augment": {"rot": 3}}}, r"data.augment: unknown key\(s\) \['rot'\]; valid: scale, rotation"),
        ({"loss": {"kl_temperature": 0}}, r"loss.kl_temperature: must be > 0"),
        ({"loss": {"kl_weights": [0, 1]}}, r"kl_weights: \[0.0, 1.0\]: need one factor >= 0 per branch \(3 branches\)"),
        ({"loss": {"kl_weights": [0, -1, 1]}}, r"loss.kl_weights: .*need one factor >= 0"),
        ({"data": {"absent_weight": 2}}, r"data.absent_weight: must be in \[0, 1\]"),
    ],
)
def test_config_errors_name_the_key_and_the_valid_values(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)


def test_user_yaml_merges_over_the_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model: {preset: edge}\noptim: {lr: 0.001}\ndata: {augment: {rotation: 10.0}}\n")
    cfg = load_config(config_file=path)
    assert cfg.model.preset == "edge" and cfg.optim.lr == 0.001
    assert cfg.data.augment["rotation"] == 10.0 and cfg.data.augment["half_body_prob"] == 0.3  # rest of edge.yaml kept
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="bad.yaml: expected a mapping"):
        load_config(config_file=tmp_path / "bad.yaml")


def test_compression_picks_branches_close_to_the_requested_cost():
    preset = get_preset("tiny")
    choices = choose_branches(preset, [1.0, 0.5])
    assert (choices[0].branch.stacks, choices[0].branch.channels) == (2, 64)
    assert choices[0].achieved == pytest.approx(1.0)
    assert abs(choices[1].achieved - 0.5) < 0.05
    spec, _ = network_spec(preset, load_config(overrides={"model": {"compression": [1.0, 0.5]}}).model)
    assert spec.branches == [c.branch for c in choices]


# ----------------------------------------------------------------------------- one step


def test_one_okdhp_step_decreases_the_loss_on_a_fixed_batch(one_thread):
    torch.manual_seed(0)
    spec = OKDHPSpec(num_joints=4, trunk_stacks=1, trunk_channels=16, branches=[(2, 16), (1, 8)], hourglass_depth=2)
    net = OKDHPNet(spec)
    codec = HeatmapCodec((32, 32), (8, 8))
    rng = np.random.default_rng(0)
    targets = [codec.encode(rng.uniform(4, 28, (4, 2)), np.ones(4)) for _ in range(4)]
    target = torch.from_numpy(np.stack([t[0] for t in targets]))
    weight = torch.from_numpy(np.stack([t[1] for t in targets]))
    images = torch.randn(4, 3, 32, 32)
    loss_fn = OKDHPLoss("okdhp", kl_temperature=0.1, ramp_epochs=0)  # ramp = 1: every term active
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = loss_fn(net(images), target, weight, epoch=0)
    assert before.as_dict()["kl"] > 0 and before.as_dict()["mse_ensemble"] > 0
    optimizer.zero_grad()
    before.total.backward()
    assert all(p.grad is not None for p in net.fau.parameters())  # the ensemble MSE trains the FAU
    optimizer.step()
    after = loss_fn(net(images), target, weight, epoch=0)
    assert after.total.item() < before.total.item()


def test_predict_heads_returns_the_named_branch_and_the_ensemble(one_thread):
    torch.manual_seed(0)
    net = OKDHPNet(
        OKDHPSpec(
            num_joints=3, trunk_stacks=1, trunk_channels=16, branches=[(1, 16), (1, 8), (1, 8)], hourglass_depth=2
        )
    ).eval()
    x = torch.randn(2, 3, 32, 32)
    heads = predict_heads(net, x, ["b2", "ensemble"])
    with torch.no_grad():
        assert np.array_equal(heads["b2"], net.branch_forward(x, 2).numpy())
        assert np.array_equal(heads["ensemble"], net(x)["ensemble"].numpy())
    single = SingleNet(net.spec.student_arch(1)).eval()
    with torch.no_grad():
        assert np.array_equal(predict_heads(single, x, ["b1"])["b1"], single.forward_all(x)[-1].numpy())


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def run_dir(cache_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "okdhp"
    assert main(small_run(cache_dir, out, "--epochs", "2")) == 0
    return out


def test_run_writes_every_artifact(run_dir):
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "metrics.json",
        "curves.png",
        "samples.png",
        "checkpoint-last.pt",
        "checkpoint-best.pt",
    ):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in lines] == [0, 1]
    assert set(lines[-1]["val"]) == {"b0", "b1", "b2", "ensemble"}
    assert lines[-1]["train"]["kl"] > 0 and lines[-1]["train"]["loss"] > 0
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report["target"] == "tiny-b2-1x32"
    rows = {row["head"]: row for row in report["rows"]}
    assert set(rows) == {"b0", "b1", "b2", "ensemble", "ref"}
    for head in ("b0", "b1", "b2"):
        assert {"pck@0.2", "pck@0.1", "ap", "params", "gmacs", "compression_rate", "stacks", "width"} <= set(rows[head])
        assert 0 <= rows[head]["pck@0.1"] <= rows[head]["pck@0.2"] <= 100
    assert rows["ref"]["params"] == 0 and 0 < rows["ref"]["pck@0.2"] < 100  # the mean-pose guess
    assert rows["b0"]["compression_rate"] == 1.0 and rows["b2"]["compression_rate"] < rows["b1"]["compression_rate"] < 1
    assert load_config(config_file=run_dir / "config.yaml").to_dict()["optim"]["epochs"] == 2
    state = torch.load(run_dir / "checkpoint-last.pt", weights_only=True)  # no pickled objects inside
    assert state["epoch"] == 2 and state["network"]["branches"] == [[2, 64], [1, 48], [1, 32]]


def test_students_load_back_with_outputs_equal_to_their_branch(run_dir, one_thread):
    state = torch.load(run_dir / "checkpoint-last.pt", weights_only=True)
    net = OKDHPNet(get_preset("tiny").network_spec())
    net.load_state_dict(state["model"])
    net.eval()
    x = torch.randn(2, 3, 128, 96)
    students = sorted((run_dir / "students").glob("*.safetensors"))
    assert [p.stem for p in students] == ["target", "tiny-b0-2x64", "tiny-b1-1x48", "tiny-b2-1x32"]
    alias, alias_spec = load_student(students.pop(0))  # target.* is the target student (b2) under a fixed name
    assert alias_spec.name == "tiny-b2-1x32" and alias_spec.provenance["target"] is True
    with torch.no_grad():
        assert torch.equal(alias(x), net.branch_forward(x, 2))
        for b, path in enumerate(students):
            student, spec = load_student(path)
            assert spec.provenance["branch"] == b and spec.provenance["mode"] == "okdhp"
            assert spec.provenance["target"] == (b == 2) and "pck@0.2" in spec.provenance["metrics"]
            assert torch.equal(student(x), net.branch_forward(x, b))


def test_an_okdhp_run_writes_its_fau_ensemble_beside_the_students(run_dir, one_thread):
    from okdhp_edge.train.network import init_from_students

    state = torch.load(run_dir / "checkpoint-last.pt", weights_only=True)
    net = OKDHPNet(get_preset("tiny").network_spec())
    net.load_state_dict(state["model"])
    net.eval()
    ensemble, spec = load_student(run_dir / "ensemble.safetensors")
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(ensemble(x), net(x)["ensemble"])
    assert (
        spec.arch.type == "okdhp-ensemble"
        and spec.provenance["mode"] == "okdhp"
        and "pck@0.2" in spec.provenance["metrics"]
    )
    row = next(r for r in json.loads((run_dir / "metrics.json").read_text())["rows"] if r["head"] == "ensemble")
    assert row["params"] == spec.params
    with pytest.raises(ConfigError, match="is a FAU ensemble"):
        init_from_students(
            OKDHPNet(get_preset("tiny").network_spec()), [str(run_dir / "ensemble.safetensors")], (96, 128)
        )


def test_init_from_students_restores_the_run_s_network_and_fine_tunes(run_dir, cache_dir, tmp_path, capsys):
    from okdhp_edge.train.network import init_from_students

    state = torch.load(run_dir / "checkpoint-last.pt", weights_only=True)["model"]
    students = [str(p) for p in sorted((run_dir / "students").glob("tiny-b*.safetensors"))]
    net = OKDHPNet(get_preset("tiny").network_spec())
    assert len(init_from_students(net, students[::-1], (96, 128))) == 3  # any order: each finds its branch
    restored = net.state_dict()
    assert all(torch.equal(restored[k], v) for k, v in state.items() if not k.startswith("fau."))
    with pytest.raises(ConfigError, match="no free branch 2x64"):
        init_from_students(OKDHPNet(get_preset("tiny").network_spec()), [students[0], students[0]], (96, 128))
    with pytest.raises(ConfigError, match="input 96x128"):
        init_from_students(OKDHPNet(get_preset("edge").network_spec()), students[:1], (192, 256))
    single = SingleNet(get_preset("tiny").network_spec().student_arch(0))
    init_from_students(single, students[:1], (96, 128))
    with pytest.raises(ConfigError, match="single-mode"):
        init_from_students(single, students[1:2], (96, 128))
    # the CLI: a fine-tuning run starts where the students left off (its first loss is the trained one's)
    out = tmp_path / "tuned"
    assert (
        main(small_run(cache_dir, out, "--epochs", "1", "--init", str(run_dir / "students"))) == 0
    )  # a folder: its students
    assert (
        "initialised from tiny-b0-2x64.safetensors -> trunk + b0; tiny-b1-1x48.safetensors -> trunk + b1"
        in capsys.readouterr().out
    )
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["train"]["mse_b2"]
    fresh = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])["train"]["mse_b2"]
    assert first < fresh


def test_resume_reproduces_the_uninterrupted_run(run_dir, cache_dir, tmp_path):
    out = tmp_path / "resumed"
    assert main(small_run(cache_dir, out, "--epochs", "1")) == 0
    assert torch.load(out / "checkpoint-last.pt", weights_only=True)["epoch"] == 1
    assert main(small_run(cache_dir, out, "--epochs", "2", "--resume", "auto")) == 0
    a = torch.load(run_dir / "checkpoint-last.pt", weights_only=True)
    b = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert b["epoch"] == 2 and len(b["history"]) == 2
    for key, value in a["model"].items():
        assert torch.allclose(value.float(), b["model"][key].float(), rtol=0, atol=1e-6), key
    assert a["history"][1]["train"]["loss"] == pytest.approx(b["history"][1]["train"]["loss"], rel=1e-5)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_with_another_network_is_refused(run_dir, cache_dir, tmp_path, capsys):
    code = main(
        small_run(
            cache_dir,
            tmp_path / "x",
            "--epochs",
            "3",
            "--branches",
            "1x16,1x8",
            "--resume",
            str(run_dir / "checkpoint-last.pt"),
        )
    )
    assert code == 2  # a bad checkpoint is bad input
    assert "differs from this run's" in capsys.readouterr().err


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(run_dir, cache_dir, tmp_path, capsys):
    out = tmp_path / "nan"
    out.mkdir()
    (out / "checkpoint-last.pt").write_bytes((run_dir / "checkpoint-last.pt").read_bytes())
    before = (out / "checkpoint-last.pt").read_bytes()
    code = main(small_run(cache_dir, out, "--epochs", "3", "--lr", "1e30", "--resume", "auto"))
    assert code == 1
    err = capsys.readouterr().err
    assert "non-finite loss at epoch 3" in err and "is left as it was" in err
    assert (out / "checkpoint-last.pt").read_bytes() == before


def test_ctrl_c_saves_a_checkpoint_and_exits_130(cache_dir, tmp_path):
    out = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # SIGINT as a terminal delivers it: a child inherits an ignored SIGINT from its parent (here the test
    # process, where a library or a background shell may have set it), and Python then keeps ignoring it
    as_from_a_terminal = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('okdhp_edge.train', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", as_from_a_terminal, *small_run(cache_dir, out, "--epochs", "50")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 90
    while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: saved" in err
    state = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert state["interrupted"] is True and state["epoch"] >= 1


def test_single_mode_trains_one_student_and_independent_mode_has_no_ensemble(cache_dir, tmp_path):
    single = tmp_path / "single"
    assert main(small_run(cache_dir, single, "--epochs", "1", "--mode", "single", "--set", "eval.samples=0")) == 0
    assert sorted(p.name for p in (single / "students").glob("*.safetensors")) == [
        "target.safetensors",
        "tiny-b2-1x32.safetensors",
    ]
    rows = json.loads((single / "metrics.json").read_text())["rows"]
    assert [r["head"] for r in rows] == ["b2", "ref"]
    student, spec = load_student(single / "students" / "tiny-b2-1x32")
    assert spec.provenance["mode"] == "single" and spec.arch.branch_channels == 32
    assert not (single / "ensemble.safetensors").exists()  # no FAU without branches
    independent = tmp_path / "independent"
    assert (
        main(small_run(cache_dir, independent, "--epochs", "1", "--mode", "independent", "--set", "eval.samples=0"))
        == 0
    )
    rows = json.loads((independent / "metrics.json").read_text())["rows"]
    assert [r["head"] for r in rows] == ["b0", "b1", "b2", "ref"]
    assert not (independent / "ensemble.safetensors").exists()  # its FAU is never trained
    history = [json.loads(line) for line in (independent / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["train"]["kl"] == 0.0 and history[0]["train"]["mse_ensemble"] == 0.0


# ----------------------------------------------------------------------------- speed switches and run hygiene


def test_amp_modes_are_checked_against_the_device():
    from okdhp_edge.trainkit.speed import AmpError, amp_candidates, native_bf16

    cpu = torch.device("cpu")
    with pytest.raises(AmpError, match="fp16 needs a CUDA device"):
        amp_candidates("fp16", cpu)
    assert amp_candidates("auto", cpu) == (["off", "bf16"] if native_bf16(cpu) else ["off"])
    assert amp_candidates("off", cpu) == ["off"]
    # configs written before amp modes (amp: true / false) still load
    assert load_config(overrides={"system": {"amp": False}}).system.amp == "off"
    assert load_config(overrides={"system": {"amp": True}}).system.amp == "auto"


def test_measured_speed_switches_are_recorded_and_kept_on_resume(cache_dir, tmp_path, capsys):
    out = tmp_path / "auto"
    auto = ("--set", "system.amp=auto", "--set", "system.channels_last=null", "--set", "eval.samples=0")
    assert main(small_run(cache_dir, out, "--epochs", "1", *auto)) == 0
    log = capsys.readouterr().out
    assert "speed switches measured on this device" in log and "fp32, NCHW" in log and "fp32, channels_last" in log
    speed = torch.load(out / "checkpoint-last.pt", weights_only=True)["speed"]
    assert speed["device"] == "cpu" and speed["amp"] in ("off", "bf16") and speed["threads"] == 1
    assert main(small_run(cache_dir, out, "--epochs", "2", *auto, "--resume", "auto")) == 0
    log = capsys.readouterr().out
    assert "speed switches kept from the checkpoint" in log and "speed switches measured" not in log
    assert torch.load(out / "checkpoint-last.pt", weights_only=True)["speed"] == speed


def test_cuda_graphs_on_the_cpu_train_eagerly_and_say_why(cache_dir, tmp_path, capsys):
    out = tmp_path / "graphs"
    assert main(small_run(cache_dir, out, "--epochs", "1", "--cuda-graphs", "on", "--set", "eval.samples=0")) == 0
    log = capsys.readouterr().out
    assert "system.cuda_graphs on: training eagerly, CUDA graphs cannot run here: CUDA graphs need a CUDA device" in log
    state = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert state["speed"]["cuda_graphs"] is False
    assert (
        state["optimizer"]["param_groups"][0]["fused"] is True
    )  # the run's Adam is the fused one (okdhp_edge.train.optim)


def test_a_resumed_interrupted_epoch_redoes_its_learning_rate_schedule(cache_dir, tmp_path):
    from okdhp_edge.trainkit.checkpoint import save_checkpoint

    warmup = ("--set", "optim.warmup_iters=1000", "--set", "eval.samples=0")  # lr grows every step, whatever the epochs
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(small_run(cache_dir, whole, "--epochs", "2", *warmup)) == 0
    assert main(small_run(cache_dir, cut, "--epochs", "1", *warmup)) == 0
    # what Ctrl-C one step into epoch 2 leaves: epoch 2 to redo, the schedule one step further on
    state = torch.load(cut / "checkpoint-last.pt", weights_only=True)
    state["scheduler"]["last_epoch"] += 1
    state["interrupted"] = True
    save_checkpoint(cut / "checkpoint-last.pt", state)
    assert main(small_run(cache_dir, cut, "--epochs", "2", *warmup, "--resume", "auto")) == 0
    lrs = [
        [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (whole, cut)
    ]
    assert lrs[1] == pytest.approx(lrs[0], rel=1e-9)


def test_a_run_that_fails_on_its_data_leaves_no_run_directory(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["--out", str(out), "--data", f"coco:{tmp_path / 'missing'}", "--no-progress"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists()


def test_compression_rate_has_one_definition_in_the_log_and_the_student_files():
    from okdhp_edge.models import describe_student

    preset = get_preset("edge")
    choices = choose_branches(preset, [0.5, 0.25])
    spec = preset.network_spec([c.branch for c in choices])
    files = [describe_student(preset, b, spec).compression_rate for b in range(len(choices))]
    assert files == [c.achieved for c in choices]  # the run's own largest branch is not the reference
    assert files[0] == pytest.approx(0.5, abs=0.05) and files[1] == pytest.approx(0.25, abs=0.05)
