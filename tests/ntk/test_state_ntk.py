"""NTK_S = P K P^* against dense float64 Jacobians (paper 004 Prop. 1, Cor. 1, Theorem 1)."""

import pytest
import torch
from ntk_reference import (
    dense_jacobian,
    dense_parameter_jacobian,
    dense_propagator,
)

from sntkit.models import GRU, LSTM, RNN, FunctionalCell
from sntkit.ntk import state_ntk

DT = torch.float64
B, T = 3, 4


def _randomize(cell, scale=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return cell


def _functional():
    W = torch.randn(4, 4, dtype=DT, generator=torch.Generator().manual_seed(5)) * 0.5
    return FunctionalCell(
        lambda p, h, x: torch.tanh(h @ p["W"].T + x @ p["U"].T) + 0.1 * h**2,
        {"W": W, "U": torch.ones(4, 2, dtype=DT)},
        n_state=4,
        n_input=2,
    )


CASES = {
    "rnn-pre-tanh": (lambda: _randomize(RNN(5, 2, dtype=DT)), [None, ["W"], ["W_in", "b"]]),
    "rnn-post-tanh": (lambda: _randomize(RNN(5, 2, form="post", dtype=DT)), [None, ["W", "b"]]),
    "rnn-pre-relu-leak": (
        lambda: _randomize(RNN(5, 2, activation="relu", leak=0.4, dtype=DT)),
        [None, ["W_in"]],
    ),
    "rnn-post-leak": (lambda: _randomize(RNN(4, 2, form="post", leak=0.5, dtype=DT)), [None]),
    "rnn-autonomous": (lambda: _randomize(RNN(5, 0, form="post", dtype=DT)), [None, ["W"]]),
    "gru": (
        lambda: _randomize(GRU(4, 2, dtype=DT)),
        [None, ["weight_hh"], ["bias_ih", "weight_ih"]],
    ),
    "gru-nobias": (lambda: _randomize(GRU(4, 2, bias=False, dtype=DT)), [None]),
    "lstm": (lambda: _randomize(LSTM(3, 2, dtype=DT)), [None, ["weight_hh", "bias_hh"]]),
    "torch-gru-2layer": (lambda: _randomize(torch.nn.GRU(2, 3, num_layers=2).double()), [None]),
    "torch-lstm-2layer": (
        lambda: _randomize(torch.nn.LSTM(2, 3, num_layers=2).double()),
        [None, ["weight_ih_l1", "weight_hh_l0"]],
    ),
    "torch-rnn-relu": (
        lambda: _randomize(torch.nn.RNN(2, 4, nonlinearity="relu").double(), 0.4),
        [None],
    ),
    "functional": (_functional, [None, ["W"]]),
}


def _build(name, trainable, path):
    make, _ = CASES[name]
    model = make()
    n_state = {"torch-gru-2layer": 6, "torch-lstm-2layer": 12, "torch-rnn-relu": 4}.get(name)
    cell_state = n_state or model.n_state
    n_in = 0 if name == "rnn-autonomous" else 2
    g = torch.Generator().manual_seed(1)
    h0 = torch.randn(B, cell_state, generator=g, dtype=DT) * 0.5
    x = None if n_in == 0 else torch.randn(B, T, n_in, generator=g, dtype=DT)
    return state_ntk(model, h0, x, steps=T if x is None else None, trainable=trainable, path=path)


PARAMS = [
    (name, tr, path)
    for name, (_, trs) in CASES.items()
    for tr in trs
    for path in ("structured", "matrix_free", "unrolled")
]


def _close(a, b, rtol=1e-10):
    scale = b.abs().max()
    assert (a - b).abs().max() <= rtol * scale, float((a - b).abs().max() / scale)


@pytest.mark.parametrize("name, trainable, path", PARAMS)
def test_ntk_equals_dense_jacobian_gram(name, trainable, path):
    ntk = _build(name, trainable, path)
    J = dense_jacobian(ntk)
    _close(ntk.jacobian.to_dense(), J)
    _close(ntk.operator.to_dense(), J @ J.T)
    _close(ntk.fisher.to_dense(), J.T @ J)


@pytest.mark.parametrize("name", list(CASES))
def test_P_and_K_factors(name):
    ntk = _build(name, None, "structured")
    P = dense_propagator(ntk)
    Dth = dense_parameter_jacobian(ntk)
    _close(ntk.P.to_dense(), P)
    _close(ntk.P.T.to_dense(), P.T)
    _close(ntk.K.to_dense(), Dth @ Dth.T)
    _close((ntk.P @ ntk.K @ ntk.P.T).to_dense(), P @ Dth @ Dth.T @ P.T)
    # both paths apply the same propagator
    _close(_build(name, None, "matrix_free").P.to_dense(), P)


@pytest.mark.parametrize(
    "name, trainable",
    [(n, tr) for n, (_, trs) in CASES.items() if n != "functional" for tr in trs],
)
def test_kronecker_core_identity_theorem1(name, trainable):
    ntk = _build(name, trainable, "matrix_free")
    NTK = ntk.operator.to_dense()
    core = ntk.P_core @ ntk.core_kernel @ ntk.P_core.T
    _close(core.to_dense(), NTK)


@pytest.mark.parametrize("name", ["rnn-pre-tanh", "rnn-post-tanh", "lstm", "rnn-autonomous"])
def test_single_gram_core_is_exact_for_rnn_and_lstm(name):
    """For one pre-activation group, K_core is literally V V^T ⊗ I_n (Theorem 1)."""
    ntk = _build(name, None, "structured")
    V = ntk.weight_sites
    n = ntk.P_core.shape_in[-1]
    expected = torch.kron(V @ V.T, torch.eye(n, dtype=DT))
    _close(ntk.core_kernel.to_dense(), expected)
    _close(ntk.core.to_dense(), V @ V.T)
    # V = cat(H_-, X, 1) in the pre form with all parameters trained
    if name == "rnn-pre-tanh":
        H = ntk.traj.prev.reshape(B * T, -1)
        X = ntk.inputs.reshape(B * T, -1)
        torch.testing.assert_close(V, torch.cat([H, X, torch.ones(B * T, 1, dtype=DT)], 1))


def test_gru_single_gram_is_only_approximate():
    """The paper's (H H^T + X X^T) ⊗ I_3n differs from the exact GRU kernel (see models.gru)."""
    ntk = _build("gru-nobias", None, "structured")
    V = ntk.weight_sites  # cat(H_-, X)
    approx = torch.kron(V @ V.T, torch.eye(3 * 4, dtype=DT))
    exact_lifted = ntk.core_kernel.to_dense()
    assert exact_lifted.shape == (B * T * 4 * 4, B * T * 4 * 4)  # rz (2N) + nx (N) + nh (N)
    assert approx.shape != exact_lifted.shape


def test_core_requires_weight_sites():
    ntk = _build("functional", None, "structured")
    with pytest.raises(ValueError, match="weight sites"):
        _ = ntk.core
    with pytest.raises(ValueError, match="weight sites"):
        _ = ntk.P_core


def test_first_step_from_h0_enters_K():
    """kpflow's P K P^T omits the first step; here trajectories of length 1 have NTK = K."""
    cell = _randomize(RNN(4, 0, form="post", dtype=DT))
    h0 = torch.randn(2, 4, dtype=DT)
    ntk = state_ntk(cell, h0, steps=1)
    Dth = dense_parameter_jacobian(ntk)
    _close(ntk.operator.to_dense(), Dth @ Dth.T)
    assert ntk.operator.to_dense().abs().max() > 0.1
