"""The adjoint ``A^*`` of an operator."""

from __future__ import annotations

import torch

from sntkit.operators.base import Operator


class Adjoint(Operator):
    """``A^*``: maps ``shape_out -> shape_in`` of ``A``, with ``⟨A x, y⟩ = ⟨x, A^* y⟩``."""

    def __init__(self, op: Operator) -> None:
        super().__init__(
            op.shape_out,
            op.shape_in,
            dtype=op.dtype,
            device=op.device,
            names_in=op.names_out,
            names_out=op.names_in,
        )
        self.op = op

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return self.op._rmatmat(X)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return self.op._matmat(Y)

    @property
    def T(self) -> Operator:
        """Return the operator itself (``(A^*)^* = A``)."""
        return self.op

    def __repr__(self) -> str:
        return f"{self.op!r}.T"
