"""torch.nn.RNN/GRU/LSTM adapters: same forward, shared and untouched parameters, advice for
unsupported modules."""

import pytest
import torch

from sntkit.models import as_cell, detached_params

DT = torch.float64


@pytest.mark.parametrize(
    "module",
    [
        lambda: torch.nn.RNN(3, 5, num_layers=2, batch_first=True),
        lambda: torch.nn.RNN(3, 5, nonlinearity="relu", batch_first=True),
        lambda: torch.nn.GRU(3, 5, num_layers=2, batch_first=True),
        lambda: torch.nn.GRU(3, 5, bias=False, batch_first=True),
        lambda: torch.nn.LSTM(3, 5, num_layers=2, batch_first=True),
    ],
)
def test_torch_adapters_reproduce_module_forward(module):
    torch.manual_seed(2)
    mod = module().double()
    cell = as_cell(mod)
    L, H, B = mod.num_layers, 5, 4
    x = torch.randn(B, 7, 3, dtype=DT)
    h0 = torch.randn(L, B, H, dtype=DT)
    if isinstance(mod, torch.nn.LSTM):
        c0 = torch.randn(L, B, H, dtype=DT)
        out, (hn, cn) = mod(x, (h0, c0))
        s0 = torch.cat([h0.transpose(0, 1).reshape(B, -1), c0.transpose(0, 1).reshape(B, -1)], -1)
    else:
        out, hn = mod(x, h0)
        s0 = h0.transpose(0, 1).reshape(B, -1)
    states = cell(s0, x)
    torch.testing.assert_close(states[..., (L - 1) * H : L * H], out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(states[:, -1, : L * H], hn.transpose(0, 1).reshape(B, -1))
    if isinstance(mod, torch.nn.LSTM):
        torch.testing.assert_close(states[:, -1, L * H :], cn.transpose(0, 1).reshape(B, -1))


def test_torch_cells_adapt():
    torch.manual_seed(3)
    for mod in (torch.nn.GRUCell(3, 4), torch.nn.RNNCell(3, 4), torch.nn.LSTMCell(3, 4)):
        mod = mod.double()
        cell = as_cell(mod)
        x, h = torch.randn(2, 3, dtype=DT), torch.randn(2, 4, dtype=DT)
        if isinstance(mod, torch.nn.LSTMCell):
            c = torch.randn(2, 4, dtype=DT)
            hn, cn = mod(x, (h, c))
            got = cell.step(cell.params(), torch.cat([h, c], -1), x)
            torch.testing.assert_close(got, torch.cat([hn, cn], -1))
        else:
            torch.testing.assert_close(cell.step(cell.params(), h, x), mod(x, h))


def test_adapter_shares_and_never_modifies_module_parameters():
    mod = torch.nn.GRU(2, 3)
    before = {k: v.clone() for k, v in mod.state_dict().items()}
    cell = as_cell(mod)
    assert all(a is b for a, b in zip(cell.parameters(), mod.parameters(), strict=True))
    detached_params(cell)
    for k, v in mod.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.requires_grad for p in mod.parameters())


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.nn.Linear(2, 2), "not a supported recurrent module"),
        (torch.nn.GRU(2, 3, bidirectional=True), "bidirectional"),
        (torch.nn.LSTM(2, 3, proj_size=2), "proj_size"),
    ],
)
def test_unsupported_modules_are_rejected_with_advice(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        as_cell(bad)
