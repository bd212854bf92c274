"""Spectral estimators of Gram operators ``J J^*`` run on the cheap side (dense float64 checks)."""

import pytest
import torch

from sntkit.linalg import (
    cosine_similarity,
    effective_rank,
    eigsh,
    frobenius_norm,
    svds,
    trace,
)
from sntkit.linalg.gram_side import cheap_side, map_back
from sntkit.operators import Dense, Gram, Operator

DT = torch.float64


class Counting(Dense):
    """A dense factor that counts its applications (to see which side was used)."""

    def __init__(self, M, **kw):
        super().__init__(M, **kw)
        self.calls = 0

    def _matmat(self, X):
        self.calls += X.shape[0]
        return super()._matmat(X)

    def _rmatmat(self, Y):
        self.calls += Y.shape[0]
        return super()._rmatmat(Y)


def _factor(n_out=(3, 4, 5), p=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in n_out:
        n *= s
    M = torch.randn(n, p, dtype=DT, generator=g) * torch.logspace(0, -2, p, dtype=DT)
    return Counting(M, shape_in=(p,), shape_out=n_out), M


def test_gram_operator_and_its_dual_are_dense_products():
    J, M = _factor()
    G = J.gram()
    assert isinstance(G, Gram) and G.factor is J and G.shape == (60, 60)
    assert torch.allclose(G.to_dense(), M @ M.T)
    assert torch.allclose(G.dual.to_dense(), M.T @ M)
    assert G.dual.dual.factor is J
    assert cheap_side(G).shape_in == (7,) and cheap_side(G.dual).shape_in == (7,)
    with pytest.raises(ValueError, match=r"Gram: direct must act on \(3, 4, 5\)"):
        Gram(J, direct=Dense(M.T @ M))


def test_eigsh_of_a_gram_runs_on_the_small_side_and_maps_back():
    J, M = _factor()
    G = J.gram()
    values, vectors, info = eigsh(G, 4, seed=0, return_info=True)
    lam, U = torch.linalg.eigh(M @ M.T)
    assert torch.allclose(values, lam.flip(0)[:4], rtol=1e-9)
    V = vectors.reshape(4, -1)
    assert torch.allclose(V @ V.T, torch.eye(4, dtype=DT), atol=1e-9)
    assert torch.allclose((V @ U[:, -4:].flip(1)).abs().diagonal(), torch.ones(4, dtype=DT))
    # every application was to the 7-dimensional side: the 60-dim one would need >= 8 probes
    # per block just to start, and the map-back costs k applications of J
    assert info.num_matvecs <= 2 * 7 + 4
    # k beyond the rank: falls back to the operator itself (zero eigenvalues)
    values9 = eigsh(G, 9, seed=0)[0]
    assert torch.allclose(values9[:7], lam.flip(0)[:7], rtol=1e-8)
    assert torch.allclose(values9[7:], torch.zeros(2, dtype=DT), atol=1e-10)


def test_map_back_is_J_v_over_sqrt_lambda():
    J, M = _factor(seed=1)
    lam, V = torch.linalg.eigh(M.T @ M)
    U = map_back(J.gram(), V.T[-2:].contiguous())
    expect = (M @ V[:, -2:]) / lam[-2:].sqrt()
    assert torch.allclose(U.reshape(2, -1), expect.T)


def test_svds_trace_norm_rank_of_a_gram_match_dense():
    J, M = _factor(seed=2)
    G = J.gram()
    A = M @ M.T
    lam = torch.linalg.eigvalsh(A).flip(0).clamp_min(0)
    U, S, Vh = svds(G, 3, seed=0)
    assert torch.allclose(S, lam[:3], rtol=1e-9) and torch.equal(U, Vh)
    J.calls = 0
    assert trace(G, method="exact").value == pytest.approx(float(lam.sum()), rel=1e-12)
    assert J.calls == 2 * 7  # the basis of the 7-dim side, not of the 60-dim one
    fro = frobenius_norm(G, method="exact").value
    assert fro == pytest.approx(float(lam.square().sum().sqrt()), rel=1e-12)
    pr = effective_rank(G, "participation", method="exact").value
    assert pr == pytest.approx(float(lam.sum() ** 2 / lam.square().sum()), rel=1e-10)
    # randomized on the 7-dim side is exact once the sketch spans it
    assert trace(G, num_matvecs=30, seed=0).value == pytest.approx(float(lam.sum()), rel=1e-10)


def test_cosine_of_two_grams_on_the_parameter_sides():
    J1, M1 = _factor(seed=3)
    J2, M2 = _factor(p=5, seed=4)
    A1, A2 = M1 @ M1.T, M2 @ M2.T
    expect = (A1 * A2).sum() / (torch.linalg.matrix_norm(A1) * torch.linalg.matrix_norm(A2))
    est = cosine_similarity(J1.gram(), J2.gram(), method="exact")
    assert est.value == pytest.approx(float(expect), rel=1e-10) and est.stderr == 0
    rnd = cosine_similarity(J1.gram(), J2.gram(), num_matvecs=64, seed=0)
    assert rnd.value == pytest.approx(float(expect), rel=1e-8)  # rank <= sketch: exact
    dense = cosine_similarity(Dense(A1, shape_in=(3, 4, 5)), J2.gram(), method="exact")
    assert dense.value == pytest.approx(float(expect), rel=1e-10)


def test_large_factor_side_keeps_the_gram_side():
    g = torch.Generator().manual_seed(5)
    M = torch.randn(6, 40, dtype=DT, generator=g)
    G = Dense(M).gram()
    assert cheap_side(G) is G
    values = eigsh(G, 2, seed=0)[0]
    assert torch.allclose(values, torch.linalg.eigvalsh(M @ M.T).flip(0)[:2])
    assert isinstance(G, Operator)
