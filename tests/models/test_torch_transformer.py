"""nn.MultiheadAttention / nn.TransformerEncoderLayer in the global-state view (paper 004 A.5)."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from sntkit.models.torch_transformer import TorchEncoderLayer
from sntkit.ntk import feedforward_ntk

# torch's own attention kernel, differentiated by jacrev for the reference, warns about vmap
pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")
DT = torch.float64
B, T, E = 2, 3, 4


def _x(seed=0):
    return torch.randn(B, T, E, dtype=DT, generator=torch.Generator().manual_seed(seed))


def _call(module, params, x):
    """The module's own forward (eval mode: dropout off), batch-first in and out."""
    attn = module if isinstance(module, nn.MultiheadAttention) else module.self_attn
    xin = x if attn.batch_first else x.transpose(0, 1)
    if isinstance(module, nn.MultiheadAttention):
        out = functional_call(module, params, (xin, xin, xin), {"need_weights": False})[0]
    else:
        out = functional_call(module, params, (xin,))
    return out if attn.batch_first else out.transpose(0, 1)


def _dense_output_jacobian(module, ntk, x):
    params = dict(module.named_parameters())
    names = list(ntk.trainable)

    def out(th):
        return _call(module, params | th, x)

    J = jacrev(out)({n: params[n].detach() for n in names})
    return torch.cat([J[n].reshape(B * T * E, -1) for n in names], dim=1)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch_and_jacrev(batch_first, norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        E,
        2,
        dim_feedforward=5,
        dropout=0.1,
        batch_first=batch_first,
        norm_first=norm_first,
        activation="gelu",
        dtype=DT,
    )
    layer.train()  # dropout is on in the module; analysis runs without it
    before = {n: p.detach().clone() for n, p in layer.named_parameters()}
    x = _x()
    ntk = feedforward_ntk(layer, x)
    assert layer.training  # the analysis never touches the module's mode
    blocks = TorchEncoderLayer(layer).state_blocks()
    layer.eval()
    with torch.no_grad():
        Y = _call(layer, dict(layer.named_parameters()), x)
        O = _call(
            layer.self_attn,
            dict(layer.self_attn.named_parameters()),
            layer.norm1(x) if norm_first else x,
        )
        Z = layer.norm2(x + O) if norm_first else layer.norm1(x + O)
        H = nn.functional.gelu(layer.linear1(Z))
    S = ntk.states
    assert torch.allclose(S[..., blocks["Y"]], Y, atol=1e-12)
    assert torch.allclose(S[..., blocks["Z"]], Z, atol=1e-12)
    assert torch.allclose(S[..., blocks["H"]], H, atol=1e-12)
    A = S[..., blocks["A"]]
    assert torch.allclose(layer.self_attn.out_proj(A), O, atol=1e-12)
    # the output rows of J against jacrev of the module itself, all parameters (LN included)
    Jfull = ntk.jacobian.to_dense().reshape(B, T, -1, ntk.num_params)
    J_y = Jfull[:, :, blocks["Y"]].reshape(B * T * E, -1)
    assert torch.allclose(J_y, _dense_output_jacobian(layer, ntk, x), atol=1e-10)
    assert all(torch.equal(p.detach(), before[n]) for n, p in layer.named_parameters())


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_kronecker_core(norm_first):
    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(
        E, 2, dim_feedforward=5, dropout=0.0, batch_first=True, norm_first=norm_first, dtype=DT
    )
    x = _x(1)
    ntk = feedforward_ntk(layer, x, trainable=lambda n: "norm" not in n)
    lifted = (ntk.P_core @ ntk.core_kernel @ ntk.P_core.T).to_dense()
    assert torch.allclose(lifted, ntk.operator.to_dense(), atol=1e-10)
    with pytest.raises(ValueError, match=r"norm1.weight.*do not enter"):
        feedforward_ntk(layer, x).sites  # noqa: B018


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention(batch_first):
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(E, 2, batch_first=batch_first, dtype=DT)
    x = _x(2)
    ntk = feedforward_ntk(mha, x)
    with torch.no_grad():
        O = _call(mha, dict(mha.named_parameters()), x)
    assert torch.allclose(ntk.states[..., E:], O, atol=1e-12)
    Jfull = ntk.jacobian.to_dense().reshape(B, T, 2 * E, -1)
    J_o = Jfull[:, :, E:].reshape(B * T * E, -1)
    assert torch.allclose(J_o, _dense_output_jacobian(mha, ntk, x), atol=1e-10)
    core = (ntk.P_core @ ntk.core_kernel @ ntk.P_core.T).to_dense()
    assert torch.allclose(core, ntk.operator.to_dense(), atol=1e-10)


def test_unsupported_attention_variants():
    with pytest.raises(ValueError, match="kdim/vdim"):
        feedforward_ntk(nn.MultiheadAttention(E, 2, kdim=3, dtype=DT), _x())
    with pytest.raises(ValueError, match="add_bias_kv"):
        feedforward_ntk(nn.MultiheadAttention(E, 2, add_bias_kv=True, dtype=DT), _x())
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 4\)"):
        feedforward_ntk(nn.MultiheadAttention(E, 2, dtype=DT), torch.zeros(2, 3, 5, dtype=DT))
