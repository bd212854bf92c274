"""Models as users have them: wrappers, h0 layouts, bad sizes (resolve_model, state_ntk)."""

import pytest
import torch
from torch import nn

from sntkit.models import GRU, TorchRecurrent, resolve_model
from sntkit.ntk import state_ntk

DT = torch.float64


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Identity())
        self.body = nn.ModuleDict({"rnn": nn.GRU(2, 3, batch_first=True)})
        self.head = nn.Linear(3, 1)


class TwoRNNs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.GRU(2, 3)
        self.b = GRU(3, 2)
        self.fc = nn.Linear(3, 1)
        self.fc2 = nn.Linear(3, 1)


def test_resolve_finds_the_nested_recurrent_module_and_readout():
    net = Net()
    r = resolve_model(net)
    assert isinstance(r.cell, TorchRecurrent) and r.recurrent is net.body["rnn"]
    assert r.prefix == "body.rnn." and r.readout is net.head and r.readout_prefix == "head."
    # the adapter shares, never copies, the module's parameters
    assert r.cell.weight_hh_l0 is net.body["rnn"].weight_hh_l0
    bare = resolve_model(net.body["rnn"])
    assert bare.prefix == "" and bare.readout is None


def test_several_recurrent_modules_need_a_name():
    net = TwoRNNs()
    with pytest.raises(ValueError, match=r"2 recurrent submodules \['a', 'b'\].*recurrent='a'"):
        resolve_model(net)
    r = resolve_model(net, recurrent="b")
    assert r.cell is net.b and r.readout is None  # two linear children: ambiguous readout
    with pytest.raises(ValueError, match=r"recurrent='c' .* candidates: \['a', 'b'\]"):
        resolve_model(net, recurrent="c")
    with pytest.raises(TypeError, match="recurrent must be a submodule name"):
        resolve_model(net, recurrent=1)
    with pytest.raises(TypeError, match=r"contains no recurrent submodule.*FunctionalCell"):
        resolve_model(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="not a supported recurrent module"):
        resolve_model("gru")


def test_wrapper_state_ntk_equals_the_bare_module():
    net = Net().to(DT)
    x = torch.randn(2, 5, 2, dtype=DT)
    wrapped = state_ntk(net, inputs=x)
    bare = state_ntk(net.body["rnn"], torch.zeros(2, 3, dtype=DT), x)
    assert torch.equal(wrapped.states, bare.states)
    assert torch.allclose(wrapped.operator.to_dense(), bare.operator.to_dense(), atol=1e-12)
    sub = state_ntk(net, inputs=x, trainable=["body.rnn.weight_hh_l0", "head.bias"])
    assert sub.trainable == ("weight_hh_l0",) and sub.output.trainable[-1] == "head.bias"
    with pytest.raises(ValueError, match=r"\['rnn.weight'\] are not parameters.*body.rnn"):
        state_ntk(net, inputs=x, trainable=["rnn.weight"])
    with pytest.raises(ValueError, match="at least one parameter of the recurrent module"):
        state_ntk(net, inputs=x, trainable=["head.bias"])


@pytest.mark.parametrize("kind", ["GRU", "LSTM", "RNN"])
def test_h0_none_and_torch_layout_match_the_module(kind):
    torch.manual_seed(0)
    mod = getattr(nn, kind)(2, 3, num_layers=2, batch_first=True).to(DT)
    x = torch.randn(4, 5, 2, dtype=DT)
    h = torch.randn(2, 4, 3, dtype=DT)
    c = torch.randn(2, 4, 3, dtype=DT)
    h0 = (h, c) if kind == "LSTM" else h
    out, _ = mod(x, h0)
    top = slice(3, 6)  # the adapter stacks layers on the unit axis; top layer last
    ntk = state_ntk(mod, h0, x)
    assert torch.allclose(ntk.states[..., top], out, atol=1e-12)
    zeros = state_ntk(mod, None, x)
    assert torch.allclose(zeros.states[..., top], mod(x)[0], atol=1e-12)
    if kind == "LSTM":
        with pytest.raises(ValueError, match=r"pair \(h0, c0\)"):
            state_ntk(mod, h, x)
    with pytest.raises(ValueError, match=r"\(num_layers=2, B, hidden_size=3\)"):
        state_ntk(mod, (h[:1], c[:1]) if kind == "LSTM" else h[:1], x)


def test_bad_steps_batch_and_length_are_named():
    cell = GRU(3, 2, dtype=DT)
    auto = GRU(3, 0, dtype=DT)
    h0 = torch.zeros(2, 3, dtype=DT)
    with pytest.raises(TypeError, match="steps must be an int"):
        state_ntk(auto, h0, steps=2.5)
    with pytest.raises(TypeError, match="steps must be an int"):
        state_ntk(auto, h0, steps=True)
    assert state_ntk(auto, h0, steps=torch.tensor(3).item()).state_shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r"empty batch \(B = 0\)"):
        state_ntk(cell, torch.zeros(0, 3, dtype=DT), torch.zeros(0, 4, 2, dtype=DT))
    with pytest.raises(ValueError, match=r"h0 has an empty batch"):
        state_ntk(auto, torch.zeros(0, 3, dtype=DT), steps=2)
    with pytest.raises(ValueError, match=r"no time steps \(T = 0\)"):
        state_ntk(cell, h0, torch.zeros(2, 0, 2, dtype=DT))
    with pytest.raises(ValueError, match=r"h0=None .* needs the batch size"):
        state_ntk(auto, None, steps=3)
