"""Randomized estimators: unbiasedness, stated accuracy of the error bars, eigensolvers vs eigh."""

import math

import pytest
import torch

import sntkit.linalg as sla
from sntkit.linalg.trace import xtrace_estimate
from sntkit.operators import Dense, Identity

DT = torch.float64


def psd(n, decay, seed=0, shape=None):
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT)).Q
    lam = torch.exp(-decay * torch.arange(n, dtype=DT))
    A = U @ torch.diag(lam) @ U.T
    return Dense(A, shape_in=shape or (n,)), lam


def _trials(fn, true, n=300):
    ests = [fn(s) for s in range(n)]
    v = torch.tensor([e.value for e in ests], dtype=DT)
    se = torch.tensor([e.stderr for e in ests], dtype=DT)
    return v, se, ests[0].num_matvecs


def test_exact_trace():
    op, lam = psd(30, 0.1, shape=(5, 6))
    est = sla.trace(op, "exact")
    assert est.stderr == 0 and est.num_matvecs == 30
    assert math.isclose(est.value, float(lam.sum()), rel_tol=1e-12)


@pytest.mark.parametrize("method", ["hutchinson", "hutch++", "xtrace"])
def test_trace_unbiased_and_error_bars_cover(method):
    op, lam = psd(60, 0.25, shape=(3, 4, 5))
    true = float(lam.sum())
    v, se, mv = _trials(lambda s: sla.trace(op, method, 60, seed=s), true)
    assert mv == 60
    # unbiased: the mean of 300 estimates is within 4 standard errors of the mean
    assert abs(float(v.mean()) - true) <= 4 * float(v.std()) / math.sqrt(len(v))
    # the reported standard error matches the observed spread and covers at ~95%
    cover = float(((v - true).abs() <= 1.96 * se).double().mean())
    assert 0.85 <= cover <= 0.99, cover
    assert 0.6 <= float(se.mean() / v.std()) <= 1.6


def test_hutchpp_beats_hutchinson_on_low_rank():
    op, lam = psd(200, 0.3)
    true = float(lam.sum())
    rmse = {}
    for method in ("hutchinson", "hutch++", "xtrace"):
        v, _, _ = _trials(lambda s, m=method: sla.trace(op, m, 30, seed=s), true, n=100)
        rmse[method] = float((v - true).square().mean().sqrt())
    assert rmse["hutch++"] < 0.3 * rmse["hutchinson"]  # measured ~0.18 on this spectrum
    assert rmse["xtrace"] < rmse["hutch++"]


def test_xtrace_equals_naive_leave_one_out():
    for A in (
        psd(40, 0.2)[0].matrix,
        torch.randn(40, 40, dtype=DT, generator=torch.Generator().manual_seed(1)),
    ):
        g = torch.Generator().manual_seed(3)
        value, _ = xtrace_estimate(Dense(A), 12, g)
        Om = torch.randn((6, 40), generator=torch.Generator().manual_seed(3), dtype=DT).T
        Y = A @ Om
        ests = []
        for i in range(6):
            Qi = torch.linalg.qr(Y[:, [j for j in range(6) if j != i]]).Q
            w = Om[:, i] - Qi @ (Qi.T @ Om[:, i])
            ests.append(torch.trace(Qi.T @ A @ Qi) + w @ A @ w)
        assert math.isclose(value, float(torch.stack(ests).mean()), rel_tol=1e-10)


@pytest.mark.parametrize("method", ["hutchinson", "hutch++", "xtrace"])
def test_adaptive_trace_reaches_rtol(method):
    op, lam = psd(150, 0.15)
    est = sla.trace(op, method, 12, rtol=0.01, seed=0)
    assert est.converged and est.stderr <= 0.01 * abs(est.value)
    assert abs(est.value - float(lam.sum())) <= 5 * est.stderr
    capped = sla.trace(op, "hutchinson", 4, rtol=1e-9, max_matvecs=64, seed=0)
    assert capped.converged is False and capped.num_matvecs <= 64


def test_norms_cosine_compare_vs_dense():
    op, _ = psd(80, 0.3, shape=(8, 10))
    A = op.matrix
    B = A + 0.05 * torch.randn(80, 80, dtype=DT, generator=torch.Generator().manual_seed(2))
    opB = Dense(B, shape_in=(8, 10))
    truth = {
        "fro": float(A.norm()),
        "cos": float((A * B).sum() / (A.norm() * B.norm())),
        "cmp": float((A - B).norm() / B.norm()),
    }
    fns = {
        "fro": lambda s: sla.frobenius_norm(op, seed=s),
        "cos": lambda s: sla.cosine_similarity(op, opB, num_matvecs=120, seed=s),
        "cmp": lambda s: sla.compare(op, opB, num_matvecs=120, seed=s),
    }
    for name, fn in fns.items():
        v, se, _ = _trials(fn, truth[name], n=150)
        assert abs(float(v.mean()) - truth[name]) <= 0.01 * abs(truth[name]), name
        cover = float(((v - truth[name]).abs() <= 1.96 * se).double().mean())
        assert 0.8 <= cover <= 1.0, (name, cover)
    assert math.isclose(sla.cosine_similarity(op, opB, "exact").value, truth["cos"], rel_tol=1e-12)
    assert math.isclose(sla.compare(op, opB, "exact").value, truth["cmp"], rel_tol=1e-12)
    assert math.isclose(sla.frobenius_norm(op, "exact").value, truth["fro"], rel_tol=1e-12)


