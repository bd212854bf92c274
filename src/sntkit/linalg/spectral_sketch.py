"""One-block spectral summary of a slowly changing PSD operator, warm-started between calls.

A training-loop tracker asks the same questions of ``A_t`` (an sNTK or its Fisher) at every
check — trace, Frobenius norm, top eigenvalues, stable and participation ranks — while ``A_t``
moves little between checks. :func:`warm_sketch` answers all of them from **one** block product
``A [Q; Z']`` with ``Q`` (``k`` orthonormal rows) the previous call's top eigenvector estimates
and ``Z' = (I − QQ^T) Z`` ``m`` sign probes deflated off ``Q`` (the deflation of Hutch++, Meyer et
al. 2021, with the sketch ``Q`` carried over from the last check instead of paid for again, as in
dynamic trace estimation, Dharangutte & Musco 2021):

* ``tr A = tr(Q A Q^T) + E[z'^T A z']`` and ``‖A‖_F² = ‖A Q^T‖_F² + E‖A z'‖²`` (``P = Q^TQ``:
  ``‖A‖_F² = ‖A P‖_F² + ‖A (I − P)‖_F²``); both are unbiased for every ``Q``, and their variance
  is that of the deflated remainder only — small when ``Q`` holds the dominant directions, as it
  does on a collapsed sNTK;
* participation rank ``(tr A)² / ‖A‖_F²`` with its jackknife error over the ``m`` probes
  (:func:`~sntkit.linalg.estimate.jackknife`), and stable rank ``tr A / θ_1`` (the trace's error
  scaled by ``1/θ_1``);
* Rayleigh–Ritz on ``span[Q; Z']`` (every product is already there): Ritz values
  ``θ_1 ≥ … ≥ θ_k`` with ``θ_i ≤ λ_i`` (Cauchy interlacing) and residuals
  ``r_i = ‖A x_i − θ_i x_i‖``; some eigenvalue lies within ``r_i`` of ``θ_i``, and with the gap
  ``δ_i = θ_i − θ_{i+1}`` to the next Ritz value the quadratic estimate ``r_i² / δ_i`` is the
  usual (Kato–Temple) size of ``λ_i − θ_i``;
* the next call's ``Q`` is ``orth(A X)`` — one step of block power iteration on the Ritz
  vectors, free from the same products — so the estimates follow the moving top eigenspace.

Cost per call: ``k + m`` applications of ``A`` in one ``matmat``, against ``≥ 3m`` for separate
trace and participation estimates plus a Krylov solve. Without a previous ``Q`` (the first call)
``Q = orth(A S)`` for ``k`` sign vectors ``S`` costs one more ``matmat`` of ``k``.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from sntkit.linalg.estimate import Estimate, jackknife
from sntkit.linalg.orthogonal import orth_against
from sntkit.linalg.probes import flat, make_generator, rademacher
from sntkit.operators.base import Operator
from sntkit.operators.validation import positive_int, require_square

WHERE = "warm_sketch"
#: probe directions whose singular value within the deflated block is below this fraction of the
#: largest are numerically dependent (a float64 Gram resolves singular values down to ~1e-8)
DEPENDENT_RTOL = 1e-7


@dataclasses.dataclass
class SpectralSketch:
    """What :func:`warm_sketch` learned from one block product (see the module docstring).

    ``eigenvalues``, ``residuals`` and ``errors`` are ``(k,)`` float64 (``errors``: the
    quadratic estimate ``r_i²/δ_i``, capped by the rigorous ``r_i``); ``basis`` ``(k, *shape_in)``
    is the warm start of the next call; ``num_matvecs`` counts applications of ``A``.
    """

    trace: Estimate
    frobenius_sq: Estimate
    participation: Estimate
    eigenvalues: torch.Tensor
    residuals: torch.Tensor
    errors: torch.Tensor
    basis: torch.Tensor
    num_matvecs: int

    @property
    def stable_rank(self) -> Estimate:
        """``tr A / θ_1`` with the trace's error bar scaled alike (``nan`` when ``θ_1 <= 0``)."""
        top = float(self.eigenvalues[0])
        top = top if top > 0 else math.nan
        return Estimate(self.trace.value / top, self.trace.stderr / top, self.num_matvecs)


