"""Host-overhead work on the training step that a CPU can check: the fused Adam (and its checkpoints),
the loss's tensor KL weight a CUDA graph replays, the step pieces a graph captures, and the
system.cuda_graphs switch refusing what cannot run here. The graph itself is tested in test_cuda.py.
"""

from __future__ import annotations

import collections
import copy

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from okdhp_edge.codec import HeatmapCodec
from okdhp_edge.models import OKDHPNet, OKDHPSpec
from okdhp_edge.train import OKDHPLoss, autotune
from okdhp_edge.train.autotune import pick_speed
from okdhp_edge.train.config import ConfigError, load_config
from okdhp_edge.train.distributed import DistContext
from okdhp_edge.train.graphs import GraphedStep, graph_blocker
from okdhp_edge.train.losses import LossParts, heatmap_mse, mse_weights, ramp, spatial_kl
from okdhp_edge.train.optim import load_adam_state, make_adam
from okdhp_edge.train.step import TrainStep
from okdhp_edge.trainkit.speed import amp_setup

CPU = torch.device("cpu")
SPEC = OKDHPSpec(num_joints=4, trunk_stacks=1, trunk_channels=16, branches=[(2, 16), (1, 8)], hourglass_depth=2)


def small_batch(n: int = 4) -> dict[str, torch.Tensor]:
    codec = HeatmapCodec((32, 32), (8, 8))
    rng = np.random.default_rng(0)
    targets = [codec.encode(rng.uniform(4, 28, (4, 2)), np.ones(4)) for _ in range(n)]
    return {
        "image": torch.from_numpy(rng.standard_normal((n, 3, 32, 32), dtype=np.float32)),
        "target": torch.from_numpy(np.stack([t[0] for t in targets])),
        "target_weight": torch.from_numpy(np.stack([t[1] for t in targets])),
    }


def make_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, ramp_epochs: float = 0) -> TrainStep:
    autocast, scaler, _ = amp_setup("off", CPU)
    return TrainStep(
        net,
        OKDHPLoss("okdhp", kl_temperature=0.1, ramp_epochs=ramp_epochs),
        optimizer,
        None,
        scaler,
        autocast,
        DistContext(0, 1, 0, CPU),
    )


def top_level_ops(fn) -> collections.Counter:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return collections.Counter(
        e.name
        for e in prof.events()
        if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
    )


# ----------------------------------------------------------------------------- fused Adam


def test_the_run_s_adam_is_fused_one_call_per_step_whatever_the_parameter_count(one_thread):
    torch.manual_seed(0)
    net = OKDHPNet(SPEC)
    step = make_step(net, make_adam(net.parameters(), lr=1e-3))
    batch = small_batch()
    step(batch, 0.0)  # the moments exist from here on
    ops = top_level_ops(lambda: step.optimizer.step())
    # torch's default Adam on the CPU loops over the parameter tensors (about 9 ops each)
    assert len(list(net.parameters())) > 100 and sum(ops.values()) <= 4, ops
    assert ops["aten::_fused_adam_"] == 1


def test_fused_adam_follows_the_unfused_one():
    torch.manual_seed(0)
    fused_net = OKDHPNet(SPEC)
    loop_net = OKDHPNet(SPEC)
    loop_net.load_state_dict(fused_net.state_dict())
    fused = make_step(fused_net, make_adam(fused_net.parameters(), lr=1e-3, weight_decay=1e-4))
    loop = make_step(loop_net, torch.optim.Adam(loop_net.parameters(), lr=1e-3, weight_decay=1e-4, foreach=False))
    batch = small_batch()
    fused(batch, 0.0)
    loop(batch, 0.0)
    for p, q in zip(fused_net.parameters(), loop_net.parameters()):  # one update from the same state: rounding apart
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    for _ in range(4):  # Adam's normalisation blows rounding up where a gradient is near 0; the loss stays together
        a, _ = fused(batch, 0.0)
        b, _ = loop(batch, 0.0)
    assert a.total.item() == pytest.approx(b.total.item(), rel=1e-3)


