"""Gram operators ``G = J J^*`` that remember their factor ``J``.

An NTK is a Gram operator: ``NTK_S = J J^*`` on states ``(B, T, N)`` with ``J = D_θ h`` (paper
004 §3), and the Fisher ``F = J^* J`` on parameters is its *dual*. The two share their nonzero
eigenvalues, trace, Frobenius norm and effective ranks, and their eigenvectors map into each
other: if ``F v = λ v`` with ``‖v‖ = 1`` and ``λ > 0``, then ``u = J v / √λ`` is a unit
eigenvector of ``G`` for the same ``λ`` (``G u = J (J^* J v) / √λ = λ u``). Spectral work is
therefore cheapest on whichever side is smaller; :mod:`sntkit.linalg.gram_side` uses
:attr:`Gram.factor` and :attr:`Gram.dual` for that.

``direct``/``dual_direct`` optionally supply fused kernels for ``J J^*`` and ``J^* J`` (e.g.
the NTK's recursion ``P K P^*``); they must equal the compositions they replace.
"""

from __future__ import annotations

import torch

from sntkit.operators.base import Operator


class Gram(Operator):
    """``G = J J^*`` on ``J.shape_out`` for a factor ``J``, self-adjoint and PSD.

    Parameters
    ----------
    factor:
        ``J``; ``G`` acts on its codomain.
    direct:
        An operator equal to ``J J^*`` with a cheaper application (default: ``J @ J.T``).
    dual_direct:
        An operator equal to ``J^* J`` (default: ``J.T @ J``), used by :attr:`dual`.
    """

    def __init__(
        self,
        factor: Operator,
        *,
        direct: Operator | None = None,
        dual_direct: Operator | None = None,
    ) -> None:
        for name, op, shape in (
            ("direct", direct, factor.shape_out),
            ("dual_direct", dual_direct, factor.shape_in),
        ):
            if op is not None and (op.shape_in != shape or op.shape_out != shape):
                raise ValueError(
                    f"Gram: {name} must act on {shape}, got {op.shape_in} -> {op.shape_out}"
                )
            if op is not None:
                factor._check_compatible(op, f"Gram({name})")
        super().__init__(
            factor.shape_out,
            factor.shape_out,
            dtype=factor.dtype,
            device=factor.device,
            names_in=direct.names_in if direct is not None else factor.names_out,
        )
        self.factor = factor
        self.direct = direct
        self.dual_direct = dual_direct

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        if self.direct is not None:
            return self.direct._matmat(X)
        return self.factor._matmat(self.factor._rmatmat(X))

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return self._matmat(Y)

    @property
    def dual(self) -> Gram:
        """``J^* J`` on ``J.shape_in``, a :class:`Gram` of ``J^*`` (its dual is ``self``)."""
        return Gram(self.factor.T, direct=self.dual_direct, dual_direct=self.direct)

    def __repr__(self) -> str:
        return f"Gram({self.factor!r})"
