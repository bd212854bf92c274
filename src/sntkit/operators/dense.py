"""An explicit matrix viewed as an operator between tensor spaces."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from sntkit.operators import validation
from sntkit.operators.base import Operator


class Dense(Operator):
    """``A x = M vec(x)`` for a matrix ``M`` of shape ``(prod(shape_out), prod(shape_in))``.

    ``vec`` is row-major (``x.reshape(-1)``), the convention of :meth:`Operator.to_dense`, so
    ``Dense(op.to_dense(), shape_in=op.shape_in, shape_out=op.shape_out)`` reproduces ``op``.
    Shapes default to the matrix's own (a plain vector space on each side); a square matrix
    given only ``shape_in`` gets ``shape_out = shape_in``.
    """

    def __init__(
        self,
        matrix: torch.Tensor,
        *,
        shape_in: int | Sequence[int] | None = None,
        shape_out: int | Sequence[int] | None = None,
        names_in: Sequence[str] | None = None,
        names_out: Sequence[str] | None = None,
    ) -> None:
        validation.check_tensor(matrix, name="matrix", where="Dense")
        if matrix.ndim != 2:
            raise ValueError(
                f"Dense: matrix must be 2-D (prod(shape_out), prod(shape_in)), got shape "
                f"{tuple(matrix.shape)}; reshape it first"
            )
        if shape_out is None:
            square = matrix.shape[0] == matrix.shape[1]
            shape_out = shape_in if (square and shape_in is not None) else matrix.shape[0]
        shape_in = matrix.shape[1] if shape_in is None else shape_in
        super().__init__(
            shape_in,
            shape_out,
            dtype=matrix.dtype,
            device=matrix.device,
            names_in=names_in,
            names_out=names_out,
        )
        if matrix.shape != (self.size_out, self.size_in):
            raise ValueError(
                f"Dense: matrix has shape {tuple(matrix.shape)} but shape_out={self.shape_out} "
                f"and shape_in={self.shape_in} need ({self.size_out}, {self.size_in})"
            )
        self.matrix = matrix

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        k = X.shape[0]
        return (X.reshape(k, -1) @ self.matrix.T).reshape(k, *self.shape_out)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        k = Y.shape[0]
        return (Y.reshape(k, -1) @ self.matrix).reshape(k, *self.shape_in)

    def to_dense(self, chunk_size: int = 1024) -> torch.Tensor:
        """Return the matrix itself, reshaped to ``(size_out, size_in)``."""
        return self.matrix

    def __repr__(self) -> str:
        n = math.prod(self.matrix.shape)
        return f"Dense({self.shape_in} -> {self.shape_out}, {n} entries)"
