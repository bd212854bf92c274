"""ntk_over: the Fisher summed over a DataLoader, streamed, against dense float64 Jacobians."""

import pytest
import torch
from ntk_reference import dense_jacobian
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sntkit.linalg import eigsh, trace
from sntkit.ntk import ntk_over, state_ntk

DT = torch.float64


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.GRU(2, 3, batch_first=True).to(DT)
        self.fc = nn.Linear(3, 2).to(DT)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])


class Counting:
    """A loader that records how many batches it handed out (streaming check)."""

    def __init__(self, loader):
        self.loader, self.count, self.passes = loader, 0, 0

    def __iter__(self):
        self.passes += 1
        for batch in self.loader:
            self.count += 1
            yield batch


def _data(n=7, T=4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, T, 2, dtype=DT, generator=g)
    return x, DataLoader(TensorDataset(x, torch.zeros(n, T, 2, dtype=DT)), batch_size=3)


def test_dataset_fisher_is_the_fisher_of_all_sequences():
    net = Net()
    x, loader = _data()
    counting = Counting(loader)
    ds = ntk_over(counting, net)
    J = dense_jacobian(state_ntk(net, inputs=x))  # all 7 sequences at once
    F = ds.fisher.to_dense()
    assert torch.allclose(F, J.T @ J, atol=1e-10)
    assert ds.num_batches == 3 and ds.num_sequences == 7
    # one pass over the data per application of a probe block, one batch at a time
    counting.count = counting.passes = 0
    ds.fisher.matmat(torch.randn(5, ds.num_params, dtype=DT))
    assert counting.passes == 1 and counting.count == 3
    values = eigsh(ds.fisher, 3, seed=0)[0]
    assert torch.allclose(values, torch.linalg.eigvalsh(J @ J.T).flip(0)[:3], rtol=1e-8)
    assert trace(ds.fisher, method="exact").value == pytest.approx(float(J.square().sum()))
    mean = ntk_over(loader, net, reduction="mean").fisher.to_dense()
    assert torch.allclose(mean, F / 7, atol=1e-12)


def test_output_fisher_over_the_loader():
    net = Net()
    x, loader = _data()
    ds = ntk_over(loader, net, output=True, trainable=lambda n: n != "fc.bias")
    out = state_ntk(net, inputs=x, trainable=lambda n: n != "fc.bias").output
    Jy = out.jacobian.to_dense()
    assert ds.trainable == out.trainable and "fc.weight" in ds.trainable
    assert torch.allclose(ds.fisher.to_dense(), Jy.T @ Jy, atol=1e-10)


def test_bad_arguments():
    net = Net()
    _, loader = _data()
    with pytest.raises(ValueError, match="reduction must be"):
        ntk_over(loader, net, reduction="avg")
    with pytest.raises(TypeError, match="takes inputs from the loader"):
        ntk_over(loader, net, h0=None)
    with pytest.raises(ValueError, match="no batches"):
        ntk_over([], net)
    with pytest.raises(TypeError, match="each batch must be an inputs tensor"):
        ntk_over([{"x": 1}], net)
