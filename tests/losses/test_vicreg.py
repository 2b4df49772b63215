"""VICReg's terms and PLDM's objective: each term on inputs whose value is known by hand."""

import pytest
import torch

from lewm.losses import LeWMObjective, PLDMObjective, VICReg
from lewm.losses.pldm import TERMS, masked_mse
from lewm.losses.vicreg import covariance_offdiag, temporal_smoothness, variance_hinge


def _standardised(G: int, S: int, D: int, std: float = 1.0) -> torch.Tensor:
    z = torch.randn(G, S, D, generator=torch.Generator().manual_seed(0))
    z = (z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True)  # exactly unit std per dim
    return z * std


def test_variance_term_is_zero_at_unit_std_and_positive_when_collapsed():
    assert variance_hinge(_standardised(3, 64, 8)).item() == 0.0
    assert variance_hinge(_standardised(3, 64, 8, std=2.0)).item() == 0.0
    collapsed = torch.full((3, 64, 8), 0.7)
    assert variance_hinge(collapsed).item() == pytest.approx(1 - 1e-2, abs=1e-6)  # 1 - sqrt(eps)
    half = _standardised(3, 64, 8, std=0.5)
    assert variance_hinge(half).item() == pytest.approx(1 - (0.25 + 1e-4) ** 0.5, abs=1e-5)
    one_dim_dead = _standardised(1, 64, 4)
    one_dim_dead[..., 0] = 3.0
    assert variance_hinge(one_dim_dead).item() == pytest.approx((1 - 1e-2) / 4, abs=1e-6)


def test_covariance_term_is_zero_for_decorrelated_features_and_counts_correlation():
    # the columns of a Hadamard matrix are centred and orthogonal: zero covariance
    h = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])  # (S=4, D=3)
    assert covariance_offdiag(h[None]).item() == pytest.approx(0.0, abs=1e-7)
    # two identical dimensions of variance v: off-diagonal sum 2 v^2 over D^2 - D = 2
    x = _standardised(1, 50, 1, std=1.5)
    dup = torch.cat([x, x], dim=-1)  # (1, 50, 2)
    assert covariance_offdiag(dup).item() == pytest.approx(1.5**4, rel=1e-5)
    assert covariance_offdiag(torch.randn(2, 4096, 6)).item() < 1e-2
    assert covariance_offdiag(torch.randn(2, 9, 1)).item() == 0.0  # one dimension: nothing off


def test_temporal_smoothness():
    still = torch.randn(4, 1, 8).expand(4, 5, 8)  # (B, T, D) latents that never move
    assert temporal_smoothness(still).item() == 0.0
    u = torch.randn(4, 1, 8)
    line = u * torch.arange(5.0)[None, :, None]  # z_t = t * u: every step is u
    assert temporal_smoothness(line).item() == pytest.approx(u.pow(2).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="T >= 2"):
        temporal_smoothness(torch.randn(4, 1, 8))


def test_vicreg_module_and_lewm_objective_with_vicreg():
    z = torch.randn(8, 3, 4)  # (B, T, D)
    reg = VICReg(variance_weight=2.0, covariance_weight=3.0)(z.transpose(0, 1))
    var, cov = variance_hinge(z.transpose(0, 1)), covariance_offdiag(z.transpose(0, 1))
    assert reg["vicreg"].item() == pytest.approx(2 * var.item() + 3 * cov.item(), rel=1e-6)
    pred = torch.randn(8, 2, 4)
    terms = LeWMObjective(vicreg=VICReg(2.0, 3.0))(z, pred)
    assert set(terms) == {"loss", "pred_loss", "vicreg", "variance", "covariance"}
    mse = (pred - z[:, 1:]).pow(2).mean().item()
    assert terms["loss"].item() == pytest.approx(mse + reg["vicreg"].item(), rel=1e-6)
    assert "sigreg" in LeWMObjective()(z, pred)
    with pytest.raises(ValueError, match="not both"):
        LeWMObjective(sigreg=LeWMObjective().sigreg, vicreg=VICReg())


def test_pldm_objective_is_the_weighted_sum_of_named_terms():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, 5, generator=g)  # (B, N+1, D)
    pred = torch.randn(6, 3, 5, generator=g)
    idm = torch.randn(6, 3, 2, generator=g)
    acts = torch.randn(6, 3, 2, generator=g)
    weights = dict(zip(TERMS, (1.5, 2.0, 0.3, 0.7, 0.4, 0.9), strict=True))
    terms = PLDMObjective(**weights)(z, pred, idm, acts)
    assert set(terms) == {"loss", "pred_loss", *TERMS}
    expected = terms["pred_loss"] + sum(w * terms[k] for k, w in weights.items())
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["time_variance"].item() == pytest.approx(variance_hinge(z).item())
    assert terms["variance"].item() == pytest.approx(variance_hinge(z.transpose(0, 1)).item())


def test_inverse_dynamics_at_weight_zero_trains_the_head_without_changing_the_loss():
    z, pred = torch.randn(6, 3, 4), torch.randn(6, 2, 4)
    idm = torch.randn(6, 2, 2, requires_grad=True)
    acts = torch.randn(6, 2, 2)
    terms = PLDMObjective(inverse_dynamics=0.0)(z, pred, idm, acts)
    others = terms["pred_loss"] + sum(
        w * terms[k] for k, w in PLDMObjective().weights.items() if k != "inverse_dynamics"
    )
    assert terms["loss"].item() == pytest.approx(others.item(), rel=1e-6)
    terms["loss"].backward()
    assert idm.grad is not None and idm.grad.abs().sum() > 0  # the probe still learns


def test_masked_mse_leaves_out_nan_targets():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, float("nan")], [3.0, float("nan")]])
    assert masked_mse(pred, target).item() == pytest.approx(0.5)
    assert masked_mse(pred, torch.full_like(pred, float("nan"))).item() == 0.0


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="variance weight"):
        PLDMObjective(variance=-1)
    with pytest.raises(ValueError, match="VICReg needs"):
        VICReg(variance_weight=-1)
