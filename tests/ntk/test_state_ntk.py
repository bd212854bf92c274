"""NTK_S = J J^* of every model kind against dense float64 Jacobians (paper 004 Prop. 1)."""

import pytest
import torch
from ntk_cases import DT, PARAMS, build, close, randomize
from ntk_reference import dense_jacobian, dense_parameter_jacobian

from sntkit.models import RNN
from sntkit.ntk import state_ntk


@pytest.mark.parametrize("name, trainable, path", PARAMS)
def test_ntk_equals_dense_jacobian_gram(name, trainable, path):
    ntk = build(name, trainable, path)
    J = dense_jacobian(ntk)
    close(ntk.jacobian.to_dense(), J)
    close(ntk.operator.to_dense(), J @ J.T)
    close(ntk.fisher.to_dense(), J.T @ J)


def test_first_step_from_h0_enters_K():
    """kpflow's P K P^T omits the first step; here trajectories of length 1 have NTK = K."""
    cell = randomize(RNN(4, 0, form="post", dtype=DT))
    h0 = torch.randn(2, 4, dtype=DT)
    ntk = state_ntk(cell, h0, steps=1)
    Dth = dense_parameter_jacobian(ntk)
    close(ntk.operator.to_dense(), Dth @ Dth.T)
    assert ntk.operator.to_dense().abs().max() > 0.1
