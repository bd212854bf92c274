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
