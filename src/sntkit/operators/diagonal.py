"""Elementwise (diagonal) scaling ``x ↦ d ⊙ x``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sntkit.operators import validation
from sntkit.operators.base import Operator


class Diagonal(Operator):
    """``A x = d ⊙ x`` with ``d`` of shape ``shape``; dense matrix ``diag(vec(d))``.

    Self-adjoint. In the NTK of a "pre"-form RNN, ``diag(φ'(z))`` enters ``P_core`` this way.
    """

    def __init__(self, d: torch.Tensor, *, names: Sequence[str] | None = None) -> None:
        validation.check_tensor(d, name="d", where="Diagonal")
        super().__init__(
            tuple(d.shape), tuple(d.shape), dtype=d.dtype, device=d.device, names_in=names
        )
        self.d = d

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return X * self.d

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return Y * self.d

    def to_dense(self, chunk_size: int = 1024) -> torch.Tensor:
        """Return ``diag(d)`` as a ``(size, size)`` matrix."""
        return torch.diag(self.d.reshape(-1))
