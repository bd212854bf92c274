"""Dense float64 references shared by the operator tests."""

import math

import numpy as np
import torch

from sntkit.operators import Dense, Operator

DT = torch.float64


def rand(*shape, seed=0):
    return torch.randn(*shape, dtype=DT, generator=torch.Generator().manual_seed(seed))


def dense_op(shape_in, shape_out, seed=0, **kwargs):
    """A random ``Dense`` operator ``shape_in -> shape_out``."""
    return Dense(
        rand(math.prod(shape_out), math.prod(shape_in), seed=seed),
        shape_in=shape_in,
        shape_out=shape_out,
        **kwargs,
    )


def kron(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``torch.kron``, except for transposed views with a size-1 axis, where torch 2.x raises
    ("view size is not compatible"): those go through ``numpy.kron``."""
    try:
        return torch.kron(A, B)
    except RuntimeError:
        return torch.from_numpy(np.kron(A.numpy(), B.numpy()))


def check_against_dense(op: Operator, M: torch.Tensor) -> None:
    """Every way of applying ``op`` and its adjoint agrees with the matrix ``M`` (row-major)."""
    assert M.shape == (op.size_out, op.size_in)
    torch.testing.assert_close(op.to_dense(), M)
    torch.testing.assert_close(op.to_dense(chunk_size=3), M)
    x, y = rand(*op.shape_in, seed=11), rand(*op.shape_out, seed=12)
    torch.testing.assert_close(op.matvec(x).reshape(-1), M @ x.reshape(-1))
    torch.testing.assert_close(op.rmatvec(y).reshape(-1), M.T @ y.reshape(-1))
    X, Y = rand(4, *op.shape_in, seed=13), rand(3, *op.shape_out, seed=14)
    AX, AtY = op.matmat(X), op.rmatmat(Y)
    assert AX.shape == (4, *op.shape_out) and AtY.shape == (3, *op.shape_in)
    torch.testing.assert_close(AX.reshape(4, -1), X.reshape(4, -1) @ M.T)
    torch.testing.assert_close(AtY.reshape(3, -1), Y.reshape(3, -1) @ M)
    # matvec and matmat agree probe by probe (no cross-talk between probes)
    for i in range(4):
        torch.testing.assert_close(op.matvec(X[i]), AX[i])
    for i in range(3):
        torch.testing.assert_close(op.rmatvec(Y[i]), AtY[i])
    torch.testing.assert_close(op.T.to_dense(), M.T)
    torch.testing.assert_close((op @ x).reshape(-1), M @ x.reshape(-1))
    torch.testing.assert_close(op(X).reshape(4, -1), X.reshape(4, -1) @ M.T)
