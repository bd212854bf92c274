"""Shampoo against a dense float64 reference: the textbook −1/(2·order) variant and the
−1/order variant of ``torch_optimizer`` (also checked against the package itself)."""

import pytest
import torch

from sntkit.optim import Shampoo
from sntkit.optim.shampoo import inverse_root

DT = torch.float64


def _root(M, p):
    e, V = torch.linalg.eigh(M)
    return V @ torch.diag(e ** (-1.0 / p)) @ V.T


def test_matrix_step_is_L_quarter_G_R_quarter():
    g = torch.Generator().manual_seed(0)
    W = torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=DT))
    opt = Shampoo([W], lr=0.1, eps=1e-3)
    grads = [torch.randn(4, 3, generator=g, dtype=DT) for _ in range(3)]
    L, R = 1e-3 * torch.eye(4, dtype=DT), 1e-3 * torch.eye(3, dtype=DT)
    expected = W.detach().clone()
    for G in grads:
        W.grad = G.clone()
        opt.step()
        L, R = L + G @ G.T, R + G.T @ G
        expected = expected - 0.1 * _root(L, 4) @ G @ _root(R, 4)
    torch.testing.assert_close(W.detach(), expected)


def test_order3_tensor_uses_exponent_one_sixth():
    g = torch.Generator().manual_seed(1)
    X = torch.nn.Parameter(torch.randn(2, 3, 4, generator=g, dtype=DT))
    G = torch.randn(2, 3, 4, generator=g, dtype=DT)
    X.grad = G.clone()
    before = X.detach().clone()
    Shampoo([X], lr=1.0, eps=1e-2).step()
    roots = []
    for mode in range(3):
        Gm = torch.movedim(G, mode, 0).reshape(G.shape[mode], -1)
        roots.append(_root(1e-2 * torch.eye(G.shape[mode], dtype=DT) + Gm @ Gm.T, 6))
    expected = torch.einsum("ai,bj,ck,ijk->abc", roots[0], roots[1], roots[2], G)
    torch.testing.assert_close(before - X.detach(), expected)


def test_vector_is_full_matrix_adagrad_and_update_freq():
    b = torch.nn.Parameter(torch.zeros(3, dtype=DT))
    opt = Shampoo([b], lr=1.0, eps=1e-4, update_freq=2)
    g1, g2 = torch.tensor([1.0, 2.0, 0.0], dtype=DT), torch.tensor([0.5, -1.0, 1.0], dtype=DT)
    b.grad = g1.clone()
    opt.step()
    L1 = 1e-4 * torch.eye(3, dtype=DT) + torch.outer(g1, g1)
    torch.testing.assert_close(b.detach(), -_root(L1, 2) @ g1)
    b.grad = g2.clone()
    before = b.detach().clone()
    opt.step()  # roots not refreshed at step 2 (update_freq=2): still L1^{-1/2}
    torch.testing.assert_close(b.detach(), before - _root(L1, 2) @ g2)


def test_never_nan_with_zero_or_singular_gradients():
    W = torch.nn.Parameter(torch.ones(5, 5))
    opt = Shampoo([W], lr=0.1)
    for G in (torch.zeros(5, 5), torch.ones(5, 5)):
        W.grad = G
        opt.step()
    assert torch.isfinite(W).all()
    assert torch.isfinite(inverse_root(torch.zeros(3, 3), 4, 1e-6)).all()


def test_converges_on_ill_conditioned_least_squares_faster_than_sgd():
    g = torch.Generator().manual_seed(2)
    scales = torch.tensor([10.0, 3, 1, 0.3, 0.1], dtype=DT)
    A = torch.randn(30, 5, generator=g, dtype=DT) @ torch.diag(scales)
    y = torch.randn(30, 1, generator=g, dtype=DT)
    optimum = ((A @ torch.linalg.lstsq(A, y).solution - y) ** 2).mean()

    def train(make):
        w = torch.nn.Parameter(torch.zeros(5, 1, dtype=DT))
        opt = make([w])
        for _ in range(300):
            opt.zero_grad()
            ((A @ w - y) ** 2).mean().backward()
            opt.step()
        return ((A @ w.detach() - y) ** 2).mean()

    shampoo = train(lambda p: Shampoo(p, lr=0.1, eps=1e-6, beta2=0.99))
    sgd = train(lambda p: torch.optim.SGD(p, lr=0.004))  # near SGD's stability limit here
    assert shampoo < 1.01 * optimum < sgd


