"""Tensor (Kronecker) product ``A ⊗ B`` of operators."""

from __future__ import annotations

import torch

from sntkit.operators.base import Operator
from sntkit.operators.identity import Identity, match_partners


class Kronecker(Operator):
    """``A ⊗ B`` acting on tensors of shape ``A.shape_in + B.shape_in``.

    For matrices (row-major vec) ``(A ⊗ B) vec(X) = vec(A X B^T)``, so the dense matrix is
    ``torch.kron(A.to_dense(), B.to_dense())``. Each factor is applied to all probes and all
    slices of the other factor's axes in one batched call; identity factors cost nothing.
    This is the Kronecker core ``V V^T ⊗ I_n`` of paper 004, Theorem 1.
    """

    def __init__(self, left: Operator, right: Operator) -> None:
        left, right = match_partners([left, right])
        left._check_compatible(right, "kron")
        names_in = _join(left.names_in, right.names_in)
        names_out = _join(left.names_out, right.names_out)
        super().__init__(
            left.shape_in + right.shape_in,
            left.shape_out + right.shape_out,
            dtype=left.dtype,
            device=left.device,
            names_in=names_in,
            names_out=names_out,
        )
        self.left = left
        self.right = right

    def _apply(self, X: torch.Tensor, adjoint: bool) -> torch.Tensor:
        A, B = self.left, self.right
        a_in, a_out = (A.shape_out, A.shape_in) if adjoint else (A.shape_in, A.shape_out)
        b_in, b_out = (B.shape_out, B.shape_in) if adjoint else (B.shape_in, B.shape_out)
        k = X.shape[0]
        na_in = X[0].numel() // _numel(b_in)
        if not isinstance(B, Identity):
            Xb = X.reshape(k * na_in, *b_in)
            Xb = B._rmatmat(Xb) if adjoint else B._matmat(Xb)
            X = Xb.reshape(k, *a_in, *b_out)
        if not isinstance(A, Identity):
            nb_out = _numel(b_out)
            Xa = X.reshape(k, na_in, nb_out).transpose(1, 2).reshape(k * nb_out, *a_in)
            Xa = A._rmatmat(Xa) if adjoint else A._matmat(Xa)
            na_out = _numel(a_out)
            X = Xa.reshape(k, nb_out, na_out).transpose(1, 2)
        return X.reshape(k, *a_out, *b_out)

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return self._apply(X, adjoint=False)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return self._apply(Y, adjoint=True)

    def __repr__(self) -> str:
        return f"({self.left!r} ⊗ {self.right!r})"


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _join(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if a is None or b is None or set(a) & set(b):
        return None
    return a + b
