"""The Kronecker core of Theorem 1 (paper 004): NTK_S = P_core K_core P_core^* and the
single-Gram form V V^T ⊗ I_n, against dense float64 constructions."""

import pytest
import torch
from ntk_cases import CASES, DT, B, T, build, close


@pytest.mark.parametrize(
    "name, trainable",
    [(n, tr) for n, (_, trs) in CASES.items() if n != "functional" for tr in trs],
)
def test_kronecker_core_identity_theorem1(name, trainable):
    ntk = build(name, trainable, "matrix_free")
    NTK = ntk.operator.to_dense()
    core = ntk.P_core @ ntk.core_kernel @ ntk.P_core.T
    close(core.to_dense(), NTK)


@pytest.mark.parametrize("name", ["rnn-pre-tanh", "rnn-post-tanh", "lstm", "rnn-autonomous"])
def test_single_gram_core_is_exact_for_rnn_and_lstm(name):
    """For one pre-activation group, K_core is literally V V^T ⊗ I_n (Theorem 1)."""
    ntk = build(name, None, "structured")
    V = ntk.weight_sites
    n = ntk.P_core.shape_in[-1]
    expected = torch.kron(V @ V.T, torch.eye(n, dtype=DT))
    close(ntk.core_kernel.to_dense(), expected)
    close(ntk.core.to_dense(), V @ V.T)
    # V = cat(H_-, X, 1) in the pre form with all parameters trained
    if name == "rnn-pre-tanh":
        H = ntk.traj.prev.reshape(B * T, -1)
        X = ntk.inputs.reshape(B * T, -1)
        torch.testing.assert_close(V, torch.cat([H, X, torch.ones(B * T, 1, dtype=DT)], 1))


def test_gru_single_gram_is_only_approximate():
    """The paper's (H H^T + X X^T) ⊗ I_3n differs from the exact GRU kernel (see models.gru)."""
    ntk = build("gru-nobias", None, "structured")
    V = ntk.weight_sites  # cat(H_-, X)
    approx = torch.kron(V @ V.T, torch.eye(3 * 4, dtype=DT))
    exact_lifted = ntk.core_kernel.to_dense()
    assert exact_lifted.shape == (B * T * 4 * 4, B * T * 4 * 4)  # rz (2N) + nx (N) + nh (N)
    assert approx.shape != exact_lifted.shape


def test_core_requires_weight_sites():
    ntk = build("functional", None, "structured")
    with pytest.raises(ValueError, match="weight sites"):
        _ = ntk.core
    with pytest.raises(ValueError, match="weight sites"):
        _ = ntk.P_core
