"""Direct sum (block-diagonal operator) over one tensor axis."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sntkit.operators.base import Operator
from sntkit.operators.identity import match_partners


class DirectSum(Operator):
    """``A_1 ⊕ ... ⊕ A_m`` acting blockwise on slices of the last axis.

    Each ``A_i`` maps ``(*lead, n_i) -> (*lead', m_i)`` with the same leading shapes; the sum maps
    ``(*lead, Σ n_i) -> (*lead', Σ m_i)`` by applying ``A_i`` to the i-th slice. Its dense matrix
    is block-diagonal only after permuting the last axis to the front; :meth:`to_dense` follows
    the usual row-major convention. Used for the lifted Kronecker core
    ``⊕_g (V_g V_g^T ⊗ I_{n_g})`` of gated cells (see :mod:`sntkit.ntk.core`).
    """

    def __init__(self, ops: Sequence[Operator], *, names: Sequence[str] | None = None) -> None:
        ops = match_partners(list(ops))
        if not ops:
            raise ValueError("DirectSum needs at least one operator")
        lead_in, lead_out = ops[0].shape_in[:-1], ops[0].shape_out[:-1]
        for op in ops:
            ops[0]._check_compatible(op, "DirectSum")
            if op.shape_in[:-1] != lead_in or op.shape_out[:-1] != lead_out:
                raise ValueError(
                    f"DirectSum: {op!r} has leading shapes {op.shape_in[:-1]} -> "
                    f"{op.shape_out[:-1]}, expected {lead_in} -> {lead_out}"
                )
        self.ops = ops
        self.sizes_in = [op.shape_in[-1] for op in ops]
        self.sizes_out = [op.shape_out[-1] for op in ops]
        super().__init__(
            (*lead_in, sum(self.sizes_in)),
            (*lead_out, sum(self.sizes_out)),
            dtype=ops[0].dtype,
            device=ops[0].device,
            names_in=names,
        )

    def _apply(self, X: torch.Tensor, adjoint: bool) -> torch.Tensor:
        sizes = self.sizes_out if adjoint else self.sizes_in
        parts = X.split(sizes, dim=-1)
        outs = [
            op._rmatmat(p) if adjoint else op._matmat(p)
            for op, p in zip(self.ops, parts, strict=True)
        ]
        return torch.cat(outs, dim=-1)

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return self._apply(X, adjoint=False)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return self._apply(Y, adjoint=True)

    def __repr__(self) -> str:
        return "(" + " ⊕ ".join(repr(op) for op in self.ops) + ")"
