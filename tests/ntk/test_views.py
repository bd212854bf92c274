"""Reduced views (Prop. 2, eq. 15), the rank bound, and alignment (Cor. 2)."""

import itertools

import pytest
import torch

from sntkit.models import GRU, RNN
from sntkit.ntk import state_ntk

DT = torch.float64
AXES = ("batch", "time", "unit")
LETTERS = "btn"


def _ntk(trainable=None, seed=0, B=3, T=4, N=5):
    g = torch.Generator().manual_seed(seed)
    cell = RNN(N, 2, dtype=DT, generator=g, gain=1.2)
    with torch.no_grad():
        cell.b.normal_(generator=g)
    h0 = torch.randn(B, N, generator=g, dtype=DT)
    x = torch.randn(B, T, 2, generator=g, dtype=DT)
    return state_ntk(cell, h0, x, trainable=trainable)


def _dense_view(M6, keep):
    """Partial mean of a 6-tensor over the axes not in ``keep`` via einsum."""
    left = LETTERS
    right = "".join(c.upper() if a in keep else c for a, c in zip(AXES, LETTERS, strict=True))
    out = "".join(c for a, c in zip(AXES, LETTERS, strict=True) if a in keep)
    out += out.upper()
    traced = [s for a, s in zip(AXES, M6.shape[:3], strict=True) if a not in keep]
    d = 1
    for s in traced:
        d *= s
    R = torch.einsum(f"{left}{right}->{out}", M6) / d
    n = int(R.numel() ** 0.5)
    return R.reshape(n, n)


@pytest.mark.parametrize("keep", [k for r in (1, 2) for k in itertools.combinations(AXES, r)])
def test_every_view_is_the_true_partial_mean(keep):
    ntk = _ntk()
    B, T, N = ntk.state_shape
    M6 = ntk.operator.to_dense().reshape(B, T, N, B, T, N)
    expected = _dense_view(M6, keep)
    torch.testing.assert_close(ntk.view(keep).to_dense(), expected)
    torch.testing.assert_close(ntk.view_matrix(keep), expected)


def test_temporal_and_spatial_shortcuts():
    ntk = _ntk()
    B, T, N = ntk.state_shape
    M6 = ntk.operator.to_dense().reshape(B, T, N, B, T, N)
    temporal = torch.einsum("btnBTn->btBT", M6).reshape(B * T, B * T) / N
    spatial = torch.einsum("btnbtN->nN", M6) / (B * T)
    torch.testing.assert_close(ntk.temporal().to_dense(), temporal)
    torch.testing.assert_close(ntk.spatial().to_dense(), spatial)
    assert ntk.temporal().shape_in == (B, T)
    assert ntk.spatial().names_in == ("unit",)


def test_sketched_view_is_unbiased():
    ntk = _ntk()
    exact = ntk.view_matrix(("unit",))
    sketches = torch.stack(
        [ntk.view_matrix(("unit",), method="sketch", num_probes=64, seed=s) for s in range(200)]
    )
    mean, sem = sketches.mean(0), sketches.std(0) / 200**0.5
    assert ((mean - exact).abs() <= 5 * sem + 1e-12).all()
    assert (sketches[0] - exact).abs().max() > 1e-3 * exact.abs().max()  # it is a sketch


def _rank(M, tol=1e-9):
    s = torch.linalg.svdvals(M)
    return int((s > tol * s[0]).sum())


@pytest.mark.parametrize("trainable", [None, ["b"], ["W_in"]])
def test_rank_bound_prop2(trainable):
    """rank(δh) <= min(rank NTK^space, rank NTK^temp) for random error signals."""
    ntk = _ntk(trainable, B=2, T=3, N=6)
    B, T, N = ntk.state_shape
    r_temp = _rank(ntk.temporal().to_dense())
    r_space = _rank(ntk.spatial().to_dense())
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        err = torch.randn(B, T, N, generator=g, dtype=DT)
        dh = ntk.operator.matvec(err).reshape(B * T, N)
        assert _rank(dh) <= min(r_temp, r_space)


