"""The Jacobian of a tensor function at a point, matrix-free through ``torch.func``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.func import jvp, vjp, vmap

from sntkit.operators import validation
from sntkit.operators.base import Operator


class Jacobian(Operator):
    """``D fn(x0)``: ``R^{shape(x0)} -> R^{shape(fn(x0))}``.

    Forward products are Jacobian-vector products (``torch.func.jvp``), adjoint products are
    vector-Jacobian products from one cached ``torch.func.vjp`` at ``x0``; both are vmapped
    over the probe axis, so ``k`` probes cost one batched evaluation. ``fn`` must be a pure,
    vmappable torch function of one tensor (close over anything else).
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        x0: torch.Tensor,
        *,
        names_in: Sequence[str] | None = None,
        names_out: Sequence[str] | None = None,
        name: str = "Jacobian",
    ) -> None:
        validation.check_tensor(x0, name="x0", where=name)
        # torch.func.vjp is typed as returning a 2- or 3-tuple (no overload on has_aux)
        y0, self._vjp = vjp(fn, x0)  # type: ignore[misc]
        super().__init__(
            tuple(x0.shape),
            tuple(y0.shape),
            dtype=x0.dtype,
            device=x0.device,
            names_in=names_in,
            names_out=names_out,
        )
        self.fn = fn
        self.x0 = x0
        self.value = y0.detach()
        self.name = name

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return vmap(lambda v: jvp(self.fn, (self.x0,), (v,))[1])(X)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return vmap(lambda u: self._vjp(u)[0])(Y)

    def __repr__(self) -> str:
        return f"{self.name}({self.shape_in} -> {self.shape_out})"
