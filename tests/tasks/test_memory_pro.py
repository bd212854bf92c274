"""The Memory-Pro task generator: periods, channels and noise."""

import math

import pytest
import torch

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
