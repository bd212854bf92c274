"""The propagator P = (I − D_h f T↓)^{-1} and its per-step Jacobians against dense float64
constructions (paper 004 Prop. 1, Cor. 1)."""

import pytest
import torch
from ntk_cases import CASES, build, close
from ntk_reference import dense_parameter_jacobian, dense_propagator, dense_step_jacobians

from sntkit.ntk.propagator import from_time_major, step_jacobians, to_time_major


@pytest.mark.parametrize("name", list(CASES))
def test_P_and_K_factors(name):
    ntk = build(name, None, "structured")
    P = dense_propagator(ntk)
    Dth = dense_parameter_jacobian(ntk)
    close(ntk.P.to_dense(), P)
    close(ntk.P.T.to_dense(), P.T)
    close(ntk.K.to_dense(), Dth @ Dth.T)
    close((ntk.P @ ntk.K @ ntk.P.T).to_dense(), P @ Dth @ Dth.T @ P.T)
    # both paths apply the same propagator
    close(build(name, None, "matrix_free").P.to_dense(), P)


@pytest.mark.parametrize("name", ["rnn-pre-tanh", "gru", "lstm", "torch-lstm-2layer", "functional"])
def test_step_jacobians_equal_dense(name):
    """``A_t = ∂f/∂h`` at every pair from N batched VJPs equals per-pair ``jacrev``."""
    ntk = build(name, None, "matrix_free")
    A = step_jacobians(ntk.cell, ntk.params, ntk.traj.prev, ntk.inputs)  # (T, B, N, N)
    close(A.transpose(0, 1), dense_step_jacobians(ntk))


def test_time_major_round_trip():
    X = torch.randn(5, 3, 4, 2, dtype=torch.float64)  # (k, B, T, N)
    Y = to_time_major(X)
    assert Y.shape == (4, 3, 5, 2) and torch.equal(Y[2, 1, 3], X[3, 1, 2])
    assert torch.equal(from_time_major(Y), X)
