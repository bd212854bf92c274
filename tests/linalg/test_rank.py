"""Effective ranks and the variance rank against dense eigenvalues."""

import math

import pytest
import torch
from spectra import DT, coverage, decaying, low_rank_plus_noise, trials, with_spectrum

import sntkit.linalg as sla
from sntkit.operators import Dense


def dense_ranks(lam: torch.Tensor) -> dict[str, float]:
    p = lam / lam.sum()
    return {
        "participation": float(lam.sum() ** 2 / lam.square().sum()),
        "stable": float(lam.sum() / lam.max()),
        "entropy": float(torch.exp(-torch.special.xlogy(p, p).sum())),
    }


LAM = decaying(200, 0.1)
OP = with_spectrum(LAM, shape=(10, 20))


@pytest.mark.parametrize(
    ("kind", "budget"), [("participation", 90), ("stable", 60), ("entropy", 400)]
)
def test_randomized_effective_ranks_vs_dense_eigenvalues(kind, budget):
    truth = dense_ranks(LAM)[kind]
    count = 150
    v, se, mv = trials(
        lambda s: sla.effective_rank(OP, kind, budget, method="randomized", seed=s), count
    )
    spread = float(v.std())
    assert spread < 0.06 * truth  # a useful estimate at this budget
    # nonlinear functions of unbiased moments: the mean is within 4 standard errors plus 10 %
    # of the spread (the O(1/m) bias and, for the entropy, the quadrature error)
    assert abs(float(v.mean()) - truth) <= 4 * spread / math.sqrt(count) + 0.1 * spread
    assert 0.85 <= coverage(v, se, truth) <= 1.0, coverage(v, se, truth)
    if kind != "stable":  # (the eigensolver's applications come on top for "stable")
        assert mv <= budget + 10


@pytest.mark.parametrize("kind", ["participation", "stable", "entropy"])
def test_exact_effective_ranks(kind):
    lam = decaying(60, 0.2)
    op = with_spectrum(lam, shape=(6, 10))
    truth = dense_ranks(lam)[kind]
    est = sla.effective_rank(op, kind, method="exact")
    assert math.isclose(est.value, truth, rel_tol=1e-9) and est.stderr == 0
    auto = sla.effective_rank(op, kind, 64)  # size 60 <= budget: "auto" is exact
    assert math.isclose(auto.value, truth, rel_tol=1e-9)


def test_entropy_rank_of_a_low_rank_operator_is_exact_with_deflation():
    lam = low_rank_plus_noise(300, 5, 0.0)
    op = with_spectrum(lam)
    truth = dense_ranks(lam)["entropy"]
    est = sla.effective_rank(op, "entropy", 240, method="randomized", seed=0)
    # the 6-vector sketch spans the rank-5 range: the quadrature is exact, no probe noise left
    assert abs(est.value - truth) <= 1e-8 * truth and est.stderr <= 1e-8 * truth
    part = sla.effective_rank(op, "participation", 30, method="randomized", seed=0)
    assert abs(part.value - dense_ranks(lam)["participation"]) <= 1e-10


def test_variance_rank():
    lam = decaying(300, 0.05)
    op = with_spectrum(lam)
    cs = torch.cumsum(lam, 0)
    for fraction in (0.5, 0.9):
        truth = int((cs >= fraction * lam.sum()).nonzero()[0]) + 1
        est = sla.variance_rank(op, fraction, num_matvecs=150, seed=0)
        assert est.converged and abs(est.value - truth) <= max(1.0, 2 * est.stderr), (truth, est)
        exact = sla.variance_rank(op, fraction, method="exact")
        assert exact.value == truth and exact.stderr == 0
    capped = sla.variance_rank(op, 0.99, num_matvecs=150, max_k=8, seed=0)
    assert capped.value == 8 and capped.converged is False


def test_rank_errors_name_the_argument():
    indefinite = with_spectrum(torch.linspace(-1, 1, 50, dtype=DT))
    for kind in ("participation", "entropy"):
        for method in ("randomized", "exact"):
            with pytest.raises(
                ValueError, match="effective_rank: op must be positive semidefinite"
            ):
                sla.effective_rank(indefinite, kind, 40, method=method, seed=0)
    negative = with_spectrum(-decaying(50, 0.1))
    with pytest.raises(ValueError, match="effective_rank: op must be positive semidefinite"):
        sla.effective_rank(negative, "stable", 30, seed=0)
    nonsym = Dense(torch.randn(50, 50, dtype=DT, generator=torch.Generator().manual_seed(0)))
    for kind in ("participation", "entropy", "stable"):
        with pytest.raises(ValueError, match="op must be symmetric"):
            sla.effective_rank(nonsym, kind, 40, method="randomized", seed=0)
    with pytest.raises(ValueError, match="effective_rank: op must be square"):
        sla.effective_rank(Dense(torch.eye(3, 4, dtype=DT)))
    with pytest.raises(ValueError, match="effective_rank: kind must be one of"):
        sla.effective_rank(OP, "fancy")
    with pytest.raises(ValueError, match="effective_rank: method must be one of"):
        sla.effective_rank(OP, method="dense")
    with pytest.raises(ValueError, match=r"variance_rank: fraction must be in \(0, 1\], got 1.5"):
        sla.variance_rank(OP, 1.5)


def test_participation_ratio_of_a_dense_matrix_equals_its_eigenvalue_formula():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(30, 7, dtype=DT, generator=gen) * torch.linspace(0.1, 3, 7, dtype=DT)
    M = X.T @ X
    lam = torch.linalg.eigvalsh(M)
    expected = float(lam.sum() ** 2 / lam.square().sum())
    assert math.isclose(sla.participation_ratio(M), expected, rel_tol=1e-12)
    assert math.isclose(sla.participation_ratio(torch.eye(5)), 5.0, rel_tol=1e-12)
    with pytest.raises(ValueError, match="square"):
        sla.participation_ratio(X)
