"""Transformer block NTK vs dense jacrev, and Theorem 1 on a tiny block (paper 004 App. A.5.3)."""

import pytest
import torch
from torch.func import jacrev

from sntkit.models import AttentionMLP
from sntkit.ntk import feedforward_ntk

DT = torch.float64


def _block(heads=1, causal=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = AttentionMLP(
        3, n_attn=4, n_mlp=5, n_layers=3, n_out=2, heads=heads, causal=causal, generator=g, dtype=DT
    )
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.startswith("b_"):
                p.normal_(generator=g)
    x = torch.randn(2, 4, 3, generator=g, dtype=DT)
    return m, x


@pytest.mark.parametrize("heads, causal", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("trainable", [None, ["W_Q", "W_K", "W_V", "W_O"], ["W_1", "b_2"]])
def test_ntk_matches_dense_and_theorem1(heads, causal, trainable):
    m, x = _block(heads, causal)
    ntk = feedforward_ntk(m, x, trainable)
    sp = ntk.space
    J = jacrev(lambda th: m.state_lifted(sp.merged(th), x)[0])(sp.vector()).reshape(-1, sp.size)
    N = J @ J.T
    scale = N.abs().max()
    assert (ntk.operator.to_dense() - N).abs().max() <= 1e-10 * scale
    core = ntk.P_core @ ntk.core_kernel @ ntk.P_core.T
    assert (core.to_dense() - N).abs().max() <= 1e-10 * scale
    err = torch.randn(ntk.state_shape, dtype=DT)
    torch.testing.assert_close(
        ntk.alignment(err, method="core"), err.reshape(-1) @ N @ err.reshape(-1)
    )


def test_state_layout_and_sites():
    m, x = _block()
    ntk = feedforward_ntk(m, x)
    blocks = m.state_blocks()
    assert ntk.state_shape[-1] == m.state_size == blocks["Y"].stop
    torch.testing.assert_close(ntk.states[..., blocks["Y"]], m(x).detach())
    # V = cat(X, X, X, A, H_1, H_2, H_3, 1, 1, 1) with all weights trained
    V = ntk.weight_sites
    X = x.reshape(-1, 3)
    torch.testing.assert_close(V[:, :3], X)
    torch.testing.assert_close(V[:, 3:6], X)
    assert V.shape[1] == 3 * 3 + 4 + 4 + 5 + 5 + 3


def test_input_rank_bottlenecks_the_attention_ntk():
    """Theorem 1: rank NTK_S <= rank(V V^T ⊗ I) = rank(X) · n_attn for W_Q, W_K, W_V trained.

    Inputs of rank 1 in R^5 (x = z u^T) bound the rank by 3 · n_attn although the three weight
    matrices have 3 · 5 · n_attn parameters.
    """
    g = torch.Generator().manual_seed(1)
    n_attn = 4
    m = AttentionMLP(5, n_attn=n_attn, n_mlp=6, generator=g, dtype=DT)
    u = torch.randn(5, generator=g, dtype=DT)
    x = torch.randn(3, 6, 1, generator=g, dtype=DT) * u
    ntk = feedforward_ntk(m, x, ["W_Q", "W_K", "W_V"])
    s = torch.linalg.svdvals(ntk.operator.to_dense())
    rank = int((s > 1e-9 * s[0]).sum())
    assert ntk.num_params == 3 * 5 * n_attn
    assert 0 < rank <= 3 * n_attn
    full = feedforward_ntk(m, torch.randn(3, 6, 5, generator=g, dtype=DT), ["W_Q", "W_K", "W_V"])
    s_full = torch.linalg.svdvals(full.operator.to_dense())
    assert int((s_full > 1e-9 * s_full[0]).sum()) > 3 * n_attn


def test_errors():
    m, x = _block()
    with pytest.raises(ValueError, match="shape"):
        feedforward_ntk(m, x[..., :2])
    with pytest.raises(TypeError, match="state_lifted"):
        feedforward_ntk(torch.nn.Linear(2, 2), x)
    with pytest.raises(ValueError, match="heads"):
        AttentionMLP(3, n_attn=5, heads=2)
