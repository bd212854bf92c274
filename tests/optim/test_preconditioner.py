"""State-space natural-gradient preconditioner against a dense float64 Fisher (torch.func)."""

import io

import pytest
import torch
from torch import nn

from sntkit.models import RNN
from sntkit.ntk import state_ntk
from sntkit.optim import LowRankNaturalGradient, StateSpaceNaturalGradient

DT = torch.float64


def _gru(seed=0, n=4, n_in=2, B=3, T=5):
    torch.manual_seed(seed)
    gru = nn.GRU(n_in, n, batch_first=True).to(DT)
    readout = nn.Linear(n, 1).to(DT)
    x = torch.randn(B, T, n_in, dtype=DT)
    h0 = 0.3 * torch.randn(B, n, dtype=DT)
    y = torch.randn(B, T, 1, dtype=DT)

    def loss():
        out, _ = gru(x, h0[None])
        return (readout(out) - y).square().mean()

    return gru, readout, x, h0, loss


def _dense_fisher(gru, h0, x):
    """``J^T J`` for the states ``(B, T, N)`` by jacrev of a functional rollout of the GRU."""
    names = [n for n, _ in gru.named_parameters()]
    shapes = [p.shape for _, p in gru.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for _, p in gru.named_parameters()])

    def states(theta):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = theta[i : i + s.numel()].reshape(s)
            i += s.numel()
        out, _ = torch.func.functional_call(gru, params, (x, h0[None]))
        return out.reshape(-1)

    J = torch.func.jacrev(states)(flat0)
    return J.T @ J, names


def _dense_direction(F, g, r, rho):
    evals, evecs = torch.linalg.eigh(F)
    U, lam = evecs[:, -r:].T, evals[-r:]
    return g - U.T @ ((lam / (lam + rho)) * (U @ g))


def test_grad_rewrite_matches_dense_formula_and_readout_passes_through():
    gru, readout, x, h0, loss = _gru()
    groups = [{"params": gru.parameters()}, {"params": readout.parameters(), "lr": 0.1}]
    pre = StateSpaceNaturalGradient(
        gru, groups, h0=h0, inputs=x, rank=2, damping=0.05, power_iters=40
    )
    assert pre.passthrough == list(readout.parameters())
    loss().backward()
    g = torch.cat([p.grad.reshape(-1) for p in gru.parameters()])
    readout_grads = [p.grad.clone() for p in readout.parameters()]
    pre.step()
    F, names = _dense_fisher(gru, h0, x)
    assert pre.order == names
    expected = _dense_direction(F, g, 2, 0.05)
    got = torch.cat([p.grad.reshape(-1) for p in gru.parameters()])
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-10)
    assert not torch.allclose(got, g)  # the preconditioner did act
    for p, before in zip(readout.parameters(), readout_grads, strict=True):
        assert torch.equal(p.grad, before)


class _Wrapper(nn.Module):
    """What a user holds: the GRU and its readout inside one module."""

    def __init__(self, gru, readout):
        super().__init__()
        self.rnn, self.out = gru, readout


def test_wrapper_module_with_zero_h0_preconditions_its_recurrent_part_only():
    gru, readout, x, _, _ = _gru()
    net = _Wrapper(gru, readout)
    zeros = torch.zeros(x.shape[0], gru.hidden_size, dtype=DT)
    pre = StateSpaceNaturalGradient(net, inputs=x, rank=2, damping=0.05, power_iters=40)
    assert pre.names == [f"rnn.{n}" for n, _ in gru.named_parameters()]
    assert pre.passthrough == list(readout.parameters())
    (readout(gru(x, zeros[None])[0]) - 1).square().mean().backward()
    g = torch.cat([p.grad.reshape(-1) for p in gru.parameters()])
    readout_grads = [p.grad.clone() for p in readout.parameters()]
    pre.step()
    F, names = _dense_fisher(gru, zeros, x)
    assert pre.order == [f"rnn.{n}" for n in names]
    got = torch.cat([p.grad.reshape(-1) for p in gru.parameters()])
    torch.testing.assert_close(got, _dense_direction(F, g, 2, 0.05), rtol=1e-7, atol=1e-10)
    for p, before in zip(readout.parameters(), readout_grads, strict=True):
        assert torch.equal(p.grad, before)


