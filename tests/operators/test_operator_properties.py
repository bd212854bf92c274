"""Hypothesis properties of the operator algebra: adjointness, Kronecker, partial-trace identities.

Expression trees are built twice — as operators and, independently, as dense matrices — so the
properties are checked against a reference that does not go through the operator code.
"""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from operator_cases import DT, dense_op, kron, rand

from sntkit.operators import Diagonal, FunctionOperator, Identity, Operator

SHAPES = [(2,), (3,), (2, 2), (3, 1), (1, 2, 2)]


def _leaf(draw, shape_in, shape_out, seed) -> tuple[Operator, torch.Tensor]:
    kinds = ["dense", "function", "batched"]
    if shape_in == shape_out:
        kinds += ["diag", "identity"]
    kind = draw(st.sampled_from(kinds))
    n_in, n_out = math.prod(shape_in), math.prod(shape_out)
    if kind == "diag":
        d = rand(*shape_in, seed=seed)
        return Diagonal(d), torch.diag(d.reshape(-1))
    if kind == "identity":
        return Identity(shape_in, dtype=DT), torch.eye(n_in, dtype=DT)
    M = rand(n_out, n_in, seed=seed)
    if kind == "dense":
        return dense_op(shape_in, shape_out, seed), M
    if kind == "function":  # vmap path: one probe at a time
        op = FunctionOperator(
            lambda x: (M @ x.reshape(-1)).reshape(shape_out),
            lambda y: (M.T @ y.reshape(-1)).reshape(shape_in),
            shape_in,
            shape_out,
            dtype=DT,
            device="cpu",
        )
        return op, M
    op = FunctionOperator(  # batched path: (k, *shape) probes
        lambda X: (X.reshape(X.shape[0], -1) @ M.T).reshape(X.shape[0], *shape_out),
        lambda Y: (Y.reshape(Y.shape[0], -1) @ M).reshape(Y.shape[0], *shape_in),
        shape_in,
        shape_out,
        dtype=DT,
        device="cpu",
        batched=True,
    )
    return op, M


def _trace_last_axis(M: torch.Tensor, shape) -> torch.Tensor:
    k, d = math.prod(shape[:-1]), shape[-1]
    return torch.einsum("iajb->ij", M.reshape(k, d, k, d) * torch.eye(d, dtype=DT)[None, :, None])


@st.composite
def expressions(draw, depth=4):
    """``(op, M)``: a random operator expression and its independently built dense matrix."""
    seed = draw(st.integers(0, 10_000))
    op, M = _leaf(draw, draw(st.sampled_from(SHAPES)), draw(st.sampled_from(SHAPES)), seed)
    for _ in range(draw(st.integers(0, depth))):
        how = draw(
            st.sampled_from(
                ["compose", "add", "scale", "adjoint", "kron", "gram", "reshape", "ptrace"]
            )
        )
        seed += 1
        if how == "compose":
            L, ML = _leaf(draw, op.shape_out, draw(st.sampled_from(SHAPES)), seed)
            op, M = L @ op, ML @ M
        elif how == "add":
            L, ML = _leaf(draw, op.shape_in, op.shape_out, seed)
            sign = draw(st.sampled_from([1.0, -1.0]))
            op, M = (op + L, M + ML) if sign > 0 else (op - L, M - ML)
        elif how == "scale":
            c = draw(st.floats(-3, 3, allow_nan=False))
            op, M = c * op, c * M
        elif how == "adjoint":
            op, M = op.T, M.T
        elif how == "kron" and op.size_in * op.size_out <= 144:
            L, ML = _leaf(draw, (2,), draw(st.sampled_from([(2,), (3,)])), seed)
            op, M = op.kron(L), kron(M, ML)
        elif how == "gram":
            op, M = op.gram(), M @ M.T
        elif how == "reshape":
            op = op.reshape(op.size_in, (1, op.size_out))
        elif how == "ptrace" and len(op.shape_out) >= 2:
            if not op.is_square:
                op, M = op.gram(), M @ M.T
            shape = op.shape_in
            op, M = op.partial_trace(len(shape) - 1), _trace_last_axis(M, shape)
    return op, M


