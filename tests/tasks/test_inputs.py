"""Controlled-rank inputs and Fourier features (paper 004 §5.3–5.4)."""

import pytest
import torch

from sntkit.tasks import fourier_features, gaussian_inputs, participation_ratio


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
