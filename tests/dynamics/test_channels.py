"""The bifurcation channel of the sNTK (paper 000 §3, App. A.1); at an embedded pitchfork also the
landscape along the channel (Fig. 1E), which needs the channel's direction."""

import itertools
import math

import pytest
import torch

from sntkit.dynamics import (
    channel_decomposition,
    eigenvalue_gradient,
    find_fixed_points,
    fit_normal_form,
    local_landscape,
)
from sntkit.models import RNN
from sntkit.ntk import state_ntk

DT = torch.float64


def _embedded_pitchfork(gain, N=6, seed=0):
    """Post-form tanh RNN: unit 0 is h ↦ gain·tanh(h) (a pitchfork at gain 1, decoupled), the
    other units contract (0.3 × Xavier)."""
    g = torch.Generator().manual_seed(seed)
    W = 0.3 * torch.randn(N, N, generator=g, dtype=DT) / math.sqrt(N)
    W[0, :], W[:, 0] = 0, 0
    W[0, 0] = gain
    cell = RNN(N, 0, form="post", dtype=DT)
    with torch.no_grad():
        cell.W.copy_(W)
        cell.b.zero_()
    h0 = (torch.rand(32, N, generator=g, dtype=DT) - 0.5) * 0.2
    return cell, h0


def _lam_after(cell, ntk, theta, point, lam, x=None):
    """λ_c at θ: re-solve the fixed point from ``point``, take the eigenvalue nearest λ."""
    params = dict(ntk.params) | ntk.unflatten(theta)
    fp = find_fixed_points(cell, x, point[None], params=params)
    assert len(fp) == 1 and float((fp.locations[0] - point).norm()) < 0.1
    ev = fp.eigvals[0]
    c = ev[int((ev - lam).abs().argmin())]
    return float(c.abs()) if abs(lam.imag) > 1e-10 else float(c.real)


@pytest.mark.parametrize("case", ["real", "complex"])
def test_eigenvalue_gradient_matches_finite_differences(case):
    """The formula dλ = u^T dJ v / u^T v with the moving fixed point, vs re-solved λ_c(θ ± εd)."""
    g = torch.Generator().manual_seed(3)
    cell = RNN(4, 2, form="post", dtype=DT, generator=g, gain=1.4)
    with torch.no_grad():
        cell.b.normal_(0, 0.3, generator=g)
        if case == "complex":
            cell.W.copy_(0.9 * torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=DT))[0])
    x = torch.tensor([0.4, -0.2], dtype=DT)
    ntk = state_ntk(cell, torch.zeros(2, 4, dtype=DT), torch.zeros(2, 3, 2, dtype=DT))
    fps = find_fixed_points(cell, x, inits=64, scale=2.0)
    i = int(fps.residuals.argmin())
    point = fps.locations[i]
    ev = fps.eigvals[i]
    is_complex = ev.imag.abs() > 1e-8
    candidates = ev[is_complex] if case == "complex" else ev[~is_complex]
    target = complex(candidates[0])  # the leading eigenvalue of that kind
    assert float(point.abs().max()) > 1e-3  # the fixed point moves with θ (b ≠ 0)
    grad, lam = eigenvalue_gradient(ntk, point, target, x=x)
    assert abs(lam - target) < 1e-9 and grad.shape == (ntk.num_params,)
    theta = ntk.flatten(ntk.params)
    eps = 1e-6
    for k in range(3):
        d = torch.randn(theta.shape, generator=g, dtype=DT)
        fd = (
            _lam_after(cell, ntk, theta + eps * d, point, lam, x)
            - _lam_after(cell, ntk, theta - eps * d, point, lam, x)
        ) / (2 * eps)
        assert float(grad @ d) == pytest.approx(fd, rel=1e-6, abs=1e-8), k


def test_decomposition_is_exact_and_rank_one():
    """sNTK_g + sNTK_R = sNTK (dense check), sNTK_g = w w^T, ratio = ‖w‖² / λ_max."""
    cell, h0 = _embedded_pitchfork(0.9, N=4)
    ntk = state_ntk(cell, h0[:3, :4], steps=5)
    dec = channel_decomposition(ntk, torch.zeros(4, dtype=DT), 1.0)
    assert dec.critical_eigenvalue == pytest.approx(0.9, abs=1e-12)
    B, T, N = ntk.state_shape
    dense_J = ntk.jacobian.matmat(torch.eye(ntk.num_params, dtype=DT)).reshape(-1, B * T * N).T
    K = dense_J @ dense_J.T
    w = dec.channel.reshape(-1)
    torch.testing.assert_close(w, dense_J @ dec.e_g)
    Y = torch.randn(5, B, T, N, generator=torch.Generator().manual_seed(0), dtype=DT)
    Yf = Y.reshape(5, -1)
    torch.testing.assert_close(dec.sntk_g.matmat(Y).reshape(5, -1), Yf @ torch.outer(w, w))
    total = dec.sntk_g.matmat(Y) + dec.residual.matmat(Y)
    torch.testing.assert_close(total.reshape(5, -1), Yf @ K, rtol=1e-10, atol=1e-10)
    lam_max = float(torch.linalg.eigvalsh(K)[-1])
    assert dec.sntk_norm == pytest.approx(lam_max, rel=1e-8)
    assert dec.dominance_ratio == pytest.approx(float(w @ w) / lam_max, rel=1e-8)
    v1 = torch.linalg.eigh(dense_J.T @ dense_J).eigenvectors[:, -1]
    assert dec.fisher_cosine == pytest.approx(float((dec.e_g @ v1).abs()), abs=1e-6)


def test_dominance_ratio_tends_to_one_at_an_embedded_pitchfork():
    """Paper 000 §3: near g* the rank-one bifurcation channel dominates the sNTK."""
    ratios, cosines = [], []
    for gain in (0.5, 0.8, 0.95, 0.99):
        cell, h0 = _embedded_pitchfork(gain)
        ntk = state_ntk(cell, h0, steps=25, trainable=["W"])
        dec = channel_decomposition(ntk, torch.zeros(6, dtype=DT), 1.0)
        assert dec.critical_eigenvalue.real == pytest.approx(gain, abs=1e-12)
        ratios.append(dec.dominance_ratio)
        cosines.append(dec.fisher_cosine)
    assert all(b > a for a, b in itertools.pairwise(ratios)), ratios
    assert ratios[-1] > 0.99 and cosines[-1] > 0.99
    # along e_g the landscape is the pitchfork normal form's curve (Fig. 1E vs Fig. 2B)
    s = torch.linspace(-0.3, 0.3, 13, dtype=DT)
    landscape = local_landscape(ntk, dec.e_g, s)
    fit = fit_normal_form(s, landscape, "pitchfork", T=25, sign=1)
    assert fit.r2 > 0.9 and fit.a > 0
    assert local_landscape(ntk, dec.e_g, torch.zeros(1, dtype=DT))[0] == pytest.approx(
        dec.sntk_g_norm, rel=1e-10
    )
