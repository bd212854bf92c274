"""The Cell contract shared by every cell: the lifted step and the optional closed-form step
Jacobian."""

import pytest
import torch
from torch.func import jacrev

from sntkit.models import GRU, LSTM, RNN, as_cell

DT = torch.float64


@pytest.mark.parametrize("make", [GRU, LSTM, RNN])
def test_lifted_step_is_the_step_and_offsets_enter_preactivations(make):
    """``D_θ f δθ = Σ_g ∂f/∂δ_g (δW_g · site_g)``: the lifted form used by Theorem 1."""
    torch.manual_seed(4)
    cell = make(3, 2, dtype=DT)
    p = cell.params()
    h = torch.randn(4, cell.n_state, dtype=DT)
    x = torch.randn(4, 2, dtype=DT)
    torch.testing.assert_close(cell.step_lifted(p, h, x)[0], cell.step(p, h, x))
    _, sites = cell.step_lifted(p, h, x)
    zero = {g: torch.zeros(4, n, dtype=DT) for g, n in cell.group_sizes().items()}
    for name, value in p.items():
        delta = torch.randn_like(value)
        dtheta = jacrev(lambda w, name=name: cell.step(p | {name: w}, h, x))(value)
        lhs = torch.einsum("bn...,...->bn", dtheta, delta)
        offsets = {}
        for use in cell.site_uses:
            if use.param == name:
                d = delta[use.rows]
                term = sites[use.site] * d if d.ndim == 1 else sites[use.site] @ d.T
                offsets[use.group] = offsets.get(use.group, 0) + term
        rhs = 0
        for g, off in offsets.items():
            jac = jacrev(lambda o, g=g: cell.step_lifted(p, h, x, zero | {g: o})[0])(zero[g])
            rhs = rhs + torch.einsum("bnci,ci->bn", jac, off)
        torch.testing.assert_close(lhs, rhs)


def test_cells_without_closed_form_step_jacobian_return_none():
    assert GRU(3, 2, dtype=DT).step_jacobian({}, torch.zeros(1, 3), None) is None
    assert (
        as_cell(torch.nn.RNN(2, 3, num_layers=2)).step_jacobian({}, torch.zeros(1, 6), None) is None
    )