def test_rank_bound_is_tight_when_a_view_is_rank_one():
    """Training only b over one step: NTK = 1 1^T ⊗ I, the temporal view has rank 1."""
    cell = RNN(4, 0, form="post", dtype=DT)
    ntk = state_ntk(cell, torch.randn(3, 4, dtype=DT), steps=1, trainable=["b"])
    assert _rank(ntk.temporal().to_dense()) == 1
    err = torch.randn(3, 1, 4, dtype=DT)
    assert _rank(ntk.operator.matvec(err).reshape(3, 4)) == 1


@pytest.mark.parametrize("trainable", [None, ["W"], ["W_in", "b"]])
def test_alignment_corollary2(trainable):
    ntk = _ntk(trainable)
    err = torch.randn(ntk.state_shape, dtype=DT, generator=torch.Generator().manual_seed(4))
    dense = err.reshape(-1) @ ntk.operator.to_dense() @ err.reshape(-1)
    torch.testing.assert_close(ntk.alignment(err), dense)
    torch.testing.assert_close(ntk.alignment(err, method="core"), dense)
    torch.testing.assert_close(ntk.adjoint_state(err), ntk.P.T.matvec(err))


def test_alignment_corollary2_gru():
    g = torch.Generator().manual_seed(2)
    cell = GRU(3, 2, dtype=DT, generator=g)
    ntk = state_ntk(
        cell, torch.randn(2, 3, dtype=DT, generator=g), torch.randn(2, 4, 2, dtype=DT, generator=g)
    )
    err = torch.randn(ntk.state_shape, dtype=DT, generator=g)
    dense = err.reshape(-1) @ ntk.operator.to_dense() @ err.reshape(-1)
    torch.testing.assert_close(ntk.alignment(err, method="core"), dense)


def test_target_alignment_matches_dense_cosine():
    ntk = _ntk()
    B, T, _ = ntk.state_shape
    temporal = ntk.temporal().to_dense()
    modes = torch.randn(2, B, T, dtype=DT, generator=torch.Generator().manual_seed(5))
    got = ntk.target_alignment(modes)
    for i in range(2):
        u = modes[i].reshape(-1)
        expected = u @ temporal @ u / (torch.linalg.matrix_norm(temporal) * u.dot(u))
        torch.testing.assert_close(got[i], expected)


@pytest.mark.parametrize("keep", [("batch", "time"), ("unit",), ("batch", "unit")])
def test_matrix_free_view_participation_is_accurate(keep):
    """The two-probe estimator of (tr M)²/‖M‖_F² matches the exact view's, at its error bar."""
    ntk = _ntk(seed=2)
    M = ntk.view_matrix(keep).double()
    exact = float(torch.trace(M) ** 2 / M.square().sum())
    ests = [ntk.view_participation(keep, num_samples=64, seed=s) for s in range(60)]
    v = torch.tensor([e.value for e in ests], dtype=DT)
    se = torch.tensor([e.stderr for e in ests], dtype=DT)
    assert abs(float(v.mean()) - exact) <= 4 * float(v.std()) / 60**0.5 + 0.01 * exact
    assert 0.8 <= float(((v - exact).abs() <= 1.96 * se).double().mean()) <= 1.0
    assert ests[0].num_matvecs == 128


def test_target_alignment_estimate_is_close_to_exact():
    ntk = _ntk(seed=3)
    B, T, _ = ntk.state_shape
    modes = torch.randn(2, B, T, dtype=DT, generator=torch.Generator().manual_seed(7))
    exact = ntk.target_alignment(modes)
    est = ntk.target_alignment(modes, method="estimate", num_samples=256, seed=1)
    torch.testing.assert_close(est, exact, rtol=0.05, atol=0)
    M = ntk.view_matrix(("batch", "time"))
    fro = ntk.view_frobenius(("batch", "time"), num_samples=256, seed=1)
    assert abs(fro.value - float(torch.linalg.matrix_norm(M))) <= 4 * fro.stderr
