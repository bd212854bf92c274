"""Paper 000 Fig. 2 data: the sNTK_g curves of every normal form over g and their summaries."""

import pytest
import torch

from sntkit.experiments.normal_forms import figure2_data

DT = torch.float64


def test_figure2_curves_flip_monotone_others_peaked():
    data = figure2_data(g_values=torch.linspace(0.5, 1.5, 41, dtype=DT), batch=64)
    for a in ("0.05", "0.1"):
        flip_r = data["stability_flip"]["ranges"][a]
        assert flip_r["monotone_past_gstar"] is True and not flip_r["peaked"]
        assert flip_r["g_peak"] == 1.5
        for name in ("pitchfork", "period_doubling", "neimark_sacker"):
            r = data[name]["ranges"][a]
            assert r["peaked"] and r["monotone_past_gstar"] is False, name
            assert 1.0 < r["g_peak"] < 1.5 and r["peak_over_gstar"] > 1.5, name
            assert r["escaped_fraction_of_grid"] == 0.0
    # the flip normal form is the pitchfork's conjugate (h_t ↦ (−1)^t h_t): same sNTK norm
    assert data["period_doubling"]["ranges"]["0.1"]["norm"] == pytest.approx(
        data["pitchfork"]["ranges"]["0.1"]["norm"], rel=1e-12
    )


def test_figure2_data_rejects_unknown_forms():
    with pytest.raises(ValueError, match="unknown normal forms"):
        figure2_data(["bogus"])
