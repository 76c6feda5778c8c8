"""OKDHP loss terms on inputs whose values are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from okdhp_edge.codec import HeatmapCodec
from okdhp_edge.train.losses import OKDHPLoss, heatmap_mse, ramp, spatial_kl


def gaussian_maps(points: list[tuple[float, float]], size=(12, 16)) -> torch.Tensor:
    codec = HeatmapCodec((size[0] * 4, size[1] * 4), size, sigma=2.0)
    maps, _ = codec.encode(np.asarray(points, np.float32) * 4, np.ones(len(points)))
    return torch.from_numpy(maps)[None]


def test_heatmap_mse_is_half_mean_square_and_respects_joint_weights():
    pred = torch.zeros(2, 3, 4, 5)
    target = torch.ones(2, 3, 4, 5)
    assert heatmap_mse(pred, target, torch.ones(2, 3)).item() == pytest.approx(0.5)
    weight = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # 4 of 6 joints count, all in the mean
    assert heatmap_mse(pred, target, weight).item() == pytest.approx(0.5 * 4 / 6)
    assert heatmap_mse(target, target, torch.ones(2, 3)).item() == 0.0


def test_ignored_pixels_give_no_gradient_except_under_a_labelled_joint():
    target = gaussian_maps([(3.0, 8.0), (9.0, 8.0)])  # (1, 2, 16, 12): joint 0 inside the ignored left half
    ignore = torch.zeros(1, 16, 12)
    ignore[:, :, :6] = 1.0
    pred = torch.full_like(target, 0.3, requires_grad=True)
    heatmap_mse(pred, target, torch.ones(1, 2), ignore).backward()
    grad, lit = pred.grad[0], target[0] >= 0.01
    dropped = ignore.bool().expand_as(lit) & ~lit
    assert (grad[dropped] == 0).all() and (grad[~dropped] != 0).all()
    assert dropped[1, :, :3].all()  # joint 1's channel: the unlabelled person is no background
    assert lit[0, 8, 3] and not dropped[0, 8, 3]  # joint 0 lies over them: its own peak still counts
    assert heatmap_mse(pred, target, torch.ones(1, 2), torch.zeros(1, 16, 12)).item() == pytest.approx(
        heatmap_mse(pred, target, torch.ones(1, 2)).item()
    )


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_kl_is_zero_for_identical_maps(temperature):
    maps = gaussian_maps([(3, 4), (8, 10)])
    assert spatial_kl(maps.clone(), maps, temperature).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_known_value_and_temperature_scaling():
    # teacher uniform over 2 pixels, student softmax = (1/4, 3/4): KL = 0.5 ln(4/3), divided by N*h*w = 2
    teacher = torch.zeros(1, 1, 1, 2)
    student = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2)
    expected = 0.5 * math.log(4.0 / 3.0) / 2
    assert spatial_kl(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # logits divided by T: doubling both the logits and T gives the same distributions
    assert spatial_kl(student * 2, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)
    # KL is not symmetric: KL(student || teacher) differs
    assert spatial_kl(teacher, student, 1.0).item() != pytest.approx(expected, rel=1e-3)


def test_small_temperature_makes_kl_non_trivial_on_raw_heatmaps():
    """The METHOD pitfall: heatmaps in [0, 1] give a near-uniform softmax at T = 1."""
    teacher = gaussian_maps([(3, 4)])
    student = gaussian_maps([(6, 8)])
    kl_t1 = spatial_kl(student, teacher, 1.0).item()
    kl_t01 = spatial_kl(student, teacher, 0.1).item()
    assert kl_t1 < 1e-3
    assert kl_t01 > 100 * kl_t1


def test_detach_target_controls_the_gradient_into_the_ensemble():
    teacher = gaussian_maps([(3, 4)]).requires_grad_(True)
    student = gaussian_maps([(6, 8)]).requires_grad_(True)
    spatial_kl(student, teacher, 0.1, detach_target=True).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    student.grad = None
    spatial_kl(student, teacher, 0.1, detach_target=False).backward()
    assert teacher.grad is not None and teacher.grad.abs().sum() > 0


def test_ramp_values():
    assert ramp(0, 90) == pytest.approx(math.exp(-5))
    assert ramp(45, 90) == pytest.approx(math.exp(-1.25))
    assert ramp(90, 90) == 1.0
    assert ramp(120, 90) == 1.0
    assert ramp(0, 0) == 1.0
    values = [ramp(t, 10) for t in range(11)]
    assert values == sorted(values)


def _outputs(target: torch.Tensor, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def noisy() -> torch.Tensor:
        return target + 0.1 * torch.randn(target.shape, generator=g)

    return {"trunk": [noisy()], "branches": [[noisy(), noisy()], [noisy()]], "ensemble": noisy()}


def test_okdhp_loss_composition():
    target = gaussian_maps([(3, 4), (8, 10)]).repeat(2, 1, 1, 1)
    weight = torch.ones(2, 2)
    out = _outputs(target)
    loss = OKDHPLoss("okdhp", alpha=0.5, beta=2.0, ramp_epochs=10, kl_temperature=0.1)
    parts = loss(out, target, weight, epoch=5)
    mse = [heatmap_mse(o, target, weight) for o in out["trunk"] + out["branches"][0] + out["branches"][1]]
    kl = [spatial_kl(o, out["ensemble"], 0.1) for o in out["branches"][0] + out["branches"][1]]
    expected = sum(mse) + 0.5 * heatmap_mse(out["ensemble"], target, weight) + 2.0 * ramp(5, 10) * sum(kl)
    assert parts.total.item() == pytest.approx(expected.item(), rel=1e-5)
    logged = parts.as_dict()
    assert logged["kl"] == pytest.approx(sum(kl).item(), rel=1e-5)
    assert logged["mse_b0"] == pytest.approx((mse[1] + mse[2]).item(), rel=1e-5)
    assert logged["ramp"] == pytest.approx(math.exp(-1.25))


def test_kl_weights_scale_each_branch_and_zero_leaves_a_branch_untaught():
    target = gaussian_maps([(3, 4), (8, 10)]).repeat(2, 1, 1, 1)
    weight = torch.ones(2, 2)
    out = {k: v for k, v in _outputs(target, seed=2).items()}
    for o in out["branches"][0] + out["branches"][1]:
        o.requires_grad_(True)
    loss = OKDHPLoss("okdhp", beta=2.0, ramp_epochs=0, kl_temperature=0.1, kl_weights=[0.0, 0.5])
    parts = loss(out, target, weight, epoch=0)
    mse = [heatmap_mse(o, target, weight) for o in out["trunk"] + out["branches"][0] + out["branches"][1]]
    kl = [spatial_kl(o, out["ensemble"], 0.1) for o in out["branches"][0] + out["branches"][1]]
    expected = sum(mse) + heatmap_mse(out["ensemble"], target, weight) + 2.0 * 0.5 * kl[2]
    assert parts.total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts.as_dict()["kl_b0"] == pytest.approx((kl[0] + kl[1]).item(), rel=1e-5)  # logged unweighted
    parts.total.backward()
    mse_only = torch.autograd.grad(heatmap_mse(out["branches"][0][0], target, weight), out["branches"][0][0])[0]
    assert torch.allclose(out["branches"][0][0].grad, mse_only, atol=1e-7)  # branch 0: its MSE's gradient only


def test_independent_and_single_modes_drop_the_distillation_terms():
    target = gaussian_maps([(3, 4)]).repeat(2, 1, 1, 1)
    weight = torch.ones(2, 1)
    out = _outputs(target, seed=1)
    mse_sum = sum(heatmap_mse(o, target, weight) for o in out["trunk"] + out["branches"][0] + out["branches"][1])
    independent = OKDHPLoss("independent", kl_temperature=0.1)(out, target, weight, epoch=100)
    assert independent.total.item() == pytest.approx(mse_sum.item(), rel=1e-6)
    assert independent.as_dict()["kl"] == 0.0
    single_out = {"trunk": out["trunk"], "branches": [out["branches"][0]]}  # no ensemble at all
    single = OKDHPLoss("single")(single_out, target, weight, epoch=0)
    expected = sum(heatmap_mse(o, target, weight) for o in out["trunk"] + out["branches"][0])
    assert single.total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="valid: okdhp, independent, single"):
        OKDHPLoss("distill")