def test_a_checkpoint_of_the_unfused_adam_resumes_fused_and_continues_the_same_run():
    torch.manual_seed(0)
    net = OKDHPNet(SPEC)
    loop = make_step(net, torch.optim.Adam(net.parameters(), lr=1e-3))  # what checkpoints before the fused Adam hold
    batch = small_batch()
    for _ in range(3):
        loop(batch, 0.0)
    saved_net, saved_opt = (
        copy.deepcopy(net.state_dict()),
        copy.deepcopy(loop.optimizer.state_dict()),
    )  # as a checkpoint holds them
    loop(batch, 0.0)
    expected = [p.detach().clone() for p in net.parameters()]

    net.load_state_dict(saved_net)
    fused = make_adam(net.parameters(), lr=1e-3)
    load_adam_state(fused, saved_opt)
    assert fused.param_groups[0]["fused"] is True  # load_state_dict alone would take the checkpoint's None
    assert int(fused.state[net.stem.conv.weight]["step"]) == 3
    make_step(net, fused)(batch, 0.0)
    for p, q in zip(net.parameters(), expected):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    # and back: a fused checkpoint into the default optimizer keeps that one's implementation
    unfused = torch.optim.Adam(net.parameters(), lr=1e-3)
    load_adam_state(unfused, fused.state_dict())
    assert unfused.param_groups[0]["fused"] is None and int(unfused.state[net.stem.conv.weight]["step"]) == 4


# ----------------------------------------------------------------------------- what a CUDA graph replays


@pytest.mark.parametrize("epoch", [0.0, 1.5, 9.0])
def test_a_tensor_kl_weight_gives_the_float_s_loss_bit_for_bit(epoch):
    """The graph path feeds beta * ramp(epoch) as a device tensor; it must be the same objective."""
    torch.manual_seed(0)
    net = OKDHPNet(SPEC)
    loss = OKDHPLoss("okdhp", beta=2.0, kl_temperature=0.1, ramp_epochs=4)
    batch = small_batch()
    outputs = net(batch["image"])
    as_float = loss(outputs, batch["target"], batch["target_weight"], epoch)
    weight = torch.tensor(loss.beta * loss.ramp_at(epoch))
    as_tensor = loss(outputs, batch["target"], batch["target_weight"], epoch, kl_weight=weight)
    assert as_tensor.total.item() == as_float.total.item() and as_float.as_dict()["kl"] > 0
    assert as_tensor.as_dict() == as_float.as_dict()
    # and the gradient it sends into a branch (where the KL term's goes)
    branch = next(net.branches[1].parameters())
    g_float = torch.autograd.grad(as_float.total, branch, retain_graph=True)[0]
    g_tensor = torch.autograd.grad(as_tensor.total, branch)[0]
    assert torch.equal(g_float, g_tensor)


def test_loss_parts_survive_the_trip_through_one_vector():
    torch.manual_seed(0)
    net = OKDHPNet(SPEC)
    batch = small_batch()
    parts = OKDHPLoss("okdhp", kl_temperature=0.1, ramp_epochs=4)(
        net(batch["image"]), batch["target"], batch["target_weight"], 1.0
    )
    again = LossParts.from_values(parts.values().clone(), parts.ramp)
    assert again.as_dict() == parts.as_dict() and len(again.mse_branches) == len(SPEC.branches)


def test_static_grads_are_zeroed_in_place_not_dropped(one_thread):
    """After a capture the graph owns the .grad tensors: an eager step (a batch of other shapes)
    must reuse them, and must not add the previous step's gradients to its own."""
    torch.manual_seed(0)
    net = OKDHPNet(SPEC)
    twin = OKDHPNet(SPEC)
    twin.load_state_dict(net.state_dict())
    step = make_step(net, make_adam(net.parameters(), lr=1e-3))
    reference = make_step(twin, make_adam(twin.parameters(), lr=1e-3))
    batch = small_batch()
    step(batch, 0.0)
    reference(batch, 0.0)
    step.static_grads = True
    grads = [p.grad for p in net.parameters()]
    step(batch, 0.0)
    reference(batch, 0.0)  # drops and rebuilds its grads
    assert all(p.grad is g for p, g in zip(net.parameters(), grads))
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
        torch.testing.assert_close(p, q)