@pytest.mark.parametrize("kind", ["participation", "stable", "entropy"])
def test_effective_ranks_vs_dense_spectrum(kind):
    op, lam = psd(100, 0.2, shape=(10, 10))
    p = lam / lam.sum()
    truth = {
        "participation": float(lam.sum() ** 2 / lam.square().sum()),
        "stable": float(lam.sum() / lam[0]),
        "entropy": float(torch.exp(-(p * p.log()).sum())),
    }[kind]
    budget = 240 if kind == "entropy" else 90
    v, se, _ = _trials(lambda s: sla.effective_rank(op, kind, budget, seed=s), truth, n=80)
    assert abs(float(v.mean()) - truth) <= 4 * float(v.std()) / math.sqrt(80) + 0.02 * truth
    cover = float(((v - truth).abs() <= 1.96 * se).double().mean())
    assert cover >= 0.75, cover


def test_variance_rank():
    op, lam = psd(120, 0.1)
    cs = torch.cumsum(lam, 0)
    truth = int((cs >= 0.9 * lam.sum()).nonzero()[0]) + 1
    est = sla.variance_rank(op, 0.9, num_matvecs=200, seed=0)
    assert abs(est.value - truth) <= max(1, 2 * est.stderr) and est.converged


def test_eigsh_matches_eigh_on_decaying_spectra():
    for n, decay, shape in [(200, 0.2, (200,)), (240, 0.03, (4, 6, 10)), (64, 0.01, (8, 8))]:
        op, lam = psd(n, decay, seed=n, shape=shape)
        vals, vecs, info = sla.eigsh(op, 10, tol=1e-9, seed=0, return_info=True)
        assert info.converged and vecs.shape == (10, *shape)
        assert (vals - lam[:10]).abs().max() <= 1e-6
        ev = torch.linalg.eigh(op.matrix).eigenvectors[:, -10:].flip(1)
        cos = (vecs.reshape(10, -1) * ev.T).sum(1).abs()
        assert (cos > 1 - 1e-6).all()


def test_eigsh_on_kronecker_operator_and_svds():
    A, la = psd(6, 0.5, seed=1)
    B, lb = psd(5, 0.3, seed=2)
    K = A.kron(B)
    expected = torch.sort(torch.outer(la, lb).reshape(-1), descending=True).values[:4]
    vals, _ = sla.eigsh(K, 4, tol=1e-10, seed=0)
    assert (vals - expected).abs().max() <= 1e-6
    M = torch.randn(30, 50, dtype=DT, generator=torch.Generator().manual_seed(0))
    op = Dense(M, shape_in=(5, 10), shape_out=(30,))
    U, S, Vh = sla.svds(op, 5, tol=1e-10)
    assert (S - torch.linalg.svdvals(M)[:5]).abs().max() <= 1e-6
    recon = sum(S[i] * torch.outer(U[i].reshape(-1), Vh[i].reshape(-1)) for i in range(5))
    u, s, vh = torch.linalg.svd(M)
    torch.testing.assert_close(recon, (u[:, :5] * s[:5]) @ vh[:5], rtol=1e-6, atol=1e-6)
    assert math.isclose(op.norm(), float(s[0]), rel_tol=1e-8)


def test_estimators_reproducible_and_validated():
    op, _ = psd(50, 0.2)
    assert sla.trace(op, seed=3).value == sla.trace(op, seed=3).value
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert sla.trace(op, generator=g1).value == sla.trace(op, generator=g2).value
    rect = Dense(torch.zeros(3, 4, dtype=DT))
    with pytest.raises(ValueError, match="square"):
        sla.trace(rect)
    with pytest.raises(ValueError, match="method"):
        sla.trace(op, "magic")
    with pytest.raises(ValueError, match="k must be"):
        sla.eigsh(op, 51)
    with pytest.raises(ValueError, match="either seed"):
        sla.trace(op, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="kind"):
        sla.effective_rank(op, "fancy")
    with pytest.raises(ValueError, match="shapes"):
        sla.cosine_similarity(op, Identity(49, dtype=DT))
