"""Top eigenpairs and singular triplets of matrix-free operators.

:func:`eigsh` is a randomized block Krylov (block Lanczos) method with full reorthogonalization
and Rayleigh–Ritz on the whole accumulated basis. Why this method:

* every iteration applies the operator to one *block* of ``b`` probes (``op.matmat``); one
  pass of a recurrent NTK costs about the same for 1 or 16 probes, so a block method turns
  ARPACK's hundreds of sequential single-vector products into tens of batched ones;
* the products ``A Q`` are stored, so Rayleigh–Ritz on the whole basis and the residuals
  ``‖A x − θ x‖`` of the Ritz pairs cost no extra applications;
* Krylov subspaces converge much faster than subspace (power) iteration — with a gap ratio
  ``γ``, like ``(1 + √γ)^{-2q}`` instead of ``(1 + γ)^{-q}`` — and a block of ``b > k``
  vectors (oversampling) resolves clustered and repeated eigenvalues that single-vector
  Lanczos can miss;
* full reorthogonalization (two block Gram–Schmidt passes) keeps the basis orthonormal in
  float32, where plain Lanczos loses orthogonality and produces ghost eigenvalues.

When the basis would outgrow ``max_basis`` vectors the method restarts thickly from the best
Ritz vectors (and their stored images), continuing the Krylov sequence with their residuals.
It stops when the ``k`` wanted Ritz pairs satisfy ``‖A x − θ x‖ <= tol · |θ_1|``, or when the
basis spans the whole space (then the result is exact); otherwise it warns after ``max_iters``
iterations. Every ``Q^T A Q`` is checked for symmetry for free.

:func:`svds` runs :func:`eigsh` on the smaller Gram side (``A^* A`` or ``A A^*``) and finishes
with a Rayleigh–Ritz step on ``A`` itself: for the right vectors ``V``, the SVD of the small
``A V`` gives the singular values directly, not as square roots of Gram eigenvalues, so small
singular values keep their relative accuracy. Block Krylov on ``A^* A`` builds the same
subspaces as Golub–Kahan (block Lanczos) bidiagonalization at the same cost (one ``A`` and one
``A^*`` per vector), while reusing the tested eigensolver.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal, overload

import torch

from sntkit.linalg import gram_side
from sntkit.linalg.orthogonal import orth_against
from sntkit.linalg.probes import flat, gaussian, make_generator
from sntkit.operators.base import Operator
from sntkit.operators.validation import (
    positive_int,
    require_operator,
    require_square,
    require_symmetric,
)


@dataclass(frozen=True)
class EigshInfo:
    """Diagnostics of :func:`eigsh` / :func:`svds`.

    ``num_matvecs``: applications of the operator (for :func:`svds`, of ``A`` and ``A^*``
    together); ``iterations``: block iterations; ``residuals``: ``‖A x_i − θ_i x_i‖`` of the
    returned pairs (for :func:`svds`, of the Gram pairs); ``converged``: whether every residual
    met the tolerance.
    """

    num_matvecs: int
    iterations: int
    residuals: torch.Tensor
    converged: bool


@overload
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
    return_info: Literal[False] = False,
) -> tuple[torch.Tensor, torch.Tensor]: ...


@overload
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
    return_info: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor, EigshInfo]: ...


@gram_side.eigenpairs_on_cheap_side
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

    Parameters
    ----------
    op:
        Symmetric (self-adjoint) square operator on ``R^{shape_in}``, any tensor shape. A
        :class:`~sntkit.operators.Gram` ``J J^*`` runs on its smaller side and maps the
        eigenvectors back (:mod:`sntkit.linalg.gram_side`).
    k:
        Number of eigenpairs, ``1 <= k <= op.size_in``.
    block_size:
        Probes per iteration, ``>= k``; default ``k + max(4, k // 2)`` (oversampling).
    tol:
        Stop when every wanted Ritz pair has ``‖A x − θ x‖ <= tol · |θ_1|``.
    max_iters, max_basis:
        Iteration cap (warns if reached) and basis size that triggers a thick restart
        (default ``max(10 · block_size, 60)``).
    seed, generator:
        Randomness of the starting block (CPU; same result on every device).
    return_info:
        Also return an :class:`EigshInfo`.

    Returns
    -------
    ``values`` ``(k,)`` descending and ``vectors`` ``(k, *shape_in)`` with orthonormal rows
    (``vectors[i]`` belongs to ``values[i]``), in the operator's dtype and device.
    """
    b, max_basis = _check_eigsh_args(op, k, block_size, tol, max_iters, max_basis)
    gen = make_generator(seed, generator)
    theta, X, info, scale = _block_lanczos(op, k, b, tol, max_iters, max_basis, gen)
    if not info.converged:
        warnings.warn(
            f"eigsh: {k} eigenpairs not converged to tol={tol} after {max_iters} iterations "
            f"(largest relative residual {float(info.residuals.max()) / scale:.2e}); raise "
            f"max_iters or tol",
            RuntimeWarning,
            stacklevel=2,
        )
    values, vectors = theta[:k], X.reshape(k, *op.shape_in)
    if return_info:
        return values, vectors, info
    return values, vectors


