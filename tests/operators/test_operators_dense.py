"""Every operator and combination against its dense float64 matrix."""

import math

import numpy as np
import pytest
import torch
from operator_cases import DT, check_against_dense, dense_op, kron, rand

from sntkit.operators import (
    Adjoint,
    Dense,
    Diagonal,
    DirectSum,
    FunctionOperator,
    Identity,
    Jacobian,
    Kronecker,
    Reshaped,
    Sum,
    unchecked,
)


def test_identity_dense_diagonal():
    check_against_dense(Identity((2, 3), dtype=DT), torch.eye(6, dtype=DT))
    A = dense_op((2, 3), (4,))
    check_against_dense(A, A.matrix)
    d = rand(2, 3)
    check_against_dense(Diagonal(d), torch.diag(d.reshape(-1)))
    # a square matrix given only shape_in is square on that shape; otherwise plain vectors
    assert Dense(rand(6, 6), shape_in=(2, 3)).shape_out == (2, 3)
    assert Dense(rand(4, 6)).shape_in == (6,) and Dense(rand(4, 6)).shape_out == (4,)


def test_compositions_sums_scalars_adjoints():
    A, B = dense_op((2, 3), (5,), 1), dense_op((5,), (4, 2), 2)
    C = dense_op((2, 3), (5,), 3)
    check_against_dense(B @ A, B.matrix @ A.matrix)
    check_against_dense(A + C, A.matrix + C.matrix)
    check_against_dense(A - C, A.matrix - C.matrix)
    check_against_dense(2.5 * A, 2.5 * A.matrix)
    check_against_dense(A * torch.tensor(2.5), 2.5 * A.matrix)
    check_against_dense(A * 2.5 - C / 4, 2.5 * A.matrix - C.matrix / 4)
    check_against_dense(-A, -A.matrix)
    check_against_dense(2 * (A + C) - (A - C), A.matrix + 3 * C.matrix)
    check_against_dense((B @ A).T @ (B @ A), (B.matrix @ A.matrix).T @ B.matrix @ A.matrix)
    check_against_dense(A.gram(), A.matrix @ A.matrix.T)
    check_against_dense(A.T, A.matrix.T)
    check_against_dense(Adjoint(B @ A), (B.matrix @ A.matrix).T)
    assert A.T.T is A and A.adjoint().T is A
    assert (A.T.shape_in, A.T.shape_out) == (A.shape_out, A.shape_in)
    # nested sums stay one level deep with the right weights
    S = (A + C) * 2 - A
    assert isinstance(S, Sum) and len(S.terms) == 3
    torch.testing.assert_close(S.to_dense(), A.matrix + 2 * C.matrix)


KRON_SHAPES = [
    ((2,), (3,), (4,), (2,)),  # non-square factors
    ((2, 3), (4,), (3,), (2, 2)),  # multi-axis factors
    ((1,), (2,), (3, 2), (5,)),  # a size-1 axis
    ((2, 2), (2, 2), (3,), (3,)),  # square, multi-axis
]


@pytest.mark.parametrize("shapes", KRON_SHAPES)
def test_kronecker_vs_torch_kron(shapes):
    a_in, a_out, b_in, b_out = shapes
    A, B = dense_op(a_in, a_out, 1), dense_op(b_in, b_out, 2)
    K = A.kron(B)
    assert K.shape_in == a_in + b_in and K.shape_out == a_out + b_out
    ref = torch.from_numpy(np.kron(A.matrix.numpy(), B.matrix.numpy()))
    torch.testing.assert_close(kron(A.matrix, B.matrix), ref)
    check_against_dense(K, ref)  # includes the adjoint (A ⊗ B)^T = A^T ⊗ B^T
    check_against_dense(K.T, ref.T)
    eye_a, eye_b = torch.eye(A.size_in, dtype=DT), torch.eye(B.size_in, dtype=DT)
    check_against_dense(Kronecker(Identity(a_in, dtype=DT), B), kron(eye_a, B.matrix))
    check_against_dense(Kronecker(A, Identity(b_in, dtype=DT)), kron(A.matrix, eye_b))
    check_against_dense(Kronecker(A.T, B.T), ref.T)


def test_kronecker_of_composite_factors_and_three_factors():
    A, B, C = dense_op((2,), (3,), 1), dense_op((2, 2), (2,), 2), dense_op((3,), (3,), 3)
    AB = (A.T @ A) + Diagonal(rand(2, seed=5))
    K = AB.kron(B).kron(C)
    expected = kron(kron(A.matrix.T @ A.matrix + torch.diag(rand(2, seed=5)), B.matrix), C.matrix)
    check_against_dense(K, expected)
    assert K.shape_in == (2, 2, 2, 3) and K.shape_out == (2, 2, 3)


def test_reshaped():
    A = dense_op((2, 3), (4,))
    check_against_dense(A.reshape((6,), (2, 2)), A.matrix)
    check_against_dense(Reshaped(A, (3, 2), (4, 1)), A.matrix)
    check_against_dense(A.reshape(6, 4).T, A.matrix.T)


