"""The GRU cell against the paper's equations."""

import torch

from sntkit.models import GRU

DT = torch.float64


def test_gru_matches_paper_equations_without_bias():
    torch.manual_seed(1)
    N, n_in = 4, 2
    cell = GRU(N, n_in, bias=False, dtype=DT)
    p = cell.params()
    h, x = torch.randn(3, N, dtype=DT), torch.randn(3, n_in, dtype=DT)
    Wi, Wh = p["weight_ih"].split(N), p["weight_hh"].split(N)
    r = torch.sigmoid(x @ Wi[0].T + h @ Wh[0].T)
    z = torch.sigmoid(x @ Wi[1].T + h @ Wh[1].T)
    ell = torch.tanh(x @ Wi[2].T + r * (h @ Wh[2].T))
    torch.testing.assert_close(cell.step(p, h, x), (1 - z) * ell + z * h)
