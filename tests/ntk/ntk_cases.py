"""Models of every kind at a random point, for the dense NTK tests of the ntk modules."""

import torch

from sntkit.models import GRU, LSTM, RNN, FunctionalCell
from sntkit.ntk import state_ntk

DT = torch.float64
B, T = 3, 4


def randomize(cell, scale=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return cell


def functional():
    W = torch.randn(4, 4, dtype=DT, generator=torch.Generator().manual_seed(5)) * 0.5
    return FunctionalCell(
        lambda p, h, x: torch.tanh(h @ p["W"].T + x @ p["U"].T) + 0.1 * h**2,
        {"W": W, "U": torch.ones(4, 2, dtype=DT)},
        n_state=4,
        n_input=2,
    )


CASES = {
    "rnn-pre-tanh": (lambda: randomize(RNN(5, 2, dtype=DT)), [None, ["W"], ["W_in", "b"]]),
    "rnn-post-tanh": (lambda: randomize(RNN(5, 2, form="post", dtype=DT)), [None, ["W", "b"]]),
    "rnn-pre-relu-leak": (
        lambda: randomize(RNN(5, 2, activation="relu", leak=0.4, dtype=DT)),
        [None, ["W_in"]],
    ),
    "rnn-post-leak": (lambda: randomize(RNN(4, 2, form="post", leak=0.5, dtype=DT)), [None]),
    "rnn-autonomous": (lambda: randomize(RNN(5, 0, form="post", dtype=DT)), [None, ["W"]]),
    "gru": (
        lambda: randomize(GRU(4, 2, dtype=DT)),
        [None, ["weight_hh"], ["bias_ih", "weight_ih"]],
    ),
    "gru-nobias": (lambda: randomize(GRU(4, 2, bias=False, dtype=DT)), [None]),
    "lstm": (lambda: randomize(LSTM(3, 2, dtype=DT)), [None, ["weight_hh", "bias_hh"]]),
    "torch-gru-2layer": (lambda: randomize(torch.nn.GRU(2, 3, num_layers=2).double()), [None]),
    "torch-lstm-2layer": (
        lambda: randomize(torch.nn.LSTM(2, 3, num_layers=2).double()),
        [None, ["weight_ih_l1", "weight_hh_l0"]],
    ),
    "torch-rnn-relu": (
        lambda: randomize(torch.nn.RNN(2, 4, nonlinearity="relu").double(), 0.4),
        [None],
    ),
    "functional": (functional, [None, ["W"]]),
}


def build(name, trainable, path):
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


def close(a, b, rtol=1e-10):
    scale = b.abs().max()
    assert (a - b).abs().max() <= rtol * scale, float((a - b).abs().max() / scale)
