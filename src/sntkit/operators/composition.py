"""Composition ``A B`` of operators."""

from __future__ import annotations

import torch

from sntkit.operators.base import Operator
from sntkit.operators.identity import match_partners


class Composition(Operator):
    """``(A B) x = A (B x)``; requires ``B.shape_out == A.shape_in``. Adjoint ``B^* A^*``."""

    def __init__(self, left: Operator, right: Operator) -> None:
        if right.shape_out != left.shape_in:
            raise ValueError(
                f"cannot compose {left!r} @ {right!r}: right.shape_out {right.shape_out} != "
                f"left.shape_in {left.shape_in}; reshape one side with op.reshape(...)"
            )
        left, right = match_partners([left, right])
        left._check_compatible(right, "composition")
        super().__init__(
            right.shape_in,
            left.shape_out,
            dtype=left.dtype,
            device=left.device,
            names_in=right.names_in,
            names_out=left.names_out,
        )
        self.left = left
        self.right = right

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return self.left._matmat(self.right._matmat(X))

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return self.right._rmatmat(self.left._rmatmat(Y))

    def __repr__(self) -> str:
        return f"({self.left!r} @ {self.right!r})"
