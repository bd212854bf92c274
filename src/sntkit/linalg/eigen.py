"""Top eigenpairs and singular triplets of matrix-free operators.

:func:`eigsh` is a block Krylov (block Lanczos) method with full reorthogonalization and
Rayleigh–Ritz on the whole accumulated basis. Why this choice: every iteration applies the
operator to one *block* of ``b`` probes (``op.matmat``, vectorized — one pass of a recurrent
NTK costs about the same for 1 or 16 probes), the products ``A Q`` are stored so Rayleigh–Ritz
and the residuals ``‖A x − θ x‖`` need no extra matvecs, and Krylov subspaces converge much
faster than plain subspace (power) iteration on the fast-decaying spectra of NTKs. Full
reorthogonalization keeps it stable in float32; when the basis outgrows ``max_basis`` vectors
the method restarts from the current best ``b`` Ritz vectors (thick restart). It stops when the
``k`` wanted Ritz pairs have relative residuals ``‖A x − θ x‖ <= tol · |θ_1|``.

:func:`svds` runs :func:`eigsh` on the smaller of ``A^* A`` and ``A A^*`` (each application
costs two operator applications) and recovers the other side by one more block product;
singular values far below ``σ_1`` lose relative accuracy by squaring, as with any Gram method.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from sntkit.linalg.probes import flat, gaussian, make_generator
from sntkit.operators.base import Operator


@dataclass(frozen=True)
class EigshInfo:
    """Diagnostics of :func:`eigsh`: operator applications, iterations, residuals, success."""

    num_matvecs: int
    iterations: int
    residuals: torch.Tensor
    converged: bool


def eigsh(
    op: Operator,
    k: int = 6,
    *,
    block_size: int | None = None,
    tol: float = 1e-6,
    max_iters: int = 100,
    max_basis: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    return_info: bool = False,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, EigshInfo]:
    """Top-``k`` (largest algebraic) eigenpairs of a symmetric operator.

    Returns ``values`` (``(k,)``, descending, in the operator's dtype) and ``vectors``
    (``(k, *shape_in)``, orthonormal), plus an :class:`EigshInfo` if ``return_info``.
    """
    op.require_square("eigsh")
    n = op.size_in
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] for an operator of size {n}, got {k}")
    b = min(n, block_size or k + max(4, k // 2))
    if b < k:
        raise ValueError(f"block_size={b} must be >= k={k}")
    max_basis = min(n, max_basis or max(10 * b, 60))
    gen = make_generator(seed, generator)
    X = flat(gaussian(b, op.shape_in, op, gen))
    basis, images = _orth_against(X, None), None
    num = 0
    theta = vecs = res = None
    converged = False
    iterations = 0
    while iterations < max_iters:
        iterations += 1
        new = basis if images is None else basis[images.shape[0] :]
        AQ = flat(op.matmat(new.reshape(new.shape[0], *op.shape_in)))
        num += new.shape[0]
        images = AQ if images is None else torch.cat([images, AQ])
        H = basis @ images.T
        H = (H + H.T) / 2
        evals, S = torch.linalg.eigh(H.double())
        order = evals.argsort(descending=True)
        evals, S = evals[order].to(op.dtype), S[:, order].to(op.dtype)
        theta = evals[:k]
        vecs = S[:, :k].T @ basis
        res = torch.linalg.vector_norm(S[:, :k].T @ images - theta[:, None] * vecs, dim=1)
        scale = max(float(theta.abs().max()), torch.finfo(op.dtype).tiny)
        if bool((res <= tol * scale).all()) or basis.shape[0] >= n:
            converged = True
            break
        frontier = AQ  # the next Krylov block grows from A applied to the newest block
        if basis.shape[0] + b > max_basis:
            # thick restart: keep the best b Ritz vectors and their images
            keep = S[:, :b]
            basis, images = keep.T @ basis, keep.T @ images
            frontier = images
        block = _orth_against(frontier, basis)
        if block.shape[0] == 0:  # invariant subspace found
            block = _orth_against(flat(gaussian(b, op.shape_in, op, gen)), basis)
            if block.shape[0] == 0:
                converged = True
                break
        basis = torch.cat([basis, block])
    if not converged:
        warnings.warn(
            f"eigsh: {k} eigenpairs not converged to tol={tol} after {max_iters} iterations "
            f"(max relative residual {float(res.max()) / scale:.2e}); raise max_iters or tol",
            RuntimeWarning,
            stacklevel=2,
        )
    assert theta is not None and vecs is not None and res is not None
    vectors = vecs.reshape(k, *op.shape_in)
    if return_info:
        return theta, vectors, EigshInfo(num, iterations, res, converged)
    return theta, vectors


def _orth_against(X: torch.Tensor, basis: torch.Tensor | None) -> torch.Tensor:
    """Orthonormal rows spanning ``X`` minus its projection on ``basis`` (twice, for stability).

    Directions that vanish after projection (relative norm < 1e-10 in float64, 1e-5 in
    float32) are dropped.
    """
    for _ in range(2):
        if basis is not None:
            X = X - (X @ basis.T) @ basis
    Q, R = torch.linalg.qr(X.T)
    d = R.diagonal().abs()
    rel = 1e-10 if X.dtype == torch.float64 else 1e-5
    thresh = rel * max(float(d.max()) if d.numel() else 0.0, 1e-300)
    Q = Q[:, d > thresh].T
    if basis is not None and Q.shape[0]:
        Q = Q - (Q @ basis.T) @ basis
        Q = torch.linalg.qr(Q.T).Q.T
    return Q


def svds(
    op: Operator, k: int = 6, **kwargs: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-``k`` singular triplets ``(U, S, Vh)``: ``op ≈ Σ_i S_i U_i ⊗ Vh_i``.

    ``U`` is ``(k, *shape_out)``, ``S`` ``(k,)`` descending, ``Vh`` ``(k, *shape_in)``.
    """
    if op.size_in <= op.size_out:
        lam, V = eigsh(op.T @ op, k, **kwargs)  # type: ignore[arg-type]
        S = lam.clamp_min(0).sqrt()
        AV = flat(op.matmat(V))
        U = AV / S.clamp_min(torch.finfo(op.dtype).tiny)[:, None]
        return U.reshape(k, *op.shape_out), S, V
    lam, U = eigsh(op @ op.T, k, **kwargs)  # type: ignore[arg-type]
    S = lam.clamp_min(0).sqrt()
    AtU = flat(op.rmatmat(U))
    V = AtU / S.clamp_min(torch.finfo(op.dtype).tiny)[:, None]
    return U, S, V.reshape(k, *op.shape_in)


def spectral_norm(op: Operator, **kwargs: object) -> float:
    """``‖A‖_2``: the largest singular value, from :func:`eigsh` on the smaller Gram side."""
    gram = op.T @ op if op.size_in <= op.size_out else op @ op.T
    lam, _ = eigsh(gram, 1, **kwargs)  # type: ignore[arg-type]
    return math.sqrt(max(float(lam[0]), 0.0))
