"""The same linear map with its domain and codomain re-viewed as other tensor shapes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sntkit.operators.base import Operator


class Reshaped(Operator):
    """``x ↦ reshape(A reshape(x, A.shape_in), shape_out)`` (row-major; same dense matrix)."""

    def __init__(
        self,
        op: Operator,
        shape_in: int | Sequence[int],
        shape_out: int | Sequence[int],
        *,
        names_in: Sequence[str] | None = None,
        names_out: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            shape_in,
            shape_out,
            dtype=op.dtype,
            device=op.device,
            names_in=names_in,
            names_out=names_out,
        )
        if self.size_in != op.size_in or self.size_out != op.size_out:
            raise ValueError(
                f"reshape: {op!r} maps {op.size_in} -> {op.size_out} entries, but the new shapes "
                f"{self.shape_in} -> {self.shape_out} hold {self.size_in} -> {self.size_out}"
            )
        self.op = op

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        k = X.shape[0]
        return self.op._matmat(X.reshape(k, *self.op.shape_in)).reshape(k, *self.shape_out)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        k = Y.shape[0]
        return self.op._rmatmat(Y.reshape(k, *self.op.shape_out)).reshape(k, *self.shape_in)

    def __repr__(self) -> str:
        return f"{self.op!r}.reshape({self.shape_in}, {self.shape_out})"
