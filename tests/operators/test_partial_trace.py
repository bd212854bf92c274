"""The partial trace against ``torch.einsum`` on the 6-tensor, exact and Hutchinson."""

import itertools
import math

import pytest
import torch
from operator_cases import DT, check_against_dense, dense_op, rand

from sntkit.operators import Dense, PartialTrace

SHAPE = (2, 3, 2)
NAMES = ("batch", "time", "unit")
SUBSETS = [c for r in (1, 2) for c in itertools.combinations(range(3), r)]


def einsum_partial_trace(M: torch.Tensor, shape, traced) -> torch.Tensor:
    """``tr_A(X)[r; r'] = Σ_a X[r, a; r', a]`` on the 6-tensor, as a matrix on the kept axes."""
    X6 = M.reshape(*shape, *shape)
    lower, upper = "abc", "ABC"
    right = "".join(lower[i] if i in traced else upper[i] for i in range(3))
    out = "".join(lower[i] for i in range(3) if i not in traced)
    out += "".join(upper[i] for i in range(3) if i not in traced)
    R = torch.einsum(f"abc{right}->{out}", X6)
    k = math.prod(shape[i] for i in range(3) if i not in traced)
    return R.reshape(k, k)


@pytest.mark.parametrize("traced", SUBSETS)
def test_exact_partial_trace_matches_einsum(traced):
    A = dense_op(SHAPE, SHAPE, 7, names_in=NAMES)  # not symmetric: the adjoint is a real check
    expected = einsum_partial_trace(A.matrix, SHAPE, traced)
    by_index = A.partial_trace(traced)
    assert isinstance(by_index, PartialTrace)
    assert by_index.shape_in == tuple(SHAPE[i] for i in range(3) if i not in traced)
    assert by_index.names_in == tuple(NAMES[i] for i in range(3) if i not in traced)
    check_against_dense(by_index, expected)  # matvec, matmat, rmatvec, rmatmat, .T
    check_against_dense(A.partial_trace([NAMES[i] for i in traced]), expected)
    check_against_dense(A.partial_trace([i - 3 for i in traced]), expected)  # negative axes
    check_against_dense(A.partial_trace(traced, chunk_size=1), expected)
    # the adjoint of a partial trace is the partial trace of the adjoint
    check_against_dense(A.T.partial_trace(traced), einsum_partial_trace(A.matrix.T, SHAPE, traced))
    d = math.prod(SHAPE[i] for i in traced)
    check_against_dense(A.partial_mean(traced), expected / d)
    # kpflow's block sum (I ⊗ 1)^* X (I ⊗ 1) also adds off-diagonal blocks: not the same map
    ones = torch.ones(d, dtype=DT)
    block_sum = _block_sum(A.matrix, SHAPE, traced, ones)
    assert (block_sum - expected).abs().max() > 0.1


def _block_sum(M, shape, traced, ones):
    X6 = M.reshape(*shape, *shape)
    kept = [i for i in range(3) if i not in traced]
    perm = kept + list(traced)
    X6 = X6.permute(*perm, *(3 + i for i in perm))
    k = math.prod(shape[i] for i in kept)
    X4 = X6.reshape(k, ones.numel(), k, ones.numel())
    return torch.einsum("iajb,a,b->ij", X4, ones, ones)


def test_partial_trace_of_composite_operator():
    A, B = dense_op(SHAPE, (5,), 1), dense_op((5,), SHAPE, 2)
    op = B @ A + 0.5 * dense_op(SHAPE, SHAPE, 3)
    M = B.matrix @ A.matrix + 0.5 * dense_op(SHAPE, SHAPE, 3).matrix
    for traced in ((0,), (1, 2)):
        check_against_dense(op.partial_trace(traced), einsum_partial_trace(M, SHAPE, traced))


def test_hutchinson_partial_trace_is_unbiased():
    A = dense_op(SHAPE, SHAPE, 3)
    exact = A.partial_trace((0, 1)).to_dense()
    trials = 400
    draws = torch.stack(
        [
            A.partial_trace((0, 1), method="hutchinson", num_samples=4, seed=s).to_dense()
            for s in range(trials)
        ]
    )
    # every entry of the mean is within 4.5 standard errors (from the sample variance) of the
    # exact partial trace; 4.5σ keeps the 4-entry family-wise false alarm rate below 1e-4
    sem = draws.std(0) / math.sqrt(trials)
    assert ((draws.mean(0) - exact).abs() <= 4.5 * sem).all()
    assert sem.max() > 1e-3  # it is random, and the tolerance above is not vacuous
    # the error shrinks like 1/sqrt(num_samples)
    one = torch.stack(
        [
            A.partial_trace((0, 1), method="hutchinson", num_samples=1, seed=s).to_dense()
            for s in range(trials)
        ]
    )
    ratio = float((one - exact).square().mean() / (draws - exact).square().mean())
    assert 2.5 < ratio < 6.5  # 4 samples: variance / 4


def test_hutchinson_partial_trace_is_a_fixed_linear_operator():
    A = dense_op(SHAPE, SHAPE, 4)
    pt = A.partial_trace(1, method="hutchinson", num_samples=3, seed=9)
    M = pt.to_dense()
    check_against_dense(pt, M)  # linear and adjoint-consistent for the fixed draw
    check_against_dense(A.T.partial_trace(1, method="hutchinson", num_samples=3, seed=9), M.T)
    same = A.partial_trace(1, method="hutchinson", num_samples=3, seed=9).to_dense()
    torch.testing.assert_close(same, M)  # the seed fixes the draw
    other = A.partial_trace(1, method="hutchinson", num_samples=3, seed=10).to_dense()
    assert not torch.allclose(other, M)


def test_partial_trace_of_kronecker_product():
    A, B = dense_op((3,), (3,), 1), dense_op((2, 2), (2, 2), 2)
    K = A.kron(B)
    torch.testing.assert_close(K.partial_trace((1, 2)).to_dense(), torch.trace(B.matrix) * A.matrix)
    torch.testing.assert_close(K.partial_trace(0).to_dense(), torch.trace(A.matrix) * B.matrix)
    P = Dense(rand(12, 12), shape_in=(3, 2, 2))
    torch.testing.assert_close(
        P.partial_trace(0).to_dense(), einsum_partial_trace(P.matrix, (3, 2, 2), (0,))
    )
