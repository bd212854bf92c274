"""The RNN cell: pre/post equations, construction from weights, argument checks and its
closed-form step Jacobian against jacrev."""

import pytest
import torch
from torch.func import jacrev

from sntkit.models import RNN

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
    """A = c I + diag(l) M diag(r) (StepJacobian.dense) and ∂f/∂δ equal jacrev, pair by pair."""
    torch.manual_seed(2)
    N, batch = 4, (2, 3)
    cell = RNN(N, n_in, dtype=DT, **kw)
    with torch.no_grad():
        cell.b.normal_()
    p = cell.params()
    h = torch.randn(*batch, N, dtype=DT)
    x = torch.randn(*batch, n_in, dtype=DT) if n_in else None
    jac = cell.step_jacobian(p, h, x)
    A = jac.dense(batch)
    assert A.shape == (*batch, N, N)
    off = jac.offset if isinstance(jac.offset, torch.Tensor) else torch.full_like(h, jac.offset)
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


def test_rnn_subclass_that_changes_the_step_falls_back_to_autograd():
    class Shifted(RNN):
        def step_lifted(self, params, h, x, offsets=None):
            new, sites = super().step_lifted(params, h, x, offsets)
            return new + 0.1 * h, sites

    cell = Shifted(3, 0, form="post", dtype=DT)
    assert cell.step_jacobian(cell.params(), torch.zeros(2, 3, dtype=DT), None) is None
    plain = RNN(3, 0, form="post", dtype=DT)
    assert plain.step_jacobian(plain.params(), torch.zeros(2, 3, dtype=DT), None) is not None