def test_cold_start_is_accurate_with_one_power_iteration():
    """The first refresh (power_iters=1) gives the top Fisher eigenvalues to 1e-2 relative."""
    g = torch.Generator().manual_seed(3)
    model = RNN(12, 0, form="post", dtype=DT, generator=g, gain=1.4)
    h0 = torch.rand(8, 12, generator=g, dtype=DT) - 0.5
    pre = StateSpaceNaturalGradient(model, h0=h0, steps=10, rank=2, power_iters=1)
    ntk = state_ntk(model, h0, steps=10)
    pre.refresh(ntk)
    evals = torch.linalg.eigvalsh(ntk.fisher.to_dense()).flip(0)[:2]
    rel = ((pre.eigvals - evals).abs() / evals).max()
    assert rel < 1e-2, (pre.eigvals, evals)
    # a random start with one power iteration (the old behaviour) is far off on this model
    U = torch.linalg.qr(torch.randn(ntk.num_params, 2, dtype=DT, generator=g)).Q.T
    H = U @ ntk.fisher.matmat(U).T
    assert float(torch.linalg.eigvalsh(H).max()) < 0.9 * float(evals[0])


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.05),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
        lambda ps: torch.optim.Adam(ps, lr=0.01),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    ],
    ids=["sgd", "momentum", "adam", "adamw"],
)
def test_any_optimizer_applies_the_preconditioned_gradient(make):
    """Two steps with the preconditioner == the optimizer fed the dense preconditioned grads."""
    gru, readout, x, h0, loss = _gru(seed=1)
    gru2, readout2, _, _, loss2 = _gru(seed=1)
    params = [*gru.parameters(), *readout.parameters()]
    opt = make(params)
    ref = make([*gru2.parameters(), *readout2.parameters()])
    pre = StateSpaceNaturalGradient(
        gru, params, h0=h0, inputs=x, rank=1, damping=0.05, power_iters=60, update_every=1
    )
    for _ in range(2):
        opt.zero_grad()
        loss().backward()
        pre.step()
        opt.step()
        ref.zero_grad()
        loss2().backward()
        F, _ = _dense_fisher(gru2, h0, x)
        g = torch.cat([p.grad.reshape(-1) for p in gru2.parameters()])
        d = _dense_direction(F, g, 1, 0.05)
        i = 0
        for p in gru2.parameters():
            p.grad.copy_(d[i : i + p.numel()].reshape(p.shape))
            i += p.numel()
        ref.step()
    for a, b in zip(params, [*gru2.parameters(), *readout2.parameters()], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_state_dict_weights_only_and_resume_equals_uninterrupted():
    def run(n_steps, state=None):
        gru, readout, x, h0, loss = _gru(seed=2)
        opt = torch.optim.Adam([*gru.parameters(), *readout.parameters()], lr=0.01)
        pre = StateSpaceNaturalGradient(
            gru,
            [*gru.parameters(), *readout.parameters()],
            h0=h0,
            inputs=x,
            rank=1,
            update_every=3,
            damping=lambda s: 0.1 + s,
        )
        if state is not None:
            for p, q in zip(
                [*gru.parameters(), *readout.parameters()], state["params"], strict=True
            ):
                p.data.copy_(q)
            opt.load_state_dict(state["opt"])
            pre.load_state_dict(state["pre"])
        for _ in range(n_steps):
            opt.zero_grad()
            loss().backward()
            pre.step()
            opt.step()
        return gru, readout, opt, pre

    gru, readout, opt, pre = run(5)
    buf = io.BytesIO()
    torch.save(
        {
            "params": [p.detach() for p in [*gru.parameters(), *readout.parameters()]],
            "opt": opt.state_dict(),
            "pre": pre.state_dict(),
        },
        buf,
    )
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert state["pre"]["step_count"] == 5
    gru_a, readout_a, _, pre_a = run(4, state)
    gru_b, readout_b, _, pre_b = run(9)
    for a, b in zip(
        [*gru_a.parameters(), *readout_a.parameters()],
        [*gru_b.parameters(), *readout_b.parameters()],
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert pre_a.updates == pre_b.updates == 3  # refreshes at steps 0, 3, 6
    torch.testing.assert_close(pre_a.eigvecs, pre_b.eigvecs, rtol=0, atol=1e-12)


def test_disabled_leaves_grad_alone_and_reenable_refreshes():
    gru, _readout, x, h0, loss = _gru(seed=4)
    pre = StateSpaceNaturalGradient(gru, h0=h0, inputs=x, update_every=100)
    pre.enabled = False
    loss().backward()
    before = [p.grad.clone() for p in gru.parameters()]
    pre.step()
    assert pre.updates == 0 and pre.step_count == 1
    assert all(torch.equal(p.grad, b) for p, b in zip(gru.parameters(), before, strict=True))
    pre.enabled = True
    pre.invalidate()
    pre.step()
    assert pre.updates == 1


def test_model_is_not_mutated_beyond_grad():
    gru, _readout, x, h0, loss = _gru(seed=5)
    loss().backward()
    weights = [p.detach().clone() for p in gru.parameters()]
    StateSpaceNaturalGradient(gru, h0=h0, inputs=x).step()
    assert all(torch.equal(p, w) for p, w in zip(gru.parameters(), weights, strict=True))


def test_errors_name_the_argument():
    gru, readout, x, h0, _loss = _gru()
    with pytest.raises(TypeError, match="model"):
        StateSpaceNaturalGradient("gru", h0=h0, inputs=x)
    with pytest.raises(TypeError, match="params"):
        StateSpaceNaturalGradient(gru, 3, h0=h0, inputs=x)
    with pytest.raises(TypeError, match="params entries"):
        StateSpaceNaturalGradient(gru, [1.0], h0=h0, inputs=x)
    with pytest.raises(ValueError, match="none of params"):
        StateSpaceNaturalGradient(gru, readout.parameters(), h0=h0, inputs=x)
    with pytest.raises(ValueError, match="h0"):
        StateSpaceNaturalGradient(gru)
    with pytest.raises(ValueError, match="rank"):
        StateSpaceNaturalGradient(gru, h0=h0, inputs=x, rank=0)
    with pytest.raises(ValueError, match="damping"):
        StateSpaceNaturalGradient(gru, h0=h0, inputs=x, damping=0.0)
    with pytest.raises(ValueError, match="h0 has shape"):
        StateSpaceNaturalGradient(gru, h0=h0[:, :2], inputs=x)
    with pytest.raises(ValueError, match="cold_start"):
        StateSpaceNaturalGradient(gru, h0=h0, inputs=x, cold_start="lanczos")
    with pytest.raises(ValueError, match="without model"):
        StateSpaceNaturalGradient(None, list(gru.parameters()), ntk_factory=lambda: None)
    with pytest.raises(ValueError, match=r"loss.backward\(\)"):
        StateSpaceNaturalGradient(gru, h0=h0, inputs=x).step()


# ---------------------------------------------------------------- LowRankNaturalGradient bugs
def _rnn(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = RNN(5, 0, form="post", dtype=DT, generator=g, gain=1.3)
    h0 = torch.rand(6, 5, generator=g, dtype=DT) - 0.5
    return model, h0, lambda: state_ntk(model, h0, steps=4)


def test_lowrank_add_param_group_trains_added_parameters_by_sgd():
    model, h0, factory = _rnn()
    readout = nn.Linear(5, 1).to(DT)
    opt = LowRankNaturalGradient(model, factory, lr=0.1)
    opt.add_param_group({"params": readout.parameters(), "lr": 0.1})
    loss = readout(model(h0, steps=4)).square().mean()
    loss.backward()
    before = [(p.detach().clone(), p.grad.clone()) for p in readout.parameters()]
    opt.step()
    for p, (w, g) in zip(readout.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), w - 0.1 * g)


def test_lowrank_state_dict_with_callable_lr_loads_weights_only():
    model, h0, factory = _rnn()
    opt = LowRankNaturalGradient(
        list(model.named_parameters()), factory, lr=lambda s: 0.1 / (1 + s)
    )
    model(h0, steps=4).square().mean().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert state["param_groups"][0]["lr"] == pytest.approx(0.1)
    opt.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_lowrank_plain_tensor_list_gets_a_clear_error():
    model, _, factory = _rnn()
    with pytest.raises(ValueError, match="named_parameters"):
        LowRankNaturalGradient(list(model.parameters()), factory)