def _check_eigsh_args(
    op: Operator, k: int, block_size: int | None, tol: float, max_iters: int, max_basis: int | None
) -> tuple[int, int]:
    """Validate the arguments of :func:`eigsh`; the block size and the restart basis size."""
    where = "eigsh"
    require_square(op, "op", where)
    n = op.size_in
    positive_int(k, "k", where)
    if k > n:
        raise ValueError(f"{where}: k must be <= the dimension {n} of op, got k={k}")
    b = min(n, k + max(4, k // 2)) if block_size is None else block_size
    positive_int(b, "block_size", where, k)
    positive_int(max_iters, "max_iters", where)
    if not (isinstance(tol, int | float) and tol > 0):
        raise ValueError(f"{where}: tol must be a positive number, got {tol!r}")
    max_basis = max(10 * b, 60) if max_basis is None else max_basis
    positive_int(max_basis, "max_basis", where, 2 * b)
    return b, max_basis


def _block_lanczos(
    op: Operator,
    k: int,
    b: int,
    tol: float,
    max_iters: int,
    max_basis: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, EigshInfo, float]:
    """Block Lanczos with thick restarts: Ritz values, flat Ritz vectors, info, ``|θ_1|``."""
    n = op.size_in
    basis = orth_against(flat(gaussian(b, op.shape_in, op, gen)), None)
    block, images = basis, basis[:0]
    num_matvecs, iterations = 0, 0
    converged = False
    while True:
        iterations += 1
        AB = flat(op.matmat(block.reshape(block.shape[0], *op.shape_in)))
        num_matvecs += block.shape[0]
        images = torch.cat([images, AB])
        H = basis @ images.T
        require_symmetric(H, op.dtype, "op", "eigsh")
        theta, S, X, residuals = rayleigh_ritz(H, basis, images, k)
        scale = max(float(theta[:k].abs().max()), torch.finfo(op.dtype).tiny)
        if basis.shape[0] >= n or bool((residuals <= tol * scale).all()):
            converged = True
            break
        if iterations >= max_iters:
            break
        frontier = AB  # block Lanczos: the next block grows from A applied to the newest one
        if basis.shape[0] + b > max_basis and max_basis < n:
            # thick restart: keep the best Ritz vectors and their images, continue with the
            # residual directions of the top b of them
            keep = S[:, : max(b, max_basis // 2)]
            basis, images = keep.T @ basis, keep.T @ images
            frontier = images[:b]
        block = orth_against(frontier, basis)
        if block.shape[0] == 0:  # an invariant subspace: continue from fresh random directions
            block = orth_against(flat(gaussian(b, op.shape_in, op, gen)), basis)
        basis = torch.cat([basis, block])
    return theta, X, EigshInfo(num_matvecs, iterations, residuals, converged), scale


def rayleigh_ritz(
    H: torch.Tensor, basis: torch.Tensor, images: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rayleigh–Ritz for a symmetric ``A`` on the span of the orthonormal rows of ``basis``.

    ``images = basis A`` (the stored products, ``(m, n)`` like ``basis``) and ``H = basis
    imagesᵀ`` (``m × m``). Returns the Ritz values ``θ`` (``m``, descending), the coefficient
    matrix ``S`` (columns in the same order), the top-``k`` Ritz vectors ``X = S_kᵀ basis`` and
    their residual norms ``‖A x_i − θ_i x_i‖`` (``k``, from the images ``S_kᵀ images``). The
    small eigenproblem is solved in float64 and cast back to the basis' dtype.
    """
    theta, S = torch.linalg.eigh(((H + H.T) / 2).double())
    theta, S = theta.flip(0).to(basis.dtype), S.flip(1).to(basis.dtype)
    X, AX = S[:, :k].T @ basis, S[:, :k].T @ images
    residuals = torch.linalg.vector_norm(AX - theta[:k, None] * X, dim=1)
    return theta, S, X, residuals


@overload
def svds(
    op: Operator, k: int = 6, *, return_info: Literal[False] = False, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


@overload
def svds(
    op: Operator, k: int = 6, *, return_info: Literal[True], **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, EigshInfo]: ...


def svds(
    op: Operator,
    k: int = 6,
    *,
    return_info: bool = False,
    **kwargs: Any,
) -> (
    tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    | tuple[torch.Tensor, torch.Tensor, torch.Tensor, EigshInfo]
):
    """Top-``k`` singular triplets ``(U, S, Vh)`` with ``op ≈ Σ_i S_i U_i ⊗ Vh_i``.

    ``U`` is ``(k, *shape_out)`` and ``Vh`` ``(k, *shape_in)``, both with orthonormal rows;
    ``S`` is ``(k,)`` descending, so ``op.matvec(Vh[i]) ≈ S[i] · U[i]``. ``kwargs`` go to
    :func:`eigsh` on the smaller Gram side (see the module docstring for the method); its
    ``tol`` bounds Gram residuals relative to ``σ_1²``, so singular values below about
    ``sqrt(tol)·σ_1`` are accurate to about ``tol·σ_1`` in absolute terms, not relatively.
    """
    where = "svds"
    require_operator(op, "op", where)
    if isinstance(op, gram_side.Gram):  # symmetric PSD: the triplets are eigenpairs
        return gram_side.gram_svds(eigsh, op, k, return_info, kwargs)
    positive_int(k, "k", where)
    if k > min(op.size_in, op.size_out):
        raise ValueError(
            f"{where}: k must be <= min(size_in, size_out) = {min(op.size_in, op.size_out)} "
            f"of op, got k={k}"
        )
    right = op.size_in <= op.size_out  # eigsh on A^*A (input side) or A A^* (output side)
    gram = op.T @ op if right else op @ op.T
    _, V, info = eigsh(gram, k, return_info=True, **kwargs)
    AV = flat(op.matmat(V) if right else op.rmatmat(V))  # rows: A v_i (or A^* u_i)
    # Rayleigh–Ritz on A itself: A (V^T W) = P Σ with AV^T = P Σ W^T
    P, sigma, Wh = torch.linalg.svd(AV.T, full_matrices=False)
    V = Wh @ flat(V)
    info = EigshInfo(2 * info.num_matvecs + k, info.iterations, info.residuals, info.converged)
    if right:
        U, Vh = P.T.reshape(k, *op.shape_out), V.reshape(k, *op.shape_in)
    else:  # the Gram vectors are left vectors and P holds the right ones
        U, Vh = V.reshape(k, *op.shape_out), P.T.reshape(k, *op.shape_in)
    if return_info:
        return U, sigma, Vh, info
    return U, sigma, Vh


def spectral_norm(op: Operator, **kwargs: Any) -> float:
    """``‖A‖_2``, the largest singular value, by :func:`svds` with ``k = 1``."""
    _, sigma, _ = svds(op, 1, **kwargs)
    value = float(sigma[0])
    if not math.isfinite(value):
        raise ValueError(f"spectral_norm: the norm of op is {value}; try float64")
    return value
