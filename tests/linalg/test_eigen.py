"""eigsh / svds / spectral_norm against torch.linalg.eigh and svd (float64)."""

import math

import pytest
import torch
from spectra import DT, decaying, rotation, with_spectrum

import sntkit.linalg as sla
from sntkit.operators import Dense, Identity


def assert_subspace_close(vecs: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
    """The row spaces of ``vecs`` and ``ref`` (orthonormal rows) agree: ‖P − P_ref‖ <= tol."""
    P, R = vecs.T @ vecs, ref.T @ ref
    assert float(torch.linalg.matrix_norm(P - R, ord=2)) <= tol


@pytest.mark.parametrize(
    ("n", "rate", "shape"),
    [(200, 0.2, (200,)), (240, 0.03, (4, 6, 10)), (64, 0.01, (8, 8)), (500, 0.05, (5, 10, 10))],
)
def test_eigsh_matches_eigh_on_decaying_spectra(n, rate, shape):
    lam = decaying(n, rate)
    op = with_spectrum(lam, seed=n, shape=shape)
    vals, vecs, info = sla.eigsh(op, 10, seed=0, return_info=True)  # default tol
    assert info.converged and vecs.shape == (10, *shape) and vals.shape == (10,)
    assert bool((vals[:-1] >= vals[1:]).all())
    ref_vals, ref_vecs = torch.linalg.eigh(op.matrix)
    assert float((vals - ref_vals.flip(0)[:10]).abs().max()) <= 1e-6
    V = vecs.reshape(10, -1)
    torch.testing.assert_close(V @ V.T, torch.eye(10, dtype=DT))
    cos = (V * ref_vecs.flip(1)[:, :10].T).sum(1).abs()
    assert float((1 - cos).max()) <= 1e-6
    # the residuals reported are the true ones
    R = (V @ op.matrix - vals[:, None] * V).norm(dim=1)
    torch.testing.assert_close(info.residuals, R, rtol=1e-6, atol=1e-12)
    assert info.num_matvecs <= n


def test_eigsh_on_a_kronecker_operator():
    la, lb = decaying(6, 0.5), decaying(5, 0.3)
    A, B = with_spectrum(la, seed=1), with_spectrum(lb, seed=2)
    K = A.kron(B.reshape((5, 1), (5, 1)))  # multi-axis: shape (6, 5, 1)
    vals, vecs = sla.eigsh(K, 4, seed=0)
    expected = torch.sort(torch.outer(la, lb).reshape(-1), descending=True).values[:4]
    assert float((vals - expected).abs().max()) <= 1e-6 and vecs.shape == (4, 6, 5, 1)
    Kd = torch.kron(A.matrix, B.matrix)
    V = vecs.reshape(4, -1)
    torch.testing.assert_close(V @ Kd, vals[:, None] * V, rtol=1e-6, atol=1e-6)


def test_eigsh_repeated_eigenvalues_low_rank_and_restarts():
    # a triple top eigenvalue: the block method returns a basis of its eigenspace
    lam = torch.cat([torch.ones(3, dtype=DT), decaying(97, 0.1) * 0.5])
    op = with_spectrum(lam, seed=3)
    vals, vecs = sla.eigsh(op, 3, seed=0)
    torch.testing.assert_close(vals, torch.ones(3, dtype=DT))
    U = rotation(100, 3)
    assert_subspace_close(vecs, U[:, :3].T, 1e-6)
    # rank 3 with k = 5: the Krylov space is exhausted and refilled with random directions
    low = with_spectrum(torch.cat([torch.tensor([3.0, 2.0, 1.0], dtype=DT), torch.zeros(57)]))
    vals, _, info = sla.eigsh(low, 5, seed=0, return_info=True)
    assert info.converged
    torch.testing.assert_close(vals, torch.tensor([3.0, 2.0, 1.0, 0.0, 0.0], dtype=DT))
    # a small max_basis forces thick restarts; the answer is the same
    lam = decaying(400, 0.02)
    op = with_spectrum(lam, seed=4)
    vals, _, info = sla.eigsh(op, 6, max_basis=20, max_iters=300, seed=0, return_info=True)
    assert info.converged and float((vals - lam[:6]).abs().max()) <= 1e-6


def test_eigsh_float32_and_identity():
    lam = decaying(150, 0.05)
    op = Dense(with_spectrum(lam).matrix.float())
    vals, vecs = sla.eigsh(op, 5, tol=1e-5, seed=0)
    assert vals.dtype == torch.float32 and vecs.dtype == torch.float32
    assert float((vals.double() - lam[:5]).abs().max()) <= 1e-5
    vals, _ = sla.eigsh(Identity((3, 4), dtype=DT), 12)
    torch.testing.assert_close(vals, torch.ones(12, dtype=DT))


def test_eigsh_warns_when_not_converged():
    op = with_spectrum(decaying(300, 0.005))
    with pytest.warns(RuntimeWarning, match=r"eigsh: 8 eigenpairs not converged .* after 2"):
        _, _, info = sla.eigsh(op, 8, max_iters=2, seed=0, return_info=True)
    assert not info.converged and info.iterations == 2


@pytest.mark.parametrize(
    ("shape_in", "shape_out"), [((5, 10), (30,)), ((12,), (4, 10)), ((3, 4), (3, 4))]
)
def test_svds_matches_torch_svd(shape_in, shape_out):
    n_in, n_out = math.prod(shape_in), math.prod(shape_out)
    r = min(n_in, n_out)
    # top five from 1 to 1e-3, then a floor of 1e-9
    s = torch.cat([torch.logspace(0, -3, 5, dtype=DT), torch.full((r - 5,), 1e-9, dtype=DT)])
    M = (rotation(n_out, 1)[:, :r] * s) @ rotation(n_in, 2)[:, :r].T
    op = Dense(M, shape_in=shape_in, shape_out=shape_out)
    U, S, Vh, info = sla.svds(op, 5, tol=1e-10, seed=0, return_info=True)
    assert U.shape == (5, *shape_out) and Vh.shape == (5, *shape_in) and info.converged
    torch.testing.assert_close(S, s[:5], rtol=1e-6, atol=0)
    U, Vh = U.reshape(5, -1), Vh.reshape(5, -1)
    torch.testing.assert_close(U @ U.T, torch.eye(5, dtype=DT))
    torch.testing.assert_close(Vh @ Vh.T, torch.eye(5, dtype=DT))
    torch.testing.assert_close(Vh @ M.T, S[:, None] * U, rtol=1e-6, atol=1e-9)  # A v = σ u
    recon = (U.T * S) @ Vh
    u, sv, vh = torch.linalg.svd(M)
    torch.testing.assert_close(recon, (u[:, :5] * sv[:5]) @ vh[:5], rtol=1e-6, atol=1e-9)


def test_svds_small_singular_values_to_absolute_tolerance():
    """Singular values far below σ_1 have Gram eigenvalues below the tolerance: they are
    accurate to ~1e-6·σ_1 in absolute terms, not relatively (documented in svds)."""
    r = 40
    s = torch.cat([torch.logspace(0, -6, 5, dtype=DT), torch.full((r - 5,), 1e-9, dtype=DT)])
    M = (rotation(60, 1)[:, :r] * s) @ rotation(r, 2).T
    _, S = sla.svds(Dense(M), 5, seed=0)[:2]
    assert float((S - s[:5]).abs().max()) <= 1e-6


def test_spectral_norm_of_operators_and_composites():
    M = torch.randn(30, 50, dtype=DT, generator=torch.Generator().manual_seed(0))
    op = Dense(M, shape_in=(5, 10))
    expected = float(torch.linalg.matrix_norm(M, ord=2))
    assert math.isclose(sla.spectral_norm(op, seed=1), expected, rel_tol=1e-8)
    assert math.isclose(sla.spectral_norm(op), expected, rel_tol=1e-8)
    assert math.isclose(sla.spectral_norm(op @ op.T), expected**2, rel_tol=1e-8)


def test_eigen_errors_name_the_argument():
    op = with_spectrum(decaying(20, 0.2))
    with pytest.raises(ValueError, match=r"eigsh: k must be <= the dimension 20 of op, got k=21"):
        sla.eigsh(op, 21)
    with pytest.raises(ValueError, match="eigsh: k must be >= 1, got 0"):
        sla.eigsh(op, 0)
    with pytest.raises(ValueError, match="eigsh: block_size must be >= 4, got 2"):
        sla.eigsh(op, 4, block_size=2)
    with pytest.raises(ValueError, match="eigsh: tol must be a positive number"):
        sla.eigsh(op, 2, tol=0)
    with pytest.raises(ValueError, match=r"eigsh: op must be square .*\(5,\) -> \(3,\)"):
        sla.eigsh(Dense(torch.zeros(3, 5, dtype=DT)), 2)
    nonsym = Dense(torch.randn(20, 20, dtype=DT, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"eigsh: op must be symmetric .*use op.gram\(\)"):
        sla.eigsh(nonsym, 2)
    with pytest.raises(ValueError, match=r"svds: k must be <= min\(size_in, size_out\) = 3"):
        sla.svds(Dense(torch.zeros(3, 5, dtype=DT)), 4)
    with pytest.raises(TypeError, match="svds: op must be an sntkit Operator"):
        sla.svds(torch.zeros(3, 5), 1)


def test_rayleigh_ritz_is_exact_on_invariant_subspaces_and_whole_space():
    from sntkit.linalg.eigen import rayleigh_ritz

    gen = torch.Generator().manual_seed(4)
    Q0 = torch.linalg.qr(torch.randn(8, 8, dtype=DT, generator=gen)).Q
    lam = torch.tensor([9.0, 7.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.1], dtype=DT)
    A = Q0 @ torch.diag(lam) @ Q0.T
    whole = torch.eye(8, dtype=DT)
    theta, S, X, res = rayleigh_ritz(whole @ A @ whole.T, whole, whole @ A, 3)
    torch.testing.assert_close(theta, lam)
    torch.testing.assert_close((X @ A @ X.T).diagonal(), lam[:3])
    assert float(res.max()) < 1e-12 and S.shape == (8, 8)
    inv = Q0[:, [4, 0, 2]].T  # rows span an invariant subspace, in no particular order
    theta, _, X, res = rayleigh_ritz(inv @ A @ inv.T, inv, inv @ A, 2)
    torch.testing.assert_close(theta, lam[[0, 2, 4]])
    assert float(res.max()) < 1e-12
    assert float((X @ Q0[:, [0, 2]]).abs().diagonal().min()) > 1 - 1e-12  # the eigenvectors
    # a non-invariant subspace: Ritz values interlace and the residuals are not zero
    sub = torch.eye(8, dtype=DT)[:3]
    theta, _, _, res = rayleigh_ritz(sub @ A @ sub.T, sub, sub @ A, 3)
    assert float(theta[0]) <= 9.0 + 1e-12 and float(res.max()) > 1e-3
