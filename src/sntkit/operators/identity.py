"""The identity operator ``I`` on ``R^{shape}``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sntkit.operators.base import Operator


class Identity(Operator):
    """``I x = x`` on tensors of shape ``shape``; its dense matrix is ``torch.eye(prod(shape))``.

    Without ``dtype``/``device`` the identity takes them from the operator it is combined with
    (``I.kron(Dense(W))``, ``A + I``, ``A @ I``); used alone it is float64 on the CPU.
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        self.infer_dtype, self.infer_device = dtype is None, device is None
        super().__init__(
            shape,
            shape,
            dtype=torch.float64 if dtype is None else dtype,
            device="cpu" if device is None else device,
            names_in=names,
        )

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return X

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return Y

    def like(self, partner: Operator) -> Identity:
        """Return this identity with the dtype/device that were not given taken from ``partner``."""
        if not (self.infer_dtype or self.infer_device):
            return self
        return Identity(
            self.shape_in,
            dtype=partner.dtype if self.infer_dtype else self.dtype,
            device=partner.device if self.infer_device else self.device,
            names=self.names_in,
        )


def match_partners(ops: Sequence[Operator]) -> list[Operator]:
    """``ops`` with every inferring :class:`Identity` given the dtype/device of a concrete one."""
    concrete = next((op for op in ops if not isinstance(op, Identity)), None)
    if concrete is None:
        return list(ops)
    return [op.like(concrete) if isinstance(op, Identity) else op for op in ops]
