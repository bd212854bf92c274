"""Elementwise activations by name (so configs and CLI flags can name them)."""

from __future__ import annotations

from collections.abc import Callable

import torch

Activation = Callable[[torch.Tensor], torch.Tensor]

ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "softplus": torch.nn.functional.softplus,
    "identity": lambda z: z,
}


#: ``φ'`` of the named activations in closed form (as autograd differentiates them: ``relu'(0)
#: = 0``, softplus linear above its threshold 20), so no autograd is needed to linearize a step
DERIVATIVES: dict[Activation, Activation] = {
    torch.tanh: lambda z: 1.0 - torch.tanh(z).square(),
    torch.relu: lambda z: (z > 0).to(z.dtype),
    torch.sigmoid: lambda z: torch.sigmoid(z) * (1.0 - torch.sigmoid(z)),
    torch.nn.functional.softplus: lambda z: torch.where(z > 20, 1.0, torch.sigmoid(z)),
    ACTIVATIONS["identity"]: torch.ones_like,
}


def derivative(phi: Activation, z: torch.Tensor) -> torch.Tensor:
    """``φ'(z)`` of an elementwise ``φ``: closed form for the named ones, else autograd.

    For an elementwise ``φ`` the Jacobian is ``diag(φ'(z))``, so its product with ones is
    ``φ'(z)``; plain autograd (not ``torch.func``, whose first call in a process costs ~0.2 s).
    """
    closed = DERIVATIVES.get(phi)
    if closed is not None:
        return closed(z)
    with torch.enable_grad():
        x = z.detach().requires_grad_()
        (grad,) = torch.autograd.grad(phi(x), x, torch.ones_like(x))
    return grad


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name, or pass a callable through."""
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation {name!r} is not known; use one of {sorted(ACTIVATIONS)} or pass a callable"
        ) from None
