"""The normal-form fit of a local landscape (paper 000 Fig. 1E) on synthetic curves."""

import pytest
import torch

from sntkit.dynamics import NORMAL_FORMS, fit_normal_form

DT = torch.float64


def test_landscape_fit_recovers_known_scale_amplitude_and_offset():
    nf = NORMAL_FORMS["pitchfork"]
    gen = torch.Generator().manual_seed(0)
    h0 = (2 * torch.rand(64, 1, generator=gen, dtype=DT) - 1) * 0.1
    s = torch.linspace(-0.2, 0.25, 19, dtype=DT)
    a, c, s0 = 2.5, 7.0, 0.03
    synthetic = c * nf.sntk_g_curve(1 + a * (s - s0), h0, 25)[0]
    fit = fit_normal_form(s, synthetic, "pitchfork", T=25, h0_ranges=(0.05, 0.1, 0.2))
    assert fit.h0_range == 0.1 and fit.num_fitted_parameters == 4
    assert fit.a == pytest.approx(a, rel=1e-6) and fit.s0 == pytest.approx(s0, abs=1e-7)
    assert fit.c == pytest.approx(c, rel=1e-6) and fit.r2 > 1 - 1e-10
    torch.testing.assert_close(fit.predicted, synthetic, rtol=1e-5, atol=0)
    # with the offset fixed at 0 (data centred on the bifurcation) a and c alone are fitted
    centred = c * nf.sntk_g_curve(1 + a * s, h0, 25)[0]
    fit0 = fit_normal_form(s, centred, "pitchfork", T=25, h0_ranges=(0.1,), fit_offset=False)
    assert fit0.num_fitted_parameters == 2 and fit0.s0 == 0.0
    assert fit0.a == pytest.approx(a, rel=1e-6) and fit0.c == pytest.approx(c, rel=1e-6)
    with pytest.raises(ValueError, match="positive"):
        fit_normal_form(s, -synthetic)
    with pytest.raises(ValueError, match="unknown normal form"):
        fit_normal_form(s, synthetic, "bogus")
