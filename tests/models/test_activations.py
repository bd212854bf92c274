"""Closed-form activation derivatives against autograd (float64)."""

import pytest
import torch
from torch.func import jacrev

from sntkit.models.activations import ACTIVATIONS, derivative, get_activation


@pytest.mark.parametrize("name", [*ACTIVATIONS, "custom"])
def test_derivative_equals_autograd(name):
    phi = get_activation(lambda z: torch.sin(z) * z) if name == "custom" else ACTIVATIONS[name]
    # includes relu's kink at 0 and softplus's linear branch above its threshold 20
    z = torch.cat([torch.linspace(-25, 25, 41, dtype=torch.float64), torch.zeros(1).double()])
    dense = jacrev(phi)(z)
    torch.testing.assert_close(torch.diag(derivative(phi, z)), dense, rtol=1e-14, atol=1e-14)
