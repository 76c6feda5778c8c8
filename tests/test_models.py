"""Networks: reference parameter/MAC counts, the OKDHP net, FAU, student extraction and files."""

import json

import pytest
import torch
from safetensors import safe_open

from okdhp_edge.models import (
    PRESETS,
    BranchSpec,
    OKDHPNet,
    OKDHPSpec,
    StudentFileError,
    count_cost,
    describe_student,
    extract_student,
    get_preset,
    hg2,
    hg4,
    hg8,
    load_student,
    meta_device,
    save_student,
)
from okdhp_edge.spec import SPEC_METADATA_KEY, ModelSpec


@pytest.mark.parametrize(
    "builder, params_m, gmacs",
    [(hg2, 6.57, 8.33), (hg4, 12.86, 14.70), (hg8, 25.43, 27.44)],
)
def test_hourglass_reproduces_reference_counts(builder, params_m, gmacs):
    with meta_device:
        model = builder(16)
    cost = count_cost(model, (256, 256))
    assert cost.mparams == pytest.approx(params_m, rel=0.01)
    assert cost.gmacs == pytest.approx(gmacs, rel=0.01)


class _Ensemble(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["ensemble"]


@pytest.mark.parametrize("preset, params_m, gmacs", [("paper-mpii", 30.76, 49.15), ("paper-unbalanced", 49.62, 68.26)])
def test_training_networks_match_method_counts(preset, params_m, gmacs):
    with meta_device:
        net = OKDHPNet(get_preset(preset).network_spec())
    cost = count_cost(_Ensemble(net), (256, 256), params_of=net)
    assert cost.mparams == pytest.approx(params_m, rel=0.01)
    assert cost.gmacs == pytest.approx(gmacs, rel=0.01)


def test_edge_preset_spans_compression_and_smallest_under_one_gmac():
    preset = get_preset("edge")
    specs = [describe_student(preset, b) for b in range(3)]
    assert min(s.macs for s in specs) < 1e9
    rates = [s.compression_rate for s in specs]
    # the rates `python -m okdhp_edge.models` prints and docs/training.md quotes for `edge`
    assert rates == pytest.approx([1.00, 0.46, 0.20], abs=0.005)
    # counted again on the students extracted from the training net, at the preset's input size
    with meta_device:
        net = OKDHPNet(preset.network_spec())
        macs = [count_cost(extract_student(net, b), preset.input_size).macs for b in range(3)]
    assert [s.macs for s in specs] == macs
    assert rates == pytest.approx([m / max(macs) for m in macs], abs=1e-4)


def _small_spec():
    return OKDHPSpec(
        num_joints=5,
        trunk_stacks=1,
        trunk_channels=16,
        branches=[BranchSpec(2, 24), BranchSpec(1, 16), BranchSpec(1, 8)],
        hourglass_depth=2,
    )


def test_okdhp_outputs_and_fau():
    torch.manual_seed(0)
    net = OKDHPNet(_small_spec()).eval()
    x = torch.randn(2, 3, 32, 32)
    out = net(x)
    assert len(out["trunk"]) == 1 and [len(b) for b in out["branches"]] == [2, 1, 1]
    assert out["ensemble"].shape == (2, 5, 8, 8)
    w = out["weights"]
    assert w.shape == (2, 3, 5) and torch.allclose(w.sum(1), torch.ones(2, 5))
    finals = torch.stack([b[-1] for b in out["branches"]], 1)
    assert torch.allclose(out["ensemble"], (w[..., None, None] * finals).sum(1), atol=1e-6)
    # Every branch contributes: zeroing any branch's final heatmaps changes the ensemble, by
    # exactly that branch's weighted share.
    for b, branch in enumerate(net.branches):
        handle = branch.register_forward_hook(lambda module, args, outs: [*outs[:-1], torch.zeros_like(outs[-1])])
        try:
            zeroed = net(x)["ensemble"]
        finally:
            handle.remove()
        change = (out["ensemble"] - zeroed).abs()
        assert change.amax(dim=(2, 3)).min() > 1e-4, f"zeroing branch {b} leaves a joint's ensemble unchanged"
        torch.testing.assert_close(
            zeroed, out["ensemble"] - w[:, b, :, None, None] * finals[:, b], atol=1e-5, rtol=1e-5
        )


def test_ensemble_gradient_reaches_every_branch():
    net = OKDHPNet(_small_spec())
    net(torch.randn(2, 3, 32, 32))["ensemble"].sum().backward()
    for branch in net.branches:
        assert branch.stacks[-1].score.weight.grad.abs().sum() > 0


def test_detached_members_leave_the_ensemble_loss_to_the_fau():
    net = OKDHPNet(_small_spec(), 0, detach_members=True)  # as model.ensemble_grad "fau" builds it
    out = net(torch.randn(2, 3, 32, 32))
    out["ensemble"].sum().backward()
    for branch in net.branches:
        assert branch.stacks[-1].score.weight.grad is None
    assert net.stem.conv.weight.grad is None
    assert net.fau.fc[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("trunk_branch", [None, 1])
def test_trunk_learns_from_the_chosen_branches_only(trunk_branch):
    # trunk_grad "target": the other branches and the FAU still learn from their losses, but send
    # nothing into the shared trunk; by default (None) every branch does
    torch.manual_seed(0)
    net = OKDHPNet(_small_spec(), trunk_branch)
    out = net(torch.randn(2, 3, 32, 32))
    for b, outs in enumerate(out["branches"]):
        net.zero_grad()
        outs[-1].square().sum().backward(retain_graph=True)
        reached = net.stem.conv.weight.grad
        assert (reached is not None and reached.abs().sum() > 0) == (trunk_branch in (None, b)), b
        assert net.branches[b].stacks[-1].score.weight.grad.abs().sum() > 0
    net.zero_grad()
    out["weights"].square().sum().backward()
    assert (net.stem.conv.weight.grad is not None) == (trunk_branch is None)
    assert net.fau.fc[0].weight.grad.abs().sum() > 0


def test_output_stride_is_read_from_the_network():
    spec = _small_spec()
    net = OKDHPNet(spec).eval()
    x = torch.randn(1, 3, 48, 32)
    with torch.no_grad():
        out = net(x)
        student = extract_student(net, 1)
        heatmaps = [out["ensemble"], out["trunk"][0], *(b[-1] for b in out["branches"]), student(x)]
    assert all(h.shape[-2:] == (48 // spec.stride, 32 // spec.stride) for h in heatmaps)
    preset = get_preset("tiny")
    described = describe_student(preset, 0)
    assert described.heatmap_stride == preset.network_spec().stride
    assert described.heatmap_size == (96 // spec.stride, 128 // spec.stride)


@pytest.mark.parametrize("branch", [0, 1, 2])
def test_extracted_student_equals_branch(branch):
    torch.manual_seed(branch)
    net = OKDHPNet(_small_spec())
    net.train()
    net(torch.randn(4, 3, 32, 32))  # move BN running stats off their defaults
    net.eval()
    student = extract_student(net, branch).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        full = net(x)
        assert torch.equal(student(x), full["branches"][branch][-1])
        assert torch.equal(student(x), net.branch_forward(x, branch))
        assert all(torch.equal(a, b) for a, b in zip(student.forward_all(x), full["trunk"] + full["branches"][branch]))
    assert not hasattr(student, "fau")
    with pytest.raises(IndexError):
        extract_student(net, 3)


def test_student_save_load_round_trip_and_errors(tmp_path):
    preset = get_preset("tiny")
    net = OKDHPNet(preset.network_spec()).eval()
    student = extract_student(net, 2).eval()
    spec = describe_student(preset, 2)
    assert spec.compression_rate < 1 and spec.params == sum(p.numel() for p in student.parameters())
    path = save_student(student, spec, tmp_path / "s")
    loaded, loaded_spec = load_student(path)
    with safe_open(str(path), "pt") as f:  # the spec rides in the weights too, under the artifacts' key
        assert ModelSpec.from_dict(json.loads(f.metadata()[SPEC_METADATA_KEY])).to_dict() == spec.to_dict()
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(loaded(x), student(x))
    assert loaded_spec.to_dict() == spec.to_dict()

    # Truncated weights: a clear error naming the file.
    data = path.read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "t.json").write_text((tmp_path / "s.json").read_text())
    with pytest.raises(StudentFileError, match=r"t\.safetensors.*corrupt or truncated"):
        load_student(tmp_path / "t.safetensors")
    # Spec that does not match the weights.
    other = json.loads((tmp_path / "s.json").read_text())
    other["arch"]["branch_channels"] = 64
    (tmp_path / "m.json").write_text(json.dumps(other))
    (tmp_path / "m.safetensors").write_bytes(data)
    with pytest.raises(StudentFileError, match="do not match the architecture"):
        load_student(tmp_path / "m")
    with pytest.raises(StudentFileError, match="not found"):
        load_student(tmp_path / "nothing.safetensors")


def test_models_cli_prints_every_preset(capsys):
    from okdhp_edge.models.__main__ import main

    main([])
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out
    assert "30.76" in out and "49.62" in out
