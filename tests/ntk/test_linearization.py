"""The closed-form, batch-tiled kernels of CellLinearization against dense float64 references."""

import pytest
import torch
from ntk_reference import dense_jacobian, dense_propagator

import sntkit.ntk.linearization as linearization
from sntkit.models import RNN
from sntkit.ntk import state_ntk

DT = torch.float64
B, T = 3, 6

RNNS = {
    "post-tanh": (dict(form="post"), 0, None),
    "post-tanh-inputs": (dict(form="post"), 2, None),
    "post-tanh-W-b": (dict(form="post"), 2, ["W", "b"]),
    "post-leak": (dict(form="post", leak=0.5), 2, None),
    "pre-tanh": (dict(form="pre"), 2, None),
    "pre-tanh-W_in": (dict(form="pre"), 2, ["W_in"]),
    "pre-relu-leak": (dict(form="pre", activation="relu", leak=0.4), 2, ["W", "b"]),
    "post-custom": (dict(form="post", activation=lambda z: torch.sin(z) + 0.1 * z**3), 0, None),
    "torch-rnn-tanh": (dict(torch=lambda: torch.nn.RNN(2, 4)), 2, None),
    "torch-rnncell-relu": (
        dict(torch=lambda: torch.nn.RNNCell(2, 4, nonlinearity="relu")),
        2,
        None,
    ),
}


def _build(name, path="matrix_free"):
    kw, n_in, trainable = RNNS[name]
    g = torch.Generator().manual_seed(3)
    cell = kw["torch"]().double() if "torch" in kw else RNN(4, n_in, dtype=DT, **kw)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.6)
    h0 = torch.randn(B, 4, generator=g, dtype=DT) * 0.5
    x = torch.randn(B, T, n_in, generator=g, dtype=DT) if n_in else None
    return state_ntk(cell, h0, x, steps=None if n_in else T, trainable=trainable, path=path)


def _tiles(monkeypatch, tile_bytes):
    """Tiles of ``tile_bytes`` per step block (``J``, ``J^*``) and per ``T`` steps (the fused
    Fisher product, which takes a tile through all T steps and back)."""
    monkeypatch.setattr(linearization, "TILE_BYTES", tile_bytes)
    monkeypatch.setattr(linearization, "TILE_MIN_ROWS", 1)
    monkeypatch.setattr(linearization, "FISHER_TILE_BYTES", tile_bytes * T)
    monkeypatch.setattr(linearization, "FISHER_TILE_MIN_ROWS", 1)


def _close(a, b, rtol=1e-10):
    scale = b.abs().max()
    assert (a - b).abs().max() <= rtol * scale, float((a - b).abs().max() / scale)


@pytest.mark.parametrize("tile_bytes", [1, 700, 2**20])  # 1 sequence, 2 of 3, the whole batch
@pytest.mark.parametrize("name", list(RNNS))
@pytest.mark.parametrize("path", ["structured", "matrix_free"])
def test_closed_form_tiled_kernels_equal_dense(name, path, tile_bytes, monkeypatch):
    _tiles(monkeypatch, tile_bytes)
    ntk = _build(name, path)
    lin = ntk.linearization
    # the closed form is what runs: no autograd closures, no stored per-pair Jacobians
    assert lin.fused and lin.prop.jac is not None and lin.prop.A is None
    J = dense_jacobian(ntk)
    _close(ntk.jacobian.to_dense(), J)
    _close(ntk.jacobian.T.to_dense(), J.T)
    _close(ntk.operator.to_dense(), J @ J.T)
    _close(ntk.fisher.to_dense(), J.T @ J)
    P = dense_propagator(ntk)
    _close(ntk.P.to_dense(), P)
    _close(ntk.P.T.to_dense(), P.T)
    assert lin.prop._vjps is None


@pytest.mark.parametrize("tile_bytes", [1, 320, 2**20])  # 5 probes: tiles of 1, 2 + 1, 3 rows
@pytest.mark.parametrize("name", ["post-leak", "pre-relu-leak", "torch-rnn-tanh"])
def test_closed_form_equals_autograd_kernels(name, tile_bytes, monkeypatch):
    """Same Fisher and NTK block products with the closed form and the autograd kernels."""
    _tiles(monkeypatch, tile_bytes)
    ntk = _build(name)
    generic = linearization.CellLinearization(
        ntk.cell, ntk.space, ntk.traj, "matrix_free", closed_form=False
    )
    assert not generic.fused and generic.prop.jac is None
    V = torch.randn(5, ntk.num_params, dtype=DT, generator=torch.Generator().manual_seed(0))
    _close(ntk.linearization.fisher(V), generic.fisher(V))
    E = torch.randn(5, *ntk.state_shape, dtype=DT, generator=torch.Generator().manual_seed(1))
    _close(ntk.linearization.ntk(E), generic.ntk(E))