def test_direct_sum_vs_block_construction():
    B = dense_op((2, 2), (2, 3), 5)
    A = dense_op((2, 3), (2, 1), 4)
    S = DirectSum([A, B])
    assert S.shape_in == (2, 5) and S.shape_out == (2, 4)
    # column j of the dense matrix is S applied to basis tensor j, built slice by slice
    cols = []
    for j in range(10):
        e = torch.zeros(10, dtype=DT)
        e[j] = 1
        X = e.reshape(2, 5)
        y = torch.cat(
            [
                (A.matrix @ X[:, :3].reshape(-1)).reshape(2, 1),
                (B.matrix @ X[:, 3:].reshape(-1)).reshape(2, 3),
            ],
            -1,
        )
        cols.append(y.reshape(-1))
    check_against_dense(S, torch.stack(cols, 1))


def test_function_operator_vmap_and_batched_paths():
    M = rand(4, 6)
    vm = FunctionOperator(
        lambda x: (M @ x.reshape(-1)).reshape(2, 2),
        lambda y: (M.T @ y.reshape(-1)).reshape(2, 3),
        (2, 3),
        (2, 2),
        dtype=DT,
        device="cpu",
    )
    check_against_dense(vm, M)
    calls = []

    def batched(X):
        calls.append(X.shape[0])  # one call for all probes
        return X.reshape(X.shape[0], -1) @ M.T

    bt = FunctionOperator(
        batched, lambda Y: Y @ M, 6, 4, dtype=DT, device="cpu", batched=True, name="Mb"
    )
    check_against_dense(bt, M)
    calls.clear()
    bt.matmat(rand(7, 6))
    assert calls == [7]
    assert repr(bt) == "Mb((6,) -> (4,))"
    S = rand(5, 5)
    S = S + S.T
    sym = FunctionOperator(lambda x: S @ x, None, 5, 5, dtype=DT, device="cpu")
    check_against_dense(sym, S)


def test_jacobian_vs_jacrev():
    M = rand(4, 6)

    def fn(x):
        return torch.tanh(M @ x.reshape(-1)).reshape(2, 2) * x.sum()

    x0 = rand(2, 3, seed=1)
    J = Jacobian(fn, x0)
    Jd = torch.func.jacrev(fn)(x0).reshape(4, 6)
    check_against_dense(J, Jd)
    torch.testing.assert_close(J.value, fn(x0))


def test_to_scipy_matches_dense():
    A = dense_op((2, 3), (2, 2))
    S = A.to_scipy()
    assert S.shape == (4, 6) and S.dtype == np.float64
    rng = np.random.default_rng(0)
    v, w, V, W = (
        rng.normal(size=6),
        rng.normal(size=4),
        rng.normal(size=(6, 3)),
        rng.normal(size=(4, 2)),
    )
    M = A.matrix.numpy()
    np.testing.assert_allclose(S.matvec(v), M @ v, rtol=1e-12)
    np.testing.assert_allclose(S.matvec(v[:, None]), (M @ v)[:, None], rtol=1e-12)
    np.testing.assert_allclose(S.rmatvec(w), M.T @ w, rtol=1e-12)
    np.testing.assert_allclose(S.matmat(V), M @ V, rtol=1e-12)
    np.testing.assert_allclose(S.rmatmat(W), M.T @ W, rtol=1e-12)
    np.testing.assert_allclose(S @ np.eye(6), M, rtol=1e-12)
    np.testing.assert_allclose(S.H @ np.eye(4), M.T, rtol=1e-12)
    A32 = Dense(torch.randn(4, 6, generator=torch.Generator().manual_seed(0)), shape_in=(2, 3))
    S32 = A32.to_scipy()
    assert S32.dtype == np.float32 and S32.matvec(v).dtype == np.float32
    np.testing.assert_allclose(S32.matvec(v), A32.matrix.numpy() @ v, rtol=1e-5, atol=1e-5)


def test_zero_probes_and_unchecked():
    ops = [
        dense_op((2, 3), (4,)),
        dense_op((2,), (3,)).kron(dense_op((2,), (2,), 1)),
        Dense(rand(6, 6), shape_in=(2, 3)).partial_trace(0),
        dense_op((2, 3), (4,)).reshape(6, 4),
    ]
    for op in ops:
        assert op.matmat(torch.zeros(0, *op.shape_in, dtype=DT)).shape == (0, *op.shape_out)
        assert op.rmatmat(torch.zeros(0, *op.shape_out, dtype=DT)).shape == (0, *op.shape_in)
    bad = Dense(torch.tensor([[1e308, 1e308]], dtype=DT))
    with unchecked():
        assert torch.isinf(bad.matvec(torch.tensor([1e308, 1e308], dtype=DT))).all()
    with pytest.raises(ValueError, match="NaN or inf"):
        bad.matvec(torch.tensor([1e308, 1e308], dtype=DT))


def test_sizes_and_names():
    K = Identity(2, names=("batch",), dtype=DT).kron(Identity((3, 4), names=("time", "unit")))
    assert K.names_in == ("batch", "time", "unit") and K.size_in == 24 and K.is_square
    assert math.prod(K.shape_out) == K.size_out
    assert K.resolve_axes(("unit", 0)) == (0, 2) and K.resolve_axes(-1) == (2,)
    assert K.resolve_axes(np.int64(1)) == (1,)
