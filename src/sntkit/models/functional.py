"""Wrap any user step function as a cell."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from sntkit.models.cell import Cell, Params

StepFn = Callable[[Params, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class FunctionalCell(Cell):
    """A cell ``h_t = step(params, h_{t-1}, x_t)`` from a user function and a dict of tensors.

    ``step`` must be a pure function of its arguments written with torch operations (so that
    ``torch.func`` can differentiate and vmap it) mapping ``h`` of shape ``(..., n_state)`` and
    ``x`` of shape ``(..., n_input)`` (``None`` when ``n_input == 0``) to ``(..., n_state)``.
    The tensors in ``params`` are copied into ``nn.Parameter``s, so the cell can be trained like
    any module; the NTK is taken with respect to all of them or the ``trainable`` subset.

    Such a cell has no weight-site description, so the Kronecker core is unavailable for it
    (``P``, ``K``, ``J`` and the NTK itself are).

    Example::

        def step(p, h, x):
            return torch.tanh(h @ p["W"].T + x @ p["U"].T)

        cell = FunctionalCell(step, {"W": W, "U": U}, n_state=64, n_input=3)
    """

    def __init__(
        self,
        step: StepFn,
        params: Mapping[str, torch.Tensor],
        *,
        n_state: int,
        n_input: int = 0,
    ) -> None:
        super().__init__()
        if not callable(step):
            raise TypeError(f"step must be callable step(params, h, x), got {type(step).__name__}")
        if n_state < 1 or n_input < 0:
            raise ValueError(f"need n_state >= 1 and n_input >= 0, got {n_state}, {n_input}")
        self._step = step
        self.n_state = n_state
        self.n_input = n_input
        for name, value in params.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"params[{name!r}] must be a tensor, got {type(value).__name__}")
            if "." in name:
                raise ValueError(f"parameter name {name!r} must not contain '.'")
            self.register_parameter(name, nn.Parameter(value.detach().clone()))

    def step(self, params: Params, h: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        """Apply the user's step function ``fn(params, h, x)``."""
        return self._step(params, h, x)
