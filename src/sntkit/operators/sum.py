"""Weighted sums ``Σ_i c_i A_i`` of operators (also scalar multiples and differences)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sntkit.operators.base import Operator
from sntkit.operators.identity import match_partners


class Sum(Operator):
    """``(Σ_i c_i A_i) x``; all terms must share shapes, dtype and device."""

    terms: list[Operator]
    weights: list[float]

    def __init__(self, terms: Sequence[Operator], weights: Sequence[float] | None = None) -> None:
        terms = match_partners(list(terms))
        if not terms:
            raise ValueError("Sum needs at least one operator")
        weights = [1.0] * len(terms) if weights is None else [float(w) for w in weights]
        if len(weights) != len(terms):
            raise ValueError(f"Sum: {len(terms)} terms but {len(weights)} weights")
        first = terms[0]
        # flatten nested sums so that long chains stay one level deep
        flat_terms: list[Operator] = []
        flat_weights: list[float] = []
        for op, w in zip(terms, weights, strict=True):
            if op.shape_in != first.shape_in or op.shape_out != first.shape_out:
                raise ValueError(
                    f"cannot add {first!r} and {op!r}: shapes differ; reshape one of them"
                )
            first._check_compatible(op, "sum")
            if isinstance(op, Sum):
                flat_terms.extend(op.terms)
                flat_weights.extend(w * wi for wi in op.weights)
            else:
                flat_terms.append(op)
                flat_weights.append(w)
        super().__init__(
            first.shape_in,
            first.shape_out,
            dtype=first.dtype,
            device=first.device,
            names_in=first.names_in,
            names_out=first.names_out,
        )
        self.terms = flat_terms
        self.weights = flat_weights

    def _apply(self, X: torch.Tensor, adjoint: bool) -> torch.Tensor:
        out = None
        for op, w in zip(self.terms, self.weights, strict=True):
            y = op._rmatmat(X) if adjoint else op._matmat(X)
            y = y if w == 1.0 else w * y
            out = y if out is None else out + y
        assert out is not None
        return out

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return self._apply(X, adjoint=False)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return self._apply(Y, adjoint=True)

    def __repr__(self) -> str:
        parts = [
            f"{w:g}*{op!r}" if w != 1.0 else repr(op)
            for op, w in zip(self.terms, self.weights, strict=True)
        ]
        return "(" + " + ".join(parts) + ")"
