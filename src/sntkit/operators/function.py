"""Operators defined by user functions (e.g. Jacobian-vector products)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from sntkit.operators.base import Operator

Fn = Callable[[torch.Tensor], torch.Tensor]


class FunctionOperator(Operator):
    """A linear operator given by its action ``matvec`` and adjoint action ``rmatvec``.

    If ``batched`` is false the functions act on one tensor of shape ``shape_in`` and are
    vectorized over the probe axis with :func:`torch.vmap` (so they must be vmappable:
    ``torch.func.jvp``/``vjp`` and plain tensor code are). If ``batched`` is true they already
    take ``(k, *shape)`` probes. ``rmatvec=None`` means the operator is self-adjoint.
    Linearity is the caller's promise; the adjointness tests check it for ours.
    """

    def __init__(
        self,
        matvec: Fn,
        rmatvec: Fn | None,
        shape_in: int | Sequence[int],
        shape_out: int | Sequence[int],
        *,
        dtype: torch.dtype,
        device: torch.device | str,
        batched: bool = False,
        names_in: Sequence[str] | None = None,
        names_out: Sequence[str] | None = None,
        name: str = "FunctionOperator",
    ) -> None:
        super().__init__(
            shape_in,
            shape_out,
            dtype=dtype,
            device=device,
            names_in=names_in,
            names_out=names_out,
        )
        if rmatvec is None and self.shape_in != self.shape_out:
            raise ValueError(
                "FunctionOperator: rmatvec=None means self-adjoint, which needs "
                f"shape_in == shape_out (got {self.shape_in} -> {self.shape_out})"
            )
        self._mv = matvec if batched else torch.vmap(matvec)
        self._rmv = self._mv if rmatvec is None else (rmatvec if batched else torch.vmap(rmatvec))
        self.name = name

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return self._mv(X)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return self._rmv(Y)

    def __repr__(self) -> str:
        return f"{self.name}({self.shape_in} -> {self.shape_out})"
