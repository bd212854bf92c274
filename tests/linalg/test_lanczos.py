"""Batched Lanczos quadrature against dense float64 ``z^T f(A) z`` (Golub–Meurant exactness)."""

import pytest
import torch

from sntkit.linalg.lanczos import lanczos_quadrature
from sntkit.operators import Dense

DT = torch.float64


def _symmetric(n: int, seed: int) -> torch.Tensor:
    M = torch.randn(n, n, dtype=DT, generator=torch.Generator().manual_seed(seed))
    return (M + M.T) / 2


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_gauss_quadrature_is_exact_for_polynomials_below_degree_2m(steps):
    """``Σ_j w_j θ_j^p = z^T A^p z`` for every ``p < 2m``, each probe of the block at once."""
    n, k = 12, 4
    A = _symmetric(n, 0)
    Z = torch.randn(k, n, dtype=DT, generator=torch.Generator().manual_seed(1))
    theta, w = lanczos_quadrature(Dense(A), Z, steps)
    assert theta.shape == w.shape == (k, steps) and theta.dtype == w.dtype == DT
    for p in range(2 * steps):
        exact = torch.einsum("kn,nm,km->k", Z, torch.linalg.matrix_power(A, p), Z)
        torch.testing.assert_close((w * theta**p).sum(1), exact, rtol=1e-9, atol=1e-9)


def test_full_lanczos_recovers_the_spectrum_and_an_exhausted_probe_gets_zero_weights():
    """With ``m = n`` the nodes are A's eigenvalues; a probe in a 2-dim invariant subspace
    puts weight on two nodes only (zero weights for the rest)."""
    n = 6
    evals = torch.arange(1.0, n + 1, dtype=DT)
    Q = torch.linalg.qr(torch.randn(n, n, dtype=DT, generator=torch.Generator().manual_seed(2))).Q
    A = Q @ torch.diag(evals) @ Q.T
    z_full = torch.randn(n, dtype=DT, generator=torch.Generator().manual_seed(3))
    z_two = 2.0 * Q[:, 0] - 1.0 * Q[:, 4]  # in span of the eigenvectors of 1 and 5
    theta, w = lanczos_quadrature(Dense(A), torch.stack([z_full, z_two]), steps=n)
    torch.testing.assert_close(theta[0], evals, rtol=1e-9, atol=1e-9)
    supported = theta[1][w[1] > 1e-12]
    torch.testing.assert_close(supported, torch.tensor([1.0, 5.0], dtype=DT), atol=1e-8, rtol=0)
    torch.testing.assert_close(w[1].sum(), z_two.square().sum())
    torch.testing.assert_close(w[1][w[1] > 1e-12], torch.tensor([4.0, 1.0], dtype=DT))


def test_nonsymmetric_operator_is_named():
    """The check sees ``Z^T A Z`` of the first block, so it needs two probes or more."""
    A = torch.triu(torch.ones(4, 4, dtype=DT))
    Z = torch.randn(3, 4, dtype=DT, generator=torch.Generator().manual_seed(4))
    with pytest.raises(ValueError, match="op"):
        lanczos_quadrature(Dense(A), Z, 2)
