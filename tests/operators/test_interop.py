"""Interop: matrix shape, ``@`` on flattened tensors, scipy and curvlinops on the NTK operators."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from sntkit.models import GRU
from sntkit.ntk import state_ntk
from sntkit.operators import Dense, Identity

DT = torch.float64


def _ntk():
    torch.manual_seed(0)
    cell = GRU(3, 2, dtype=DT)
    x = torch.randn(1, 3, 2, dtype=DT)
    return state_ntk(cell, torch.zeros(1, 3, dtype=DT), x)  # B·T·N = 9 < P = 63


def test_shape_and_matmul_on_flattened_tensors():
    ntk = _ntk()
    J = ntk.jacobian
    M = J.to_dense()
    assert J.shape == (9, 63) and ntk.fisher.shape == (63, 63) and ntk.operator.shape == (9, 9)
    v = torch.randn(63, dtype=DT)
    assert torch.allclose((J @ v).reshape(-1), M @ v)  # v has J's shape_in: a state comes back
    u = torch.randn(9, dtype=DT)
    assert torch.allclose(J.T @ u, M.T @ u)  # flat vector in, flat vector out
    U = torch.randn(9, 4, dtype=DT)
    assert torch.allclose(J.T @ U, M.T @ U)  # columns
    assert torch.allclose(ntk.operator @ U, M @ M.T @ U)
    V = torch.randn(63, 5, dtype=DT)
    assert torch.allclose(ntk.fisher @ V, M.T @ M @ V)
    probes = torch.randn(5, 1, 3, 3, dtype=DT)  # a probe block keeps the tensor layout
    assert torch.allclose((ntk.operator @ probes).reshape(5, -1), probes.reshape(5, -1) @ M @ M.T)


def test_scipy_solvers_on_the_fisher():
    ntk = _ntk()
    M = ntk.jacobian.to_dense()
    lam = torch.linalg.eigvalsh(M.T @ M).flip(0)
    A = ntk.fisher.to_scipy()
    vals = spla.eigsh(A, k=3, which="LA", return_eigenvectors=False)
    assert np.allclose(np.sort(vals)[::-1], lam[:3].numpy(), rtol=1e-8)


def test_curvlinops_estimators_on_the_fisher():
    curvlinops = pytest.importorskip("curvlinops")
    ntk = _ntk()
    M = ntk.jacobian.to_dense()
    exact = float(torch.trace(M.T @ M))
    torch.manual_seed(0)
    # the Fisher has rank <= 9, so a Hutch++ sketch of 10 directions captures it exactly
    hpp = float(curvlinops.hutchpp_trace(ntk.fisher, num_matvecs=30))
    assert hpp == pytest.approx(exact, rel=1e-8)
    fro2 = float(curvlinops.hutchinson_squared_fro(ntk.fisher, num_matvecs=60))
    ref = float(torch.linalg.matrix_norm(M.T @ M) ** 2)
    assert fro2 == pytest.approx(ref, rel=0.5)  # plain Hutchinson, 60 probes


def test_identity_takes_dtype_and_device_from_its_partner():
    W = torch.randn(2, 2, dtype=torch.float32)
    K = Identity(3).kron(Dense(W))
    assert K.dtype == torch.float32
    assert torch.allclose(K.to_dense(), torch.kron(torch.eye(3), W))
    S = Dense(W) + Identity(2)
    assert S.dtype == torch.float32 and torch.allclose(S.to_dense(), W + torch.eye(2))
    assert (Dense(W) @ Identity(2)).dtype == torch.float32
    assert Identity(2).dtype == torch.float64  # alone: float64 on the CPU
    with pytest.raises(ValueError, match="different dtypes"):
        Dense(W) + Identity(2, dtype=DT)
