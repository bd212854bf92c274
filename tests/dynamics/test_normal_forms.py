"""Normal forms: analytic fixed points, the stability-flip closed form, Figure-2 shapes."""

import math

import pytest
import torch

from sntkit.dynamics import NORMAL_FORMS, figure2_data, stability_flip_closed_form

DT = torch.float64


@pytest.mark.parametrize("name", list(NORMAL_FORMS))
@pytest.mark.parametrize("g", [0.6, 0.95, 1.05, 1.4])
def test_analytic_fixed_points_are_fixed_and_stability_matches_jacobian(name, g):
    nf = NORMAL_FORMS[name]
    for point, stable in nf.fixed_points(g):
        h = torch.tensor([point], dtype=DT)
        if name == "period_doubling" and point != [0.0]:
            h2 = nf.step(nf.step(h, g), g)  # a 2-cycle point
            torch.testing.assert_close(h2, h)
            d = torch.func.jacfwd(lambda x: nf.step(nf.step(x, g), g))(h[0])
            assert (torch.linalg.eigvals(d).abs().max() < 1) == stable
            continue
        if name == "neimark_sacker" and point != [0.0, 0.0]:
            r = nf.step(h, g).norm()  # the invariant circle keeps its radius
            torch.testing.assert_close(r, h.norm())
            continue
        torch.testing.assert_close(nf.step(h, g), h)
        d = torch.func.jacfwd(lambda x: nf.step(x, g))(h[0])
        assert bool(torch.linalg.eigvals(d).abs().max() < 1) == stable, (name, g, point)


def test_closed_form_equals_autodiff_for_stability_flip():
    h0 = (torch.rand(32, 1, dtype=DT, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.2
    nf = NORMAL_FORMS["stability_flip"]
    for g in (0.3, 0.9, 1.0, 1.1, 1.3):
        _, auto = nf.sntk_g(g, h0, 30)
        closed = stability_flip_closed_form(g, h0, 30)
        assert math.isclose(auto, closed, rel_tol=1e-10)
    T = 200
    at_one = stability_flip_closed_form(1.0, torch.ones(1, 1, dtype=DT), T)
    assert math.isclose(at_one, T * (T + 1) * (2 * T + 1) / 6, rel_tol=1e-12)
    assert abs(at_one / (T**3 / 3) - 1) < 0.01


def test_pitchfork_matches_flip_below_and_is_peaked_above():
    h0 = (torch.rand(64, 1, dtype=DT, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.02
    flip, pf = NORMAL_FORMS["stability_flip"], NORMAL_FORMS["pitchfork"]
    for g in (0.5, 0.8):
        assert math.isclose(pf.sntk_g(g, h0, 30)[1], flip.sntk_g(g, h0, 30)[1], rel_tol=1e-3)
    data = figure2_data(
        ["stability_flip", "pitchfork"], g_values=torch.linspace(0.5, 1.5, 41, dtype=DT)
    )
    for a in ("0.05", "0.1"):
        flip_r, pf_r = data["stability_flip"]["ranges"][a], data["pitchfork"]["ranges"][a]
        assert flip_r["monotone_past_gstar"] is True and flip_r["g_peak"] == 1.5
        assert pf_r["monotone_past_gstar"] is False
        assert 1.0 < pf_r["g_peak"] < 1.5 and pf_r["peak_over_gstar"] > 1.5


def test_escaping_orbits_are_reported_not_hidden():
    nf = NORMAL_FORMS["saddle_node"]
    h0 = torch.tensor([[-0.1]], dtype=DT)
    _, norm = nf.sntk_g(0.8, h0, 30)
    assert math.isinf(norm)