# ----------------------------------------------------------------------------- the switch


def test_cuda_graphs_config_values():
    assert load_config().system.cuda_graphs == "auto"
    # YAML 1.1 reads a bare on / off as a bool: both spellings mean the mode
    assert load_config(overrides={"system": {"cuda_graphs": True}}).system.cuda_graphs == "on"
    assert load_config(overrides={"system": {"cuda_graphs": False}}).system.cuda_graphs == "off"
    with pytest.raises(ConfigError, match=r"system.cuda_graphs: 'always' is not valid; valid: auto, on, off"):
        load_config(overrides={"system": {"cuda_graphs": "always"}})


def test_graphs_are_refused_with_a_reason_where_they_cannot_run():
    one = DistContext(0, 1, 0, torch.device("cuda"))
    assert "CUDA device" in graph_blocker(CPU, DistContext(0, 1, 0, CPU), compiled=False)
    assert "DDP" in graph_blocker(torch.device("cuda"), DistContext(0, 2, 0, torch.device("cuda")), compiled=False)
    assert "compile" in graph_blocker(torch.device("cuda"), one, compiled=True)
    assert graph_blocker(torch.device("cuda"), one, compiled=False) is None
    net = OKDHPNet(SPEC)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        GraphedStep(make_step(net, make_adam(net.parameters(), lr=1e-3)))


def test_auto_graphs_on_the_cpu_measure_nothing_and_stay_off(one_thread):
    net = OKDHPNet(SPEC)
    logged = []
    choice = pick_speed(
        net,
        OKDHPLoss("okdhp"),
        lambda n: small_batch(n),
        CPU,
        "off",
        False,
        1,
        4,
        logged.append,
        cuda_graphs="auto",
        graph_blocker=graph_blocker(CPU, DistContext(0, 1, 0, CPU), False),
    )
    assert not choice.cuda_graphs and choice.measured == () and logged == []


def test_auto_picks_the_fastest_graphed_combination_even_where_its_eager_step_is_slower(monkeypatch):
    """H100, paper-mpii, batch 16 (benchmarks/results/gpu_train_throughput.json): eager fp32 NCHW beat
    eager half precision channels_last, graphed it was the other way round; a search that graphs only
    the eager winner picked 165 img/s where 206 were there."""
    step_s = {
        ("off", False, False): 0.119,
        ("off", True, False): 0.146,
        ("fp16", False, False): 0.177,
        ("fp16", True, False): 0.150,
        ("off", False, True): 0.097,
        ("off", True, True): 0.101,
        ("fp16", False, True): 0.081,
        ("fp16", True, True): 0.078,
    }
    monkeypatch.setattr(
        autotune,
        "measure_step",
        lambda model, loss, batch, device, amp, channels_last, steps, warmup, cuda_graphs: step_s[
            (amp, channels_last, cuda_graphs)
        ],
    )
    cuda = torch.device("cuda")  # only measure_step would touch it, and it is replaced by the table above
    choice = pick_speed(
        OKDHPNet(SPEC),
        OKDHPLoss("okdhp"),
        lambda n: small_batch(n),
        cuda,
        "auto",
        None,
        None,
        16,
        log=lambda _: None,
        cuda_graphs="auto",
        graph_blocker=None,
    )
    assert (choice.amp, choice.channels_last, choice.cuda_graphs) == ("fp16", True, True)
    assert len(choice.measured) == 8


# ----------------------------------------------------------------------------- the batched loss


