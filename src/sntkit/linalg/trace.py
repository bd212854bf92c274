"""Randomized trace estimation: Hutchinson, Hutch++ and XTrace (paper 004 App. A.1).

For a square operator ``A`` on ``R^n`` (any tensor shape), with probe budgets counted in
applications of ``A``:

* ``"hutchinson"``: ``tr A ≈ (1/m) Σ z_i^T A z_i`` with random signs ``z_i``; standard error
  from the sample variance.
* ``"hutch++"`` (Meyer, Musco, Musco & Woodruff 2021): the budget is split evenly in thirds:
  sketch ``S``, ``Q = orth(A S)``, exact ``tr(Q^T A Q)``, and Hutchinson on the deflated
  ``(I − QQ^T) A (I − QQ^T)``; the error comes only from the deflated remainder, so low-rank
  operators (the NTK) are estimated far better than by Hutchinson. (kpflow splits the budget
  unevenly.)
* ``"xtrace"`` (Epperly, Tropp & Webber 2024): the exchangeable leave-one-out version of
  Hutch++, using every sample for both the sketch and the residual, with its built-in error
  estimate; ``m/2`` Gaussian test vectors.
* ``"exact"``: the sum of diagonal entries from basis probes (``n`` applications, batched).

With ``rtol`` the estimate is adaptive: the budget doubles (and the estimate is redone, so a
larger sketch is used) until ``stderr <= rtol·|value|`` or ``max_matvecs`` would be exceeded;
:attr:`Estimate.num_matvecs` counts every round and :attr:`Estimate.converged` says whether the
target was met.
"""

from __future__ import annotations

import math

import torch

from sntkit.linalg.estimate import Estimate
from sntkit.linalg.probes import flat, gaussian, make_generator, rademacher
from sntkit.operators.base import Operator

METHODS = ("hutch++", "hutchinson", "xtrace", "exact")


def trace(
    op: Operator,
    method: str = "hutch++",
    num_matvecs: int = 64,
    rtol: float | None = None,
    *,
    max_matvecs: int = 4096,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 256,
) -> Estimate:
    """Estimate ``tr(op)`` (see module docstring for the methods)."""
    op.require_square("trace")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "exact":
        return Estimate(float(exact_diagonal(op, chunk_size).sum()), 0.0, op.size_in)
    if num_matvecs < 1:
        raise ValueError(f"num_matvecs must be >= 1, got {num_matvecs}")
    if rtol is not None and rtol <= 0:
        raise ValueError(f"rtol must be positive, got {rtol}")
    gen = make_generator(seed, generator)
    if method == "xtrace":
        return _xtrace_adaptive(op, num_matvecs, rtol, max_matvecs, gen)
    total = 0
    while True:
        est = _hutch(op, num_matvecs, method == "hutch++", gen, rtol)
        total += est.num_matvecs
        if est.converged is not False or 2 * num_matvecs > max_matvecs - total:
            return Estimate(est.value, est.stderr, total, est.converged)
        num_matvecs *= 2


def _hutch(
    op: Operator, m: int, deflate: bool, gen: torch.Generator, rtol: float | None
) -> Estimate:
    """Hutchinson (``deflate=False``) or Hutch++ with an even three-way split of ``m``."""
    k = m // 3
    if deflate and k >= 1 and op.size_in > 2 * k:
        Q, AQ = sketch(op, k, gen)
        base, m = float((Q * AQ).sum()), m - 2 * k
    else:
        Q, base, k = None, 0.0, 0
    samples = _residual_samples(op, m, Q, gen)
    value = base + float(samples.mean())
    stderr = float(samples.std() / math.sqrt(m)) if m > 1 else math.inf
    converged = None if rtol is None else stderr <= rtol * abs(value)
    return Estimate(value, stderr, m + 2 * k, converged)


def exact_diagonal(op: Operator, chunk_size: int = 256) -> torch.Tensor:
    """``diag(A)`` of a square operator from basis probes, flattened to ``(n,)``."""
    op.require_square("exact_diagonal")
    n = op.size_in
    out = []
    for start in range(0, n, chunk_size):
        c = min(chunk_size, n - start)
        E = torch.zeros(c, n, dtype=op.dtype, device=op.device)
        idx = torch.arange(c, device=op.device)
        E[idx, start + idx] = 1.0
        AE = flat(op.matmat(E.reshape(c, *op.shape_in)))
        out.append(AE[idx, start + idx])
    return torch.cat(out)


