"""The Estimate type and the jackknife for functions of means."""

import math

import pytest
import torch

from sntkit.linalg import Estimate
from sntkit.linalg.estimate import jackknife


@pytest.mark.parametrize(
    ("est", "text"),
    [
        (Estimate(1.23449, 0.005, 96), "1.234 ± 0.005 (96 matvecs)"),
        (Estimate(1.23456, 0.0012, 96), "1.2346 ± 0.0012 (96 matvecs)"),
        (Estimate(12345.6, 23.4, 8), "12346 ± 23 (8 matvecs)"),
        (Estimate(4.520812, 0.0, 60), "4.52081 (60 matvecs)"),
        (Estimate(2.5, math.inf, 1), "2.5 ± inf (1 matvecs)"),
        (Estimate(3.0, 0.5, 64, converged=False), "3.0 ± 0.5 (64 matvecs, not converged)"),
        (Estimate(3.2e9, 1.1e7, 64), "3.2e+09 ± 1.1e+07 (64 matvecs)"),
    ],
)
def test_repr(est, text):
    assert repr(est) == text


def test_float_interval_and_immutability():
    est = Estimate(2.0, 0.5, 10)
    assert float(est) == 2.0 and est.converged is None
    assert est.interval() == (2.0 - 0.98, 2.0 + 0.98)
    with pytest.raises(AttributeError):
        est.value = 3.0  # type: ignore[misc]


def test_jackknife_matches_the_delta_method_for_a_ratio():
    g = torch.Generator().manual_seed(0)
    m = 4000
    a = 2.0 + torch.randn(m, generator=g, dtype=torch.float64)
    b = 1.0 + 0.3 * a + 0.5 * torch.randn(m, generator=g, dtype=torch.float64)
    est = jackknife(
        torch.zeros(2, dtype=torch.float64), torch.stack([a, b]), lambda x: x[0] / x[1], m
    )
    ma, mb = float(a.mean()), float(b.mean())
    grad = torch.tensor([1 / mb, -ma / mb**2], dtype=torch.float64)
    cov = torch.cov(torch.stack([a, b]))
    delta = math.sqrt(float(grad @ cov @ grad) / m)
    assert math.isclose(est.value, ma / mb, rel_tol=1e-12)
    assert math.isclose(est.stderr, delta, rel_tol=0.02) and est.num_matvecs == m
    # with an exact base part the random part is shifted, not rescaled
    shifted = jackknife(
        torch.tensor([1.0, 0.0], dtype=torch.float64), torch.stack([a, b]), lambda x: x[0], m
    )
    assert math.isclose(shifted.value, 1.0 + ma, rel_tol=1e-12)
    assert math.isclose(shifted.stderr, float(a.std()) / math.sqrt(m), rel_tol=1e-9)
    single = jackknife(torch.zeros(1, dtype=torch.float64), a[None, :1], lambda x: x[0], 1)
    assert single.stderr == math.inf