def warm_sketch(
    op: Operator,
    k: int,
    num_probes: int,
    basis: torch.Tensor | None = None,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> SpectralSketch:
    """Trace, ``‖A‖_F²``, ranks and top-``k`` eigenvalues of a symmetric PSD ``op`` (module).

    Parameters
    ----------
    op:
        Symmetric positive semidefinite square operator (e.g. an sNTK's Fisher side).
    k:
        Number of top eigenvalues (and rows of the warm basis), ``1 <= k < op.size_in``.
    num_probes:
        Sign probes ``m >= 2`` of the deflated remainder (the error bars need two).
    basis:
        The previous call's :attr:`SpectralSketch.basis` ``(k, *op.shape_in)``, or ``None``.
    seed, generator:
        Randomness of the probes (the same seed gives the same probes at every call).
    """
    op = _check(op, k, num_probes, basis)
    gen = make_generator(seed, generator)
    if basis is None:
        Q = orth_against(_apply(op, rademacher(k, op.shape_in, op, gen)), None)
    else:
        Q = orth_against(flat(basis).to(op.dtype), None)
    matvecs = k if basis is None else 0
    Z = flat(rademacher(num_probes, op.shape_in, op, gen))
    B = torch.cat([Q, Z - (Z @ Q.T) @ Q])
    # everything below is algebra on the (k+m)-row block and its images: the small Gram
    # matrices carry it, in float64, instead of repeated passes over the n-long rows
    Bd, Yd = B.double(), _apply(op, B).double()
    matvecs += B.shape[0]
    q = Q.shape[0]
    M = Yd @ Bd.T  # b_j^T A b_i
    M = (M + M.T) / 2
    quad, sq = M.diagonal(), Yd.square().sum(1)  # b_i^T A b_i and ‖A b_i‖²
    base = torch.stack([quad[:q].sum(), sq[:q].sum()])
    samples = torch.stack([quad[q:], sq[q:]])
    trace_est = jackknife(base, samples, lambda x: x[0], matvecs)
    fro_est = jackknife(base, samples, lambda x: x[1], matvecs)
    part_est = jackknife(base, samples, lambda x: x[0] ** 2 / x[1], matvecs)
    theta, residuals, errors, X, AX = _ritz(Bd, Yd, M, q, k)
    next_basis = orth_against(AX, None)
    if next_basis.shape[0] < k:  # A X rank-deficient (A of rank < k): keep the Ritz vectors
        next_basis = X
    return SpectralSketch(
        trace_est,
        fro_est,
        part_est,
        theta,
        residuals,
        errors,
        next_basis.to(op.dtype).reshape(k, *op.shape_in),
        matvecs,
    )


def _check(op: Operator, k: int, num_probes: int, basis: torch.Tensor | None) -> Operator:
    """Return ``op`` after checking the arguments of :func:`warm_sketch` (errors name them)."""
    op = require_square(op, "op", WHERE)
    positive_int(k, "k", WHERE)
    positive_int(num_probes, "num_probes", WHERE, 2)
    if k + num_probes > op.size_in:
        raise ValueError(
            f"{WHERE}: k + num_probes = {k + num_probes} exceeds the operator size {op.size_in};"
            " use fewer probes or compute the spectrum densely"
        )
    if basis is not None and (
        not isinstance(basis, torch.Tensor) or tuple(basis.shape) != (k, *op.shape_in)
    ):
        got = tuple(basis.shape) if isinstance(basis, torch.Tensor) else type(basis).__name__
        raise ValueError(
            f"{WHERE}: basis must be the previous sketch's basis of shape "
            f"{(k, *op.shape_in)}, got {got}; pass basis=None to start cold"
        )
    return op


def _apply(op: Operator, X: torch.Tensor) -> torch.Tensor:
    return flat(op.matmat(X.reshape(X.shape[0], *op.shape_in)))


def _ritz(
    B: torch.Tensor, AB: torch.Tensor, M: torch.Tensor, q: int, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rayleigh–Ritz on the span of the rows of ``B = [Q; Z']`` with ``M = B A B^T``.

    ``Q`` (the first ``q`` rows) is orthonormal and ``Z' ⊥ Q``; the Gram matrix
    ``Z' Z'^T = U Λ U^T`` whitens ``Z'`` (``W = U Λ^{-1/2}``, directions with
    ``λ <= (1e-7)² λ_max`` dropped as numerically dependent), so ``S = diag(I, W)`` maps
    orthonormal coordinates to rows of ``B`` and ``S^T M S`` is the projected matrix. Ritz
    vectors ``X = a^T B`` and their images ``a^T AB`` (``a = S c``) give the residuals directly.
    """
    lam, U = torch.linalg.eigh(B[q:] @ B[q:].T)
    keep = lam > DEPENDENT_RTOL**2 * lam[-1].clamp_min(torch.finfo(lam.dtype).tiny)
    S = torch.block_diag(torch.eye(q, dtype=B.dtype), U[:, keep] * lam[keep].rsqrt())
    theta, c = torch.linalg.eigh(S.T @ M @ S)
    theta, a = theta.flip(0), S @ c.flip(1)[:, :k]
    X, AX = a.T @ B, a.T @ AB
    residuals = torch.linalg.vector_norm(AX - theta[:k, None] * X, dim=1)
    # the gap to the next Ritz value; none beyond the basis (k = its size) leaves only r_i
    following = torch.cat([theta[1 : k + 1], theta.new_full((k,), -torch.inf)])[:k]
    gaps = (theta[:k] - following).clamp_min(torch.finfo(theta.dtype).tiny)
    errors = torch.minimum(residuals, residuals.square() / gaps)
    return theta[:k], residuals, errors, X, AX
