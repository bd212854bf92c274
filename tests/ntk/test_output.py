"""Output-space NTK of wrapper models against dense float64 jacrev of the whole wrapper."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from sntkit.linalg import eigsh
from sntkit.models import FunctionalCell
from sntkit.ntk import state_ntk

DT = torch.float64
B, T, NIN, H, NOUT = 3, 4, 2, 5, 2


class Wrapper(nn.Module):
    """What users write: a recurrent module and a readout applied at every step."""

    def __init__(self, kind="GRU", layers=1, readout=None):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = getattr(nn, kind)(NIN, H, num_layers=layers, batch_first=True).to(DT)
        self.fc = (readout or nn.Linear(H, NOUT)).to(DT)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out)


def _inputs(seed=1):
    return torch.randn(B, T, NIN, dtype=DT, generator=torch.Generator().manual_seed(seed))


def _dense_output_jacobian(model, x, names):
    """``d vec(model(x)) / d θ`` over the named parameters, ``(B·T·n_out, P)``."""
    params = dict(model.named_parameters())
    theta = {n: params[n].detach() for n in names}

    def out(th):
        return functional_call(model, params | th, (x,))

    J = jacrev(out)(theta)
    return torch.cat([J[n].reshape(B * T * NOUT, -1) for n in names], dim=1)


@pytest.mark.parametrize(
    ("kind", "layers", "trainable"),
    [
        ("GRU", 1, None),
        ("LSTM", 2, None),
        ("RNN", 1, lambda n: n != "fc.bias"),
        ("GRU", 1, ["rnn.weight_hh_l0", "rnn.bias_ih_l0"]),  # readout frozen
    ],
)
def test_output_ntk_matches_jacrev_of_wrapper(kind, layers, trainable):
    model = Wrapper(kind, layers)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = _inputs()
    ntk = state_ntk(model, inputs=x, trainable=trainable)
    out = ntk.output
    names = list(out.trainable)
    J = _dense_output_jacobian(model, x, names)
    assert torch.allclose(out.outputs, model(x).detach(), atol=1e-12)
    assert torch.allclose(out.jacobian.to_dense(), J, atol=1e-10)
    assert torch.allclose(out.operator.to_dense(), J @ J.T, atol=1e-10)
    assert torch.allclose(out.fisher.to_dense(), J.T @ J, atol=1e-10)
    readout_names = [n for n in names if n.startswith("fc.")]
    assert out.num_readout_params == sum(before[n].numel() for n in readout_names)
    assert bool(readout_names) == (trainable is None or callable(trainable))
    for n, p in model.named_parameters():  # the model is never modified
        assert torch.equal(p.detach(), before[n])


def test_output_is_C_ntk_C_plus_readout_kernel():
    model = Wrapper("GRU")
    x = _inputs(2)
    ntk = state_ntk(model, inputs=x)
    C = model.fc.weight.detach()  # (n_out, H); the features are the states for one layer
    S = ntk.operator.to_dense().reshape(B, T, H, B, T, H)
    CSC = torch.einsum("oi,btiBTj,pj->btoBTp", C, S, C).reshape(B * T * NOUT, -1)
    R = _dense_output_jacobian(model, x, ["fc.weight", "fc.bias"])
    assert torch.allclose(ntk.output.operator.to_dense(), CSC + R @ R.T, atol=1e-10)


def test_output_views_alignment_and_spectra():
    model = Wrapper("GRU")
    x = _inputs(3)
    out = state_ntk(model, inputs=x).output
    J = _dense_output_jacobian(model, x, list(out.trainable))
    M = (J @ J.T).reshape(B, T, NOUT, B, T, NOUT)
    temporal = torch.einsum("btnBTn->btBT", M).reshape(B * T, B * T) / NOUT
    assert torch.allclose(out.temporal().to_dense(), temporal, atol=1e-10)
    assert torch.allclose(out.view_matrix(("batch", "time")), temporal, atol=1e-10)
    err = torch.randn(B, T, NOUT, dtype=DT, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(out.alignment(err), (J.T @ err.reshape(-1)).square().sum())
    mode = torch.randn(B, T, dtype=DT, generator=torch.Generator().manual_seed(5))
    u = mode.reshape(-1)
    expect = u @ temporal @ u / (torch.linalg.matrix_norm(temporal) * u.square().sum())
    assert torch.allclose(out.target_alignment(mode), expect[None], atol=1e-10)
    values, vectors = eigsh(out.operator, 3, seed=0)
    lam, U = torch.linalg.eigh(J @ J.T)
    assert torch.allclose(values, lam.flip(0)[:3], rtol=1e-7)
    overlap = (vectors.reshape(3, -1) @ U[:, -3:].flip(1)).abs()
    assert torch.allclose(overlap.diagonal(), torch.ones(3, dtype=DT), atol=1e-6)


def test_explicit_readouts_module_and_function():
    cell = nn.GRU(NIN, H, batch_first=True).to(DT)
    lin = nn.Linear(H, NOUT).to(DT)
    x = _inputs(6)
    ntk = state_ntk(cell, inputs=x, readout=lin)
    assert ntk.output.trainable[-2:] == ("readout.weight", "readout.bias")
    frozen = state_ntk(cell, inputs=x, readout=lin, trainable=lambda n: "readout" not in n)
    fn = state_ntk(cell, inputs=x, readout=lambda h: torch.tanh(h) @ lin.weight.detach().T)
    assert frozen.output.num_params == fn.output.num_params == ntk.num_params
    # a frozen linear readout and the same map as a function differ only by the tanh
    Jf = fn.output.jacobian.to_dense()
    W = lin.weight.detach()
    Js = ntk.jacobian.to_dense().reshape(B, T, H, -1)
    sech2 = 1 - torch.tanh(ntk.states) ** 2
    expect = torch.einsum("oh,bth,bthp->btop", W, sech2, Js).reshape(B * T * NOUT, -1)
    assert torch.allclose(Jf, expect, atol=1e-10)
    assert torch.allclose(
        frozen.output.operator.to_dense(),
        torch.einsum(
            "oh,bthBTj,pj->btoBTp", W, ntk.operator.to_dense().reshape(B, T, H, B, T, H), W
        ).reshape(B * T * NOUT, -1),
        atol=1e-10,
    )


def test_no_readout_and_bad_readouts_raise():
    cell = nn.GRU(NIN, H, batch_first=True).to(DT)
    ntk = state_ntk(cell, inputs=_inputs())
    with pytest.raises(ValueError, match="no readout: pass readout="):
        ntk.output  # noqa: B018
    with pytest.raises(TypeError, match=r"readout must be an nn\.Module"):
        state_ntk(cell, inputs=_inputs(), readout=3).output  # noqa: B018
    with pytest.raises(ValueError, match="readout must be 'auto'"):
        state_ntk(cell, inputs=_inputs(), readout="fc")
    with pytest.raises(ValueError, match=r"outputs \(B, T, n_out\)"):
        state_ntk(cell, inputs=_inputs(), readout=lambda h: h.sum(-1)).output  # noqa: B018


def test_functional_cell_with_scalar_and_tensor_parameters():
    """0-d and 3-d parameters (issue: reshape() of a 0-d parameter failed)."""
    g = torch.Generator().manual_seed(7)
    W = torch.randn(2, 2, 2, dtype=DT, generator=g) * 0.5

    def step(p, h, x):
        return h + p["tau"] * (-h + torch.tanh(x @ p["W"].reshape(4, 2).T + p["gain"] * h))

    cell = FunctionalCell(
        step,
        {"W": W, "tau": torch.tensor(0.3, dtype=DT), "gain": torch.tensor(0.9, dtype=DT)},
        n_state=4,
        n_input=2,
    )
    x = _inputs()
    h0 = torch.zeros(B, 4, dtype=DT)
    ntk = state_ntk(cell, h0, x)
    assert ntk.num_params == 10
    from ntk_reference import dense_jacobian

    J = dense_jacobian(ntk)
    assert torch.allclose(ntk.jacobian.to_dense(), J, atol=1e-10)
    assert torch.allclose(ntk.fisher.to_dense(), J.T @ J, atol=1e-10)
    assert ntk.unflatten(ntk.space.vector())["tau"].shape == ()