def orth_rows(Y: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows spanning the rows of ``Y`` (``(k, n)``, ``k <= n``)."""
    return torch.linalg.qr(Y.T).Q.T


def sketch(op: Operator, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``Q = orth(A S)`` for ``k`` random-sign ``S`` and ``A Q``, both ``(k, n)``; 2k matvecs."""
    S = rademacher(k, op.shape_in, op, gen)
    Q = orth_rows(flat(op.matmat(S)))
    AQ = flat(op.matmat(Q.reshape(k, *op.shape_in)))
    return Q, AQ


def _residual_samples(
    op: Operator, m: int, Q: torch.Tensor | None, gen: torch.Generator
) -> torch.Tensor:
    """``z'^T A z'`` for ``m`` random-sign ``z`` projected off ``Q`` (``z' = z`` if no ``Q``)."""
    if m <= 0:
        return torch.zeros(0, dtype=torch.float64)
    Z = flat(rademacher(m, op.shape_in, op, gen))
    if Q is not None:
        Z = Z - (Z @ Q.T) @ Q
    AZ = flat(op.matmat(Z.reshape(m, *op.shape_in)))
    return (Z * AZ).sum(1).double().cpu()


# ---------------------------------------------------------------------- XTrace
def _xtrace_adaptive(
    op: Operator, m: int, rtol: float | None, max_matvecs: int, gen: torch.Generator
) -> Estimate:
    total = 0
    while True:
        value, stderr = xtrace_estimate(op, m, gen)
        total += 2 * max(2, m // 2)
        converged = None if rtol is None else stderr <= rtol * abs(value)
        if converged is not False or 2 * m > max_matvecs - total:
            return Estimate(value, stderr, total, converged)
        m *= 2


def xtrace_estimate(op: Operator, m: int, gen: torch.Generator) -> tuple[float, float]:
    """XTrace with ``m // 2`` Gaussian test vectors (``m`` matvecs): ``(value, stderr)``.

    The estimate is the mean over ``i`` of the leave-one-out Hutch++ estimators
    ``t_i = tr(Q_i^T A Q_i) + ω_i^T (I − Q_i Q_i^T) A (I − Q_i Q_i^T) ω_i`` with
    ``Q_i = orth(A Ω_{-i})`` (Epperly, Tropp & Webber 2024). With ``QR = AΩ`` and ``s_i`` the
    normalized ``i``-th column of ``R^{-T}``, ``Q_i Q_i^T = Q (I − s_i s_i^T) Q^T``, so with
    ``H = Q^T A Q``, ``W = Q^T Ω``, ``T = (AQ)^T Ω`` and ``u_i = w_i − (s_i^T w_i) s_i``::

        t_i = tr H − s_i^T H s_i + w_i^T r_i − t_i^T u_i − u_i^T r_i + u_i^T H u_i,

    all in ``O(n m²)`` after the ``m`` matvecs; the spread of the ``t_i`` gives the error.
    """
    k = max(2, m // 2)
    n = op.size_in
    if k >= n:
        raise ValueError(f"xtrace needs fewer than 2n = {2 * n} matvecs; use method='exact'")
    Om = flat(gaussian(k, op.shape_in, op, gen)).double().T  # (n, k)
    Y = flat(op.matmat(Om.T.to(op.dtype).reshape(k, *op.shape_in))).double().T
    Q, R = torch.linalg.qr(Y)
    W = Q.T @ Om
    S = torch.linalg.inv(R).T
    S = S / torch.linalg.vector_norm(S, dim=0, keepdim=True)
    Z = flat(op.matmat(Q.T.to(op.dtype).reshape(k, *op.shape_in))).double().T  # A Q
    H = Q.T @ Z
    T = Z.T @ Om
    U = W - S * (S * W).sum(0)

    def dp(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return (A * B).sum(0)

    ests = torch.trace(H) - dp(S, H @ S) + dp(W, R) - dp(T, U) - dp(U, R) + dp(U, H @ U)
    return float(ests.mean()), float(ests.std() / math.sqrt(k))