def test_bad_hyperparameters():
    p = [torch.nn.Parameter(torch.zeros(2))]
    for kw in (
        {"lr": -1},
        {"eps": 0},
        {"update_freq": 0},
        {"momentum": 1.0},
        {"beta2": 1.5},
        {"graft": "adam"},
        {"variant": "adam"},
    ):
        with pytest.raises(ValueError):
            Shampoo(p, **kw)


def test_torch_optimizer_variant_matrix_is_L_half_G_R_half_with_sequential_statistics():
    """−1/order with the right statistic built from ``L^{-1/2} G`` (the package's rule)."""
    g = torch.Generator().manual_seed(3)
    W = torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=DT))
    opt = Shampoo([W], lr=0.1, eps=1e-3, variant="torch_optimizer")
    L, R = 1e-3 * torch.eye(4, dtype=DT), 1e-3 * torch.eye(3, dtype=DT)
    expected = W.detach().clone()
    for _ in range(3):
        G = torch.randn(4, 3, generator=g, dtype=DT)
        W.grad = G.clone()
        opt.step()
        L = L + G @ G.T
        LG = _root(L, 2) @ G
        R = R + LG.T @ LG
        expected = expected - 0.1 * LG @ _root(R, 2)
    torch.testing.assert_close(W.detach(), expected)


def test_torch_optimizer_variant_vector_is_full_inverse_and_order3_uses_one_third():
    b = torch.nn.Parameter(torch.zeros(3, dtype=DT))
    g1 = torch.tensor([1.0, 2.0, 0.0], dtype=DT)
    b.grad = g1.clone()
    Shampoo([b], lr=1.0, eps=1e-2, variant="torch_optimizer").step()
    L1 = 1e-2 * torch.eye(3, dtype=DT) + torch.outer(g1, g1)
    torch.testing.assert_close(b.detach(), -torch.linalg.solve(L1, g1))

    g = torch.Generator().manual_seed(4)
    X = torch.nn.Parameter(torch.randn(2, 3, 4, generator=g, dtype=DT))
    G = torch.randn(2, 3, 4, generator=g, dtype=DT)
    X.grad = G.clone()
    before = X.detach().clone()
    Shampoo([X], lr=1.0, eps=1e-2, variant="torch_optimizer").step()
    U = G
    for mode in range(3):
        Um = torch.movedim(U, mode, 0).reshape(U.shape[mode], -1)
        root = _root(1e-2 * torch.eye(U.shape[mode], dtype=DT) + Um @ Um.T, 3)
        U = torch.movedim(torch.tensordot(root, U, dims=([1], [mode])), 0, mode)
    torch.testing.assert_close(before - X.detach(), U)


@pytest.mark.parametrize("update_freq", [1, 3])
def test_torch_optimizer_variant_matches_the_package(update_freq):
    """Same trajectory as ``torch_optimizer.Shampoo`` (momentum 0, its defaults otherwise)."""
    torch_optimizer = pytest.importorskip("torch_optimizer")
    g = torch.Generator().manual_seed(5)
    shapes = [(5, 4), (4,), (2, 3, 2)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=DT)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    a = Shampoo(ours, lr=0.05, eps=1e-4, update_freq=update_freq, variant="torch_optimizer")
    b = torch_optimizer.Shampoo(theirs, lr=0.05, epsilon=1e-4, update_freq=update_freq)
    for _ in range(7):
        grads = [torch.randn(s, generator=g, dtype=DT) for s in shapes]
        for p, q, G in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = G.clone(), G.clone()
        a.step()
        b.step()
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-9, atol=1e-11)
