import numpy as np
import pytest
import torch

from lewm.losses import LeWMObjective, SIGReg


def reference_sigreg(z: np.ndarray, A: np.ndarray, t_max=3.0, knots=17) -> float:
    """Paper formula, written independently: B * integral_{-t_max}^{t_max} e^{-t^2/2}
    |phi_B(t) - e^{-t^2/2}|^2 dt by the trapezoid rule on a symmetric grid, averaged over
    directions and time. Complex arithmetic in float64."""
    T, B, D = z.shape
    s = np.linspace(-t_max, t_max, 2 * knots - 1)
    stats = []
    for t in range(T):
        for m in range(A.shape[1]):
            h = z[t] @ A[:, m]  # (B,)
            ecf = np.exp(1j * np.outer(s, h)).mean(axis=1)  # (len(s),)
            integrand = np.exp(-(s**2) / 2) * np.abs(ecf - np.exp(-(s**2) / 2)) ** 2
            stats.append(B * np.trapezoid(integrand, s))
    return float(np.mean(stats))


def test_sigreg_equals_reference_formula_for_fixed_directions():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, 64, 8, generator=g) * 1.3 + 0.2
    A = torch.randn(8, 16, generator=g)
    A = A / A.norm(dim=0, keepdim=True)
    ours = SIGReg(num_proj=16)(z, directions=A).item()
    ref = reference_sigreg(z.double().numpy(), A.double().numpy())
    assert ours == pytest.approx(ref, rel=1e-5)


def test_sigreg_small_for_gaussian_large_for_collapsed():
    sig = SIGReg(num_proj=1024, seed=0)
    gauss = sig(torch.randn(2, 4096, 32)).item()
    collapsed = sig(torch.full((2, 4096, 32), 0.5)).item()
    low_rank = sig((torch.randn(2, 4096, 2) @ torch.randn(2, 32)) / 4).item()
    assert gauss < 1.5
    assert collapsed > 20 * gauss
    assert low_rank > 5 * gauss


def test_sigreg_directions_fresh_each_call_and_seedable():
    z = torch.randn(2, 64, 8)
    a, b = SIGReg(num_proj=8, seed=3), SIGReg(num_proj=8, seed=3)
    first = a(z).item()
    assert first == b(z).item()
    assert a(z).item() != first  # new directions on the next call


def test_sigreg_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(T, B, D\)"):
        SIGReg()(torch.randn(64, 8))
    with pytest.raises(ValueError, match="directions"):
        SIGReg()(torch.randn(2, 64, 8), directions=torch.randn(4, 3))


def test_objective_terms_and_weight():
    z = torch.randn(8, 4, 16)
    pred = z[:, 1:] + 0.1
    out = LeWMObjective(0.5, SIGReg(num_proj=32))(z, pred)
    assert out["pred_loss"].item() == pytest.approx(0.01, rel=1e-4)
    assert out["loss"].item() == pytest.approx(
        out["pred_loss"].item() + 0.5 * out["sigreg"].item(), rel=1e-6
    )
