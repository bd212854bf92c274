"""Task generators: Memory-Pro timing and channels, controlled-rank inputs, Fourier features."""

import math

import pytest
import torch

from sntkit.tasks import fourier_features, gaussian_inputs, participation_ratio
from sntkit.tasks.memory_pro import MemoryPro


def test_memory_pro_periods_channels_and_noise():
    task = MemoryPro(5, 4, 3)
    theta = torch.tensor([0.0, math.pi / 2, 2.0], dtype=torch.float64)
    b = task.batch(theta, train=False, dtype=torch.float64)
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (3, 12, 3) and task.steps == 12
    go = task.response_start
    assert go == 9
    assert (b.inputs[:, :go, 0] == 1).all() and (b.inputs[:, go:, 0] == 0).all()
    assert (b.targets[..., 0] == b.inputs[..., 0]).all()
    torch.testing.assert_close(b.inputs[:, :5, 1], torch.cos(theta)[:, None].expand(3, 5))
    torch.testing.assert_close(b.inputs[:, :5, 2], torch.sin(theta)[:, None].expand(3, 5))
    assert (b.inputs[:, 5:, 1:] == 0).all()
    assert (b.targets[:, :go, 1:] == 0).all()
    torch.testing.assert_close(b.targets[:, go:, 1], torch.cos(theta)[:, None].expand(3, 3))
    assert (b.mask == 1).all()
    noisy = MemoryPro(5, 4, 3).sample(
        4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    clean = task.batch(noisy.theta.double(), train=False, dtype=torch.float64)
    var = (noisy.inputs - clean.inputs).var()
    assert abs(float(var) - 3.2) < 0.05
    a = task.sample(8, generator=torch.Generator().manual_seed(1))
    c = task.sample(8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.inputs, c.inputs) and a.inputs.dtype == torch.float32
    with pytest.raises(ValueError, match="memory"):
        MemoryPro(5, 0, 3)


def test_controlled_rank_inputs():
    g = torch.Generator().manual_seed(0)
    for r in (1, 3, 16):
        x = gaussian_inputs(16, 20, 16, rank=r, generator=g, dtype=torch.float64)
        assert x.shape == (16, 20, 16)
        assert int(torch.linalg.matrix_rank(x.reshape(-1, 16))) == r
        assert abs(float(x.square().sum(-1).mean()) - 16) < 1.5  # same energy as full rank
        assert participation_ratio(x) <= r + 1e-9
    with pytest.raises(ValueError, match="rank"):
        gaussian_inputs(2, 3, 4, rank=5)


def test_fourier_features():
    x = torch.tensor([[[0.25], [0.5]]], dtype=torch.float64)
    f = fourier_features(x, 2)
    expected = torch.tensor([[[1.0, 0.0, 0.0, -1.0], [0.0, 0.0, -1.0, 1.0]]], dtype=torch.float64)
    torch.testing.assert_close(f, expected, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="scalar"):
        fourier_features(torch.zeros(1, 2, 3), 2)
