"""Orthonormal bases that grow by blocks (block classical Gram–Schmidt, applied twice).

Rows are vectors: a basis is a ``(p, n)`` tensor with orthonormal rows. Growing a basis by
orthogonalizing a new block against it — instead of re-orthogonalizing everything — is what
lets the adaptive estimators and the Krylov eigensolver keep every operator application they
have already paid for: ``A Q`` for the old rows stays valid.
"""

from __future__ import annotations

import torch


def drop_tolerance(dtype: torch.dtype) -> float:
    """Relative norm below which a new direction counts as already spanned.

    ``100·sqrt(eps)``-ish of the working precision: far above the rounding left by two
    Gram–Schmidt passes, far below any direction worth an operator application.
    """
    return 1e-10 if dtype == torch.float64 else 1e-5


def orth_against(X: torch.Tensor, basis: torch.Tensor | None) -> torch.Tensor:
    """Orthonormal rows spanning the rows of ``X`` minus their projection on ``basis``.

    ``X`` is ``(j, n)``, ``basis`` ``(p, n)`` with orthonormal rows (or ``None``). The projected
    block is orthonormalized by an SVD, which reveals its numerical rank: directions whose
    singular value is below :func:`drop_tolerance` times the largest row norm of ``X`` are
    already spanned and are dropped, so the result has ``<= min(j, n - p)`` rows and ``basis``
    stacked on it stays orthonormal to working precision.
    """
    if X.shape[0] == 0:
        return X
    scale = float(torch.linalg.vector_norm(X, dim=1).max())
    for _ in range(2):
        if basis is not None and basis.shape[0]:
            X = X - (X @ basis.T) @ basis
    sv, Vh = _row_svd(X)
    threshold = drop_tolerance(X.dtype) * max(scale, torch.finfo(X.dtype).tiny)
    Q = Vh[sv > threshold]
    if basis is not None and basis.shape[0] and Q.shape[0]:
        Q = Q - (Q @ basis.T) @ basis
        Q = torch.linalg.qr(Q.T).Q.T
    return Q


def _row_svd(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values and right singular vectors (rows) of ``X`` ``(j, n)``.

    For a wide block (``j < n``, the usual case: a few vectors of a large space) through the QR
    factorization ``X^T = Q R`` and the ``j × j`` SVD ``R = U S V^T``: ``X = V S (Q U)^T``, so
    the rows of ``(Q U)^T`` are the right singular vectors — backward stable like the SVD of
    ``X`` itself and several times cheaper (LAPACK's wide SVD is slow for ``j << n``).
    """
    if X.shape[0] >= X.shape[1]:
        _, sv, Vh = torch.linalg.svd(X, full_matrices=False)
        return sv, Vh
    Q, R = torch.linalg.qr(X.mT)
    U, sv, _ = torch.linalg.svd(R)
    return sv, (Q @ U).mT
