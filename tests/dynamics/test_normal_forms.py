"""Normal forms: analytic branches, the rank-one sNTK and its closed form, Figure-2 shapes."""

import math

import pytest
import torch
from torch.func import jacfwd

from sntkit.dynamics import NORMAL_FORMS, stability_flip_closed_form

DT = torch.float64
ONE_D = [n for n, nf in NORMAL_FORMS.items() if nf.dim == 1]


@pytest.mark.parametrize("name", list(NORMAL_FORMS))
@pytest.mark.parametrize("g", [0.6, 0.95, 1.05, 1.4])
def test_analytic_branches_are_invariant_with_the_stated_multipliers(name, g):
    nf = NORMAL_FORMS[name]
    assert nf.g_star == 1.0
    for br in nf.fixed_points(g):
        h = torch.tensor(br.location, dtype=DT)
        torch.testing.assert_close(nf.step(h, g), h, rtol=0, atol=1e-14)
        ev = torch.linalg.eigvals(jacfwd(lambda x: nf.step(x, g))(h))
        want = torch.tensor(br.multipliers, dtype=torch.complex128)
        assert torch.allclose(ev.abs().sort().values, want.abs().sort().values, atol=1e-12)
        assert br.stable == bool((ev.abs() < 1).all())
    for br in nf.invariant_sets(g):
        assert g > nf.g_star
        h = torch.tensor(br.location, dtype=DT)
        if br.kind == "2-cycle":
            torch.testing.assert_close(nf.step(h, g), -h, rtol=0, atol=1e-14)
            d = jacfwd(lambda x: nf.step(nf.step(x, g), g))(h)
            assert float(d) == pytest.approx(br.multipliers[0], abs=1e-12)
        else:  # the invariant circle keeps its radius; radial multiplier of r ↦ |f(r, 0)|
            for angle in (0.3, 2.0):
                z = float(h[0]) * torch.tensor([math.cos(angle), math.sin(angle)], dtype=DT)
                assert float(nf.step(z, g).norm()) == pytest.approx(float(h[0]), abs=1e-14)
            radial = jacfwd(lambda r: nf.step(torch.stack([r, 0 * r]), g).norm())(h[0])
            assert float(radial) == pytest.approx(br.multipliers[0].real, abs=1e-12)


@pytest.mark.parametrize("name", ONE_D)
@pytest.mark.parametrize("g", [0.7, 1.2])
def test_analytic_fixed_points_are_all_of_them(name, g):
    """Sign changes of f(h) − h on a fine grid count the real fixed points in [−3, 3]."""
    nf = NORMAL_FORMS[name]
    h = torch.linspace(-3, 3, 600_001, dtype=DT)[:, None]
    r = (nf.step(h, g) - h)[:, 0]
    crossings = int((r[:-1] * r[1:] < 0).sum()) + int((r == 0).sum())
    inside = [br for br in nf.fixed_points(g) if abs(br.location[0]) <= 3]
    assert crossings == len(inside)


def test_closed_form_equals_autodiff_for_the_stability_flip():
    h0 = (torch.rand(32, 1, dtype=DT, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.2
    nf = NORMAL_FORMS["stability_flip"]
    for g in (0.3, 0.9, 1.0, 1.1, 1.3):
        v, auto = nf.sntk_g(g, h0, 30)
        assert math.isclose(auto, stability_flip_closed_form(g, h0, 30), rel_tol=1e-10)
        t = torch.arange(1, 31, dtype=DT)
        torch.testing.assert_close(v[..., 0], h0 * t * g ** (t - 1), rtol=1e-12, atol=0)
    one = torch.ones(1, 1, dtype=DT)
    T = 200
    at_one = stability_flip_closed_form(1.0, one, T)
    assert math.isclose(at_one, T * (T + 1) * (2 * T + 1) / 6, rel_tol=1e-12)
    assert abs(at_one / (T**3 / 3) - 1) < 0.01  # T³/3 at g = 1 (and as g → 1⁻)
    assert stability_flip_closed_form(1 - 1e-7, one, T) / at_one == pytest.approx(1, abs=1e-4)
    # for a fixed |g| < 1 the sum converges (not T³/3): (1 + g²)/(1 − g²)³
    for g in (0.5, 0.9):
        limit = (1 + g * g) / (1 - g * g) ** 3
        assert stability_flip_closed_form(g, one, 2000) == pytest.approx(limit, rel=1e-12)
    # beyond g*: T² g^{2T} / (g² − 1), to O(1/T)
    g = 1.2
    ratio = stability_flip_closed_form(g, one, 800) / (800**2 * g**1600 / (g * g - 1))
    assert abs(ratio - 1) < 0.01


def test_curve_is_vectorized_and_matches_pointwise_and_finite_differences():
    nf = NORMAL_FORMS["neimark_sacker"]
    h0 = (2 * torch.rand(16, 2, dtype=DT, generator=torch.Generator().manual_seed(3)) - 1) * 0.1
    gs = torch.tensor([0.7, 1.0, 1.2], dtype=DT)
    norm, bounded, escaped = nf.sntk_g_curve(gs, h0, 25)
    assert not bool(escaped.any())
    torch.testing.assert_close(norm, bounded)
    for g, n in zip(gs.tolist(), norm.tolist(), strict=True):
        v, n1 = nf.sntk_g(g, h0, 25)
        assert n1 == pytest.approx(n, rel=1e-12)
        eps = 1e-6
        fd = (nf.trajectory(g + eps, h0, 25) - nf.trajectory(g - eps, h0, 25)) / (2 * eps)
        torch.testing.assert_close(v, fd, rtol=1e-6, atol=1e-8)


def test_pitchfork_matches_the_flip_below_threshold():
    h0 = (torch.rand(64, 1, dtype=DT, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.02
    flip, pf = NORMAL_FORMS["stability_flip"], NORMAL_FORMS["pitchfork"]
    for g in (0.5, 0.8):
        assert math.isclose(pf.sntk_g(g, h0, 30)[1], flip.sntk_g(g, h0, 30)[1], rel_tol=1e-3)


def test_escaping_orbits_are_reported_not_hidden():
    nf = NORMAL_FORMS["saddle_node"]
    h0 = torch.tensor([[-0.1], [0.05]], dtype=DT)
    norm, bounded, escaped = nf.sntk_g_curve(torch.tensor([0.8, 1.2], dtype=DT), h0, 30)
    assert math.isinf(float(norm[0])) and bool(escaped[0].all())
    assert math.isfinite(float(norm[1])) and not bool(escaped[1].any())
    assert float(bounded[0]) == 0.0
    with pytest.raises(ValueError, match="h0"):
        nf.sntk_g(1.0, torch.zeros(3), 5)
