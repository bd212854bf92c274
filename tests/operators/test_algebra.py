"""Every operator and combination against its dense float64 matrix; hypothesis for the algebra."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sntkit.operators import (
    Dense,
    Diagonal,
    DirectSum,
    FunctionOperator,
    Identity,
    Jacobian,
    Kronecker,
    Operator,
    unchecked,
)

DT = torch.float64


def rand(*shape, seed=0):
    return torch.randn(*shape, dtype=DT, generator=torch.Generator().manual_seed(seed))


def dense_op(shape_in, shape_out, seed=0):
    n_in, n_out = int(np.prod(shape_in)), int(np.prod(shape_out))
    return Dense(rand(n_out, n_in, seed=seed), shape_in=shape_in, shape_out=shape_out)


def check_against_dense(op: Operator, M: torch.Tensor):
    torch.testing.assert_close(op.to_dense(), M)
    x = rand(*op.shape_in, seed=11)
    y = rand(*op.shape_out, seed=12)
    torch.testing.assert_close(op.matvec(x).reshape(-1), M @ x.reshape(-1))
    torch.testing.assert_close(op.rmatvec(y).reshape(-1), M.T @ y.reshape(-1))
    X = rand(4, *op.shape_in, seed=13)
    torch.testing.assert_close(op.matmat(X).reshape(4, -1), X.reshape(4, -1) @ M.T)
    Y = rand(3, *op.shape_out, seed=14)
    torch.testing.assert_close(op.rmatmat(Y).reshape(3, -1), Y.reshape(3, -1) @ M)
    torch.testing.assert_close(op.T.to_dense(), M.T)
    torch.testing.assert_close((op @ x).reshape(-1), M @ x.reshape(-1))


def test_identity_dense_diagonal():
    check_against_dense(Identity((2, 3), dtype=DT), torch.eye(6, dtype=DT))
    A = dense_op((2, 3), (4,))
    check_against_dense(A, A.matrix)
    d = rand(2, 3)
    check_against_dense(Diagonal(d), torch.diag(d.reshape(-1)))


def test_compositions_sums_scalars():
    A, B = dense_op((2, 3), (5,), 1), dense_op((5,), (4, 2), 2)
    C = dense_op((2, 3), (5,), 3)
    check_against_dense(B @ A, B.matrix @ A.matrix)
    check_against_dense(A + C, A.matrix + C.matrix)
    check_against_dense(A - C, A.matrix - C.matrix)
    check_against_dense(2.5 * A, 2.5 * A.matrix)
    check_against_dense(A * 2.5 - C / 4, 2.5 * A.matrix - C.matrix / 4)
    check_against_dense(-A, -A.matrix)
    check_against_dense((B @ A).T @ (B @ A), (B.matrix @ A.matrix).T @ B.matrix @ A.matrix)
    check_against_dense(A.gram(), A.matrix @ A.matrix.T)


@pytest.mark.parametrize(
    "shapes",
    [((2,), (3,), (4,), (2,)), ((2, 3), (4,), (3,), (2, 2)), ((1,), (2,), (3, 2), (5,))],
)
def test_kronecker_vs_torch_kron(shapes):
    a_in, a_out, b_in, b_out = shapes
    A, B = dense_op(a_in, a_out, 1), dense_op(b_in, b_out, 2)
    K = A.kron(B)
    assert K.shape_in == a_in + b_in and K.shape_out == a_out + b_out
    check_against_dense(K, torch.kron(A.matrix, B.matrix))
    check_against_dense(
        Kronecker(Identity(a_in, dtype=DT), B), torch.kron(torch.eye(A.size_in, dtype=DT), B.matrix)
    )
    check_against_dense(
        Kronecker(A, Identity(b_in, dtype=DT)), torch.kron(A.matrix, torch.eye(B.size_in, dtype=DT))
    )


def test_reshape_and_direct_sum():
    A = dense_op((2, 3), (4,))
    check_against_dense(A.reshape((6,), (2, 2)), A.matrix)
    with pytest.raises(ValueError, match="hold"):
        A.reshape((5,), (4,))
    B = dense_op((2, 2), (2, 3), 5)
    S = DirectSum([dense_op((2, 3), (2, 1), 4), B])
    X = rand(2, 5)
    expected = torch.cat(
        [
            (S.ops[0].matrix @ X[:, :3].reshape(-1)).reshape(2, 1),
            (B.matrix @ X[:, 3:].reshape(-1)).reshape(2, 3),
        ],
        -1,
    )
    torch.testing.assert_close(S.matvec(X), expected)
    Y = rand(2, 4, seed=3)
    lhs = (S.matvec(X) * Y).sum()
    rhs = (X * S.rmatvec(Y)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_function_and_jacobian_operators():
    M = rand(4, 3)
    f = FunctionOperator(lambda x: M @ x, lambda y: M.T @ y, 3, 4, dtype=DT, device="cpu")
    check_against_dense(f, M)
    fb = FunctionOperator(
        lambda X: X @ M.T, lambda Y: Y @ M, 3, 4, dtype=DT, device="cpu", batched=True
    )
    check_against_dense(fb, M)
    x0 = rand(3)
    J = Jacobian(lambda x: torch.tanh(M @ x) * x.sum(), x0)
    Jd = torch.func.jacrev(lambda x: torch.tanh(M @ x) * x.sum())(x0)
    check_against_dense(J, Jd)


AXES = ("b", "t", "n")


@pytest.mark.parametrize("traced", [c for r in (1, 2) for c in itertools.combinations(range(3), r)])
def test_partial_trace_is_the_true_partial_trace(traced):
    shape = (2, 3, 2)
    A = dense_op(shape, shape, 7)
    A = Dense(A.matrix, shape_in=shape, names_in=AXES)
    X6 = A.matrix.reshape(*shape, *shape)
    letters_in, letters_out = "btn", "BTN"
    out = "".join(letters_in[i] for i in range(3) if i not in traced)
    out += "".join(letters_out[i] for i in range(3) if i not in traced)
    right = "".join(letters_in[i] if i in traced else letters_out[i] for i in range(3))
    R = torch.einsum(f"btn{right}->{out}", X6)
    k = int(R.numel() ** 0.5)
    expected = R.reshape(k, k)
    pt = A.partial_trace(traced)
    check_against_dense(pt, expected)
    check_against_dense(A.partial_trace([AXES[i] for i in traced]), expected)
    d = int(np.prod([shape[i] for i in traced]))
    check_against_dense(A.partial_mean(traced), expected / d)
    # the block sum kpflow computes is different whenever off-diagonal blocks exist
    assert not torch.allclose(expected, R.new_zeros(()))


def test_partial_trace_hutchinson_is_unbiased():
    shape = (2, 2, 3)
    A = Dense(rand(12, 12, seed=3), shape_in=shape)
    exact = A.partial_trace((0, 1)).to_dense()
    draws = torch.stack(
        [
            A.partial_trace((0, 1), method="hutchinson", num_samples=4, seed=s).to_dense()
            for s in range(400)
        ]
    )
    sem = draws.std(0) / 20
    assert ((draws.mean(0) - exact).abs() <= 5 * sem + 1e-12).all()
    assert not torch.allclose(draws[0], exact)


def test_partial_trace_of_kronecker_identity():
    A, B = dense_op((3,), (3,), 1), dense_op((2, 2), (2, 2), 2)
    K = A.kron(B)
    torch.testing.assert_close(K.partial_trace((1, 2)).to_dense(), torch.trace(B.matrix) * A.matrix)
    torch.testing.assert_close(K.partial_trace(0).to_dense(), torch.trace(A.matrix) * B.matrix)


def test_to_scipy_matches_dense():
    A = dense_op((2, 3), (4,))
    S = A.to_scipy()
    v, w, V = np.random.randn(6), np.random.randn(4), np.random.randn(6, 3)
    M = A.matrix.numpy()
    np.testing.assert_allclose(S.matvec(v), M @ v, rtol=1e-12)
    np.testing.assert_allclose(S.rmatvec(w), M.T @ w, rtol=1e-12)
    np.testing.assert_allclose(S.matmat(V), M @ V, rtol=1e-12)
    np.testing.assert_allclose((S.H @ np.eye(4)), M.T, rtol=1e-12)


# ---------------------------------------------------------------- hypothesis
def _leaf(draw, shape_in, shape_out, seed):
    kind = draw(st.sampled_from(["dense", "diag", "identity", "function"]))
    if shape_in != shape_out or kind == "dense":
        return dense_op(shape_in, shape_out, seed)
    if kind == "diag":
        return Diagonal(rand(*shape_in, seed=seed))
    if kind == "identity":
        return Identity(shape_in, dtype=DT)
    M = rand(int(np.prod(shape_in)), int(np.prod(shape_in)), seed=seed)
    return FunctionOperator(
        lambda x: (M @ x.reshape(-1)).reshape(shape_in),
        lambda y: (M.T @ y.reshape(-1)).reshape(shape_in),
        shape_in,
        shape_in,
        dtype=DT,
        device="cpu",
    )


@st.composite
def expressions(draw, depth=3):
    shapes = [(2,), (3,), (2, 2), (3, 1)]
    s_in, s_out = draw(st.sampled_from(shapes)), draw(st.sampled_from(shapes))
    seed = draw(st.integers(0, 10_000))
    op = _leaf(draw, s_in, s_out, seed)
    for _ in range(draw(st.integers(0, depth))):
        how = draw(st.sampled_from(["compose", "add", "scale", "adjoint", "kron", "gram"]))
        seed += 1
        if how == "compose":
            op = _leaf(draw, op.shape_out, draw(st.sampled_from(shapes)), seed) @ op
        elif how == "add":
            op = op + _leaf(draw, op.shape_in, op.shape_out, seed)
        elif how == "scale":
            op = draw(st.floats(-3, 3, allow_nan=False)) * op
        elif how == "adjoint":
            op = op.T
        elif how == "kron" and op.size_in * op.size_out < 200:
            op = op.kron(_leaf(draw, (2,), (2,), seed))
        elif how == "gram":
            op = op.gram()
    return op


@settings(max_examples=60, deadline=None)
@given(expressions(), st.integers(0, 1000))
def test_adjointness_property(op, seed):
    x = rand(*op.shape_in, seed=seed)
    y = rand(*op.shape_out, seed=seed + 1)
    lhs = (op.matvec(x) * y).sum()
    rhs = (x * op.rmatvec(y)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(op.T.to_dense(), op.to_dense().T)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 100))
def test_kronecker_identities_property(a, b, c, seed):
    A, B = dense_op((a,), (b,), seed), dense_op((c,), (a,), seed + 1)
    C, D = dense_op((b,), (c,), seed + 2), dense_op((a,), (a,), seed + 3)
    # (A ⊗ B)(C ⊗ D) = AC ⊗ BD, with shapes chosen to compose
    lhs = (A.kron(B)) @ (dense_op((c,), (a,), seed + 4).kron(dense_op((a,), (c,), seed + 5)))
    AC = A.matrix @ dense_op((c,), (a,), seed + 4).matrix
    BD = B.matrix @ dense_op((a,), (c,), seed + 5).matrix
    torch.testing.assert_close(lhs.to_dense(), torch.kron(AC, BD))
    torch.testing.assert_close(
        A.kron(C).T.to_dense(), torch.from_numpy(np.kron(A.matrix.T.numpy(), C.matrix.T.numpy()))
    )  # torch.kron trips on size-1 strides
    sq1, sq2 = D, dense_op((b,), (b,), seed + 6)
    torch.testing.assert_close(
        torch.trace(sq1.kron(sq2).to_dense()), torch.trace(sq1.matrix) * torch.trace(sq2.matrix)
    )


# ---------------------------------------------------------------- errors
def test_clear_errors():
    A = dense_op((2, 3), (4,))
    with pytest.raises(ValueError, match=r"x has shape \(6,\), expected \(2, 3\).*reshape"):
        A.matvec(rand(6))
    with pytest.raises(ValueError, match=r"X has shape .*leading probe axis"):
        A.matmat(rand(2, 3))
    with pytest.raises(ValueError, match="dtype"):
        A.matvec(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        A.matvec(torch.full((2, 3), float("nan"), dtype=DT))
    with pytest.raises(ValueError, match="square"):
        A.partial_trace(0)
    with pytest.raises(ValueError, match="cannot compose"):
        A @ A
    with pytest.raises(ValueError, match="cannot add"):
        A + dense_op((6,), (4,))
    B = Dense(rand(6, 6), shape_in=(2, 3), names_in=("b", "t"))
    with pytest.raises(ValueError, match="axis name 'n'"):
        B.partial_trace("n")
    with pytest.raises(ValueError, match="full trace"):
        B.partial_trace(("b", "t"))
    with pytest.raises(ValueError, match="dtypes"):
        A + Dense(torch.zeros(4, 6), shape_in=(2, 3))
    bad = Dense(torch.tensor([[1e308, 1e308]], dtype=DT))
    with pytest.raises(ValueError, match="produced NaN or inf"):
        bad.matvec(torch.tensor([1e308, 1e308], dtype=DT))
    with unchecked():
        assert torch.isinf(bad.matvec(torch.tensor([1e308, 1e308], dtype=DT))).all()
