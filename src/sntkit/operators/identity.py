"""The identity operator ``I`` on ``R^{shape}``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sntkit.operators.base import Operator


class Identity(Operator):
    """``I x = x`` on tensors of shape ``shape``; its dense matrix is ``torch.eye(prod(shape))``."""

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(shape, shape, dtype=dtype, device=device, names_in=names)

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return X

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return Y