def reference_loss(
    loss: OKDHPLoss,
    outputs: dict,
    target: torch.Tensor,
    weight: torch.Tensor,
    epoch: float,
    ignore: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """The objective as losses.py's docstring defines it, one output at a time (what OKDHPLoss computed
    before it stacked the outputs): the batched loss must keep every term."""
    w = mse_weights(target, weight, ignore)
    terms = {"mse_trunk": sum(heatmap_mse(o.float(), target, w) for o in outputs["trunk"])}
    for b, outs in enumerate(outputs["branches"]):
        terms[f"mse_b{b}"] = sum(heatmap_mse(o.float(), target, w) for o in outs)
        terms[f"kl_b{b}"] = torch.zeros(())
    total = terms["mse_trunk"] + sum(terms[f"mse_b{b}"] for b in range(len(outputs["branches"])))
    if loss.mode == "okdhp":
        ensemble = outputs["ensemble"].float()
        terms["mse_ensemble"] = heatmap_mse(ensemble, target, w)
        for b, outs in enumerate(outputs["branches"]):
            terms[f"kl_b{b}"] = sum(spatial_kl(o, ensemble, loss.kl_temperature, loss.detach_target) for o in outs)
        kl = sum(terms[f"kl_b{b}"] for b in range(len(outputs["branches"])))
        total = total + loss.alpha * terms["mse_ensemble"] + loss.beta * ramp(epoch, loss.ramp_epochs) * kl
    terms["loss"] = total
    return terms


@pytest.mark.parametrize(
    "mode, detach, with_ignore", [("okdhp", True, False), ("okdhp", False, True), ("independent", True, True)]
)
def test_the_batched_loss_keeps_every_term_and_gradient(mode, detach, with_ignore):
    torch.manual_seed(0)
    net = OKDHPNet(SPEC)  # unbalanced: branches of 2 and 1 stacks on a 1-stack trunk
    batch = small_batch()
    ignore = (torch.rand(4, 8, 8) > 0.7).float() if with_ignore else None
    loss = OKDHPLoss(mode, alpha=0.7, beta=2.0, kl_temperature=0.1, ramp_epochs=4, detach_target=detach)
    outputs = net(batch["image"])
    parts = loss(outputs, batch["target"], batch["target_weight"], 1.5, ignore)
    expected = reference_loss(loss, outputs, batch["target"], batch["target_weight"], 1.5, ignore)
    got = parts.as_dict()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value.item(), rel=1e-5, abs=1e-9), key
    params = [p for p in net.parameters() if p.requires_grad]
    g_new = torch.autograd.grad(parts.total, params, retain_graph=True, allow_unused=True)
    g_ref = torch.autograd.grad(expected["loss"], params, allow_unused=True)
    for a, b in zip(g_new, g_ref):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)  # float sums in another order


def test_the_loss_runs_the_same_ops_however_many_stacks(one_thread):
    """One set of loss kernels for all supervised outputs: per-output loss ops were a host cost that
    grew with the stacks (about 23 forward ops per output; paper-mpii has 9 outputs, 6 distilled)."""
    batch = small_batch()

    def loss_ops(branches: list[tuple[int, int]]) -> tuple[int, int]:
        torch.manual_seed(0)
        net = OKDHPNet(OKDHPSpec(num_joints=4, trunk_stacks=1, trunk_channels=16, branches=branches, hourglass_depth=2))
        leaf = lambda t: t.detach().requires_grad_()  # noqa: E731  (the backward stops at the heatmaps: the loss's own ops)
        out = net(batch["image"])
        outputs = {
            "trunk": [leaf(o) for o in out["trunk"]],
            "branches": [[leaf(o) for o in outs] for outs in out["branches"]],
            "ensemble": leaf(out["ensemble"]),
        }
        loss = OKDHPLoss("okdhp", kl_temperature=0.1, ramp_epochs=0)
        forward = sum(top_level_ops(lambda: loss(outputs, batch["target"], batch["target_weight"], 0.0)).values())
        both = sum(
            top_level_ops(lambda: loss(outputs, batch["target"], batch["target_weight"], 0.0).total.backward()).values()
        )
        return forward, both

    few, many = loss_ops([(1, 8), (1, 8)]), loss_ops([(3, 8), (3, 8)])  # 3 and 7 outputs into the stacks
    assert many[0] == few[0], (few, many)
    assert many[1] - few[1] <= 4 * 4, (few, many)  # backward: each extra leaf gets its gradient slice and accumulation
