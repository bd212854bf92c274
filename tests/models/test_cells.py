"""Built-in cells: equations, weight-site bookkeeping and torch.nn adapters."""

import pytest
import torch
from torch.func import jacrev

from sntkit.models import GRU, LSTM, RNN, FunctionalCell, as_cell, detached_params

DT = torch.float64


def test_rnn_pre_and_post_equations():
    torch.manual_seed(0)
    for form in ("pre", "post"):
        cell = RNN(4, 3, form=form, dtype=DT, leak=0.3)
        with torch.no_grad():
            cell.b.normal_()
        p = cell.params()
        h, x = torch.randn(5, 4, dtype=DT), torch.randn(5, 3, dtype=DT)
        if form == "pre":
            update = torch.tanh(h @ p["W"].T + x @ p["W_in"].T + p["b"])
        else:
            update = torch.tanh(h) @ p["W"].T + x @ p["W_in"].T + p["b"]
        expected = 0.7 * h + 0.3 * update
        torch.testing.assert_close(cell.step(p, h, x), expected)


def test_rnn_from_weights():
    W, b = torch.randn(3, 3, dtype=DT), torch.randn(3, dtype=DT)
    h = torch.randn(2, 3, dtype=DT)
    cell = RNN.from_weights(W, b)
    assert cell.n_input == 0 and cell.W.dtype == DT
    torch.testing.assert_close(cell.step(cell.params(), h, None), torch.tanh(h) @ W.T + b)
    pre = RNN.from_weights(W, form="pre")
    torch.testing.assert_close(pre.step(pre.params(), h, None), torch.tanh(h @ W.T))
    with pytest.raises(ValueError, match="square"):
        RNN.from_weights(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="b must have shape"):
        RNN.from_weights(W, torch.zeros(2, dtype=DT))


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


def test_functional_cell_validates_and_steps():
    W = torch.randn(3, 3, dtype=DT)
    cell = FunctionalCell(lambda p, h, x: torch.tanh(h @ p["W"].T), {"W": W}, n_state=3)
    h = torch.randn(2, 3, dtype=DT)
    torch.testing.assert_close(cell.step(cell.params(), h, None), torch.tanh(h @ W.T))
    with pytest.raises(TypeError):
        FunctionalCell("not callable", {"W": W}, n_state=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_state"):
        FunctionalCell(lambda p, h, x: h, {"W": W}, n_state=0)


def test_invalid_cell_arguments():
    with pytest.raises(ValueError, match="form"):
        RNN(3, form="middle")
    with pytest.raises(ValueError, match="leak"):
        RNN(3, leak=1.5)
    with pytest.raises(ValueError, match="activation"):
        RNN(3, activation="swish-ish")
    with pytest.raises(ValueError, match="pass x"):
        RNN(3, 2).step(RNN(3, 2).params(), torch.zeros(1, 3), None)


_RNN_VARIANTS = {
    "pre-tanh": dict(form="pre"),
    "post-tanh": dict(form="post"),
    "pre-relu-leak": dict(form="pre", activation="relu", leak=0.4),
    "post-softplus-leak": dict(form="post", activation="softplus", leak=0.3),
    "post-custom": dict(form="post", activation=lambda z: torch.sin(z) + 0.1 * z**3),
}


@pytest.mark.parametrize("kw", list(_RNN_VARIANTS.values()), ids=list(_RNN_VARIANTS))
@pytest.mark.parametrize("n_in", [0, 3])
def test_rnn_step_jacobian_closed_form_matches_jacrev(kw, n_in):
    """A = c I + diag(l) M diag(r) and ∂f/∂δ from step_jacobian equal jacrev, pair by pair."""
    torch.manual_seed(2)
    N, batch = 4, (2, 3)
    cell = RNN(N, n_in, dtype=DT, **kw)
    with torch.no_grad():
        cell.b.normal_()
    p = cell.params()
    h = torch.randn(*batch, N, dtype=DT)
    x = torch.randn(*batch, n_in, dtype=DT) if n_in else None
    jac = cell.step_jacobian(p, h, x)
    eye = torch.eye(N, dtype=DT)
    left = torch.ones(*batch, N, dtype=DT) if jac.left is None else jac.left
    right = torch.ones(*batch, N, dtype=DT) if jac.right is None else jac.right
    A = jac.identity * eye + left[..., :, None] * jac.matrix * right[..., None, :]
    off = jac.offset if isinstance(jac.offset, torch.Tensor) else torch.full_like(left, jac.offset)
    for i in range(batch[0]):
        for j in range(batch[1]):
            xi = None if x is None else x[i, j]
            dense = jacrev(lambda v, xi=xi: cell.step(p, v, xi))(h[i, j])
            torch.testing.assert_close(A[i, j], dense, rtol=1e-12, atol=1e-12)
            zero = torch.zeros(N, dtype=DT)
            hij = h[i, j]
            d_off = jacrev(lambda d, xi=xi, hij=hij: cell.step_lifted(p, hij, xi, {"a": d})[0])(
                zero
            )
            torch.testing.assert_close(torch.diag(off[i, j]), d_off, rtol=1e-12, atol=1e-12)


def test_cells_without_closed_form_step_jacobian_return_none():
    assert GRU(3, 2, dtype=DT).step_jacobian({}, torch.zeros(1, 3), None) is None
    assert (
        as_cell(torch.nn.RNN(2, 3, num_layers=2)).step_jacobian({}, torch.zeros(1, 6), None) is None
    )


def test_rnn_subclass_that_changes_the_step_falls_back_to_autograd():
    class Shifted(RNN):
        def step_lifted(self, params, h, x, offsets=None):
            new, sites = super().step_lifted(params, h, x, offsets)
            return new + 0.1 * h, sites

    cell = Shifted(3, 0, form="post", dtype=DT)
    assert cell.step_jacobian(cell.params(), torch.zeros(2, 3, dtype=DT), None) is None
    plain = RNN(3, 0, form="post", dtype=DT)
    assert plain.step_jacobian(plain.params(), torch.zeros(2, 3, dtype=DT), None) is not None
