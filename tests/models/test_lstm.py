"""The LSTM cell against torch.nn.LSTMCell with the same weights (PyTorch's equations)."""

import torch

from sntkit.models import LSTM

DT = torch.float64


def test_lstm_step_matches_torch_lstm_cell():
    """``s' = cat(h', c')`` with ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``."""
    torch.manual_seed(3)
    H, n_in, B = 4, 3, 5
    cell = LSTM(H, n_in, dtype=DT)
    ref = torch.nn.LSTMCell(n_in, H).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).normal_()
            getattr(ref, name).copy_(getattr(cell, name))
    h, c = torch.randn(B, H, dtype=DT), torch.randn(B, H, dtype=DT)
    x = torch.randn(B, n_in, dtype=DT)
    h1, c1 = ref(x, (h, c))
    new = cell.step(cell.params(), torch.cat([h, c], -1), x)
    assert cell.n_state == 2 * H
    torch.testing.assert_close(new, torch.cat([h1, c1], -1), rtol=1e-12, atol=1e-12)