@settings(max_examples=80, deadline=None)
@given(expressions(), st.integers(0, 1000))
def test_adjointness_and_dense_reference(case, seed):
    op, M = case
    x, y = rand(*op.shape_in, seed=seed), rand(*op.shape_out, seed=seed + 1)
    lhs = (op.matvec(x) * y).sum()
    rhs = (x * op.rmatvec(y)).sum()
    scale = float(torch.linalg.matrix_norm(M)) * float(x.norm() * y.norm()) + 1.0
    assert abs(float(lhs - rhs)) <= 1e-12 * scale
    torch.testing.assert_close(op.to_dense(), M, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(op.T.to_dense(), M.T, rtol=1e-10, atol=1e-10)


small_shapes = st.sampled_from([(1,), (2,), (3,), (2, 2), (1, 3)])


@settings(max_examples=40, deadline=None)
@given(
    small_shapes,
    small_shapes,
    small_shapes,
    small_shapes,
    small_shapes,
    small_shapes,
    st.integers(0, 100),
)
def test_kronecker_identities(s1, s2, s3, s4, s5, s6, seed):
    # A: s2 -> s1, B: s4 -> s3, C: s5 -> s2, D: s6 -> s4, so that (A ⊗ B)(C ⊗ D) is defined
    A, B = dense_op(s2, s1, seed), dense_op(s4, s3, seed + 1)
    C, D = dense_op(s5, s2, seed + 2), dense_op(s6, s4, seed + 3)
    mixed = A.kron(B) @ C.kron(D)
    product = (A @ C).kron(B @ D)
    expected = kron(A.matrix @ C.matrix, B.matrix @ D.matrix)
    torch.testing.assert_close(mixed.to_dense(), expected)
    torch.testing.assert_close(product.to_dense(), expected)
    # (A ⊗ B)^T = A^T ⊗ B^T, as operators and against torch.kron
    transposed = A.T.kron(B.T)
    torch.testing.assert_close(A.kron(B).T.to_dense(), transposed.to_dense())
    torch.testing.assert_close(transposed.to_dense(), kron(A.matrix.T, B.matrix.T))
    # tr(A ⊗ B) = tr A · tr B for square factors
    P, R = dense_op(s1, s1, seed + 4), dense_op(s3, s3, seed + 5)
    K = P.kron(R).to_dense()
    torch.testing.assert_close(torch.trace(K), torch.trace(P.matrix) * torch.trace(R.matrix))


@settings(max_examples=40, deadline=None)
@given(small_shapes, small_shapes, st.integers(0, 100), st.booleans())
def test_partial_trace_of_kronecker_product(sa, sb, seed, hutchinson):
    A, B = dense_op(sa, sa, seed), dense_op(sb, sb, seed + 1)
    K = A.kron(B)
    a_axes = tuple(range(len(sa)))
    b_axes = tuple(range(len(sa), len(sa) + len(sb)))
    kwargs = {"method": "hutchinson", "num_samples": 2, "seed": seed} if hutchinson else {}
    # tr_B(A ⊗ B) = tr(B) · A and tr_A(A ⊗ B) = tr(A) · B
    tr_b = K.partial_trace(b_axes, **kwargs).to_dense()
    tr_a = K.partial_trace(a_axes, **kwargs).to_dense()
    if hutchinson:
        # for a fixed draw z, (I ⊗ z)^T (A ⊗ B) (I ⊗ z) = (z^T B z) A: a multiple of A
        coef = float((tr_b * A.matrix).sum() / A.matrix.square().sum())
        torch.testing.assert_close(tr_b, coef * A.matrix)
    else:
        torch.testing.assert_close(tr_b, torch.trace(B.matrix) * A.matrix)
        torch.testing.assert_close(tr_a, torch.trace(A.matrix) * B.matrix)
