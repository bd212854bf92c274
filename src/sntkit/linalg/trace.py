"""Trace estimation: Hutchinson, Hutch++, XTrace and the exact diagonal (paper 004 App. A.1).

For a square operator ``A`` on ``R^n`` (any tensor shape), with budgets counted in applications
of ``A`` (one per probe):

* ``"hutchinson"``: ``tr A ≈ (1/m) Σ z_i^T A z_i`` with random signs ``z_i``; standard error
  ``std(z_i^T A z_i)/√m``. Error ``O(‖A‖_F/√m)``.
* ``"hutch++"`` (Meyer, Musco, Musco & Woodruff 2021): the budget is split evenly in thirds —
  ``m/3`` sign vectors ``S``, ``Q = orth(A S)``, ``A Q`` (``m/3``), and Hutchinson with the
  remaining ``m/3`` probes ``z' = (I − QQ^T) z`` on the deflated remainder:
  ``tr A = tr(Q^T A Q) + E[z'^T A z']``. The standard error is that of the Hutchinson part (the
  sketch part is exact given ``Q``, and the sum is unbiased for every ``Q``). Error
  ``O(‖A‖_*/m)`` instead of ``O(‖A‖_F/√m)``: far better on the low-rank NTK. The even split
  is the one Meyer et al. analyse; kpflow splits unevenly.
* ``"xtrace"`` (Epperly, Tropp & Webber 2024): see :mod:`sntkit.linalg.xtrace`.
* ``"exact"``: the sum of the diagonal from basis probes, ``n`` applications in batched chunks.

With ``rtol`` the estimate is adaptive: rounds of new probes are added — each round as many
operator applications as all previous rounds together — until ``stderr <= rtol·|value|`` or
``max_matvecs`` is spent. Nothing is thrown away between rounds: Hutchinson pools its samples;
Hutch++ grows its sketch by the new ``A S`` orthogonalized against the old ``Q`` (so the old
``A Q`` stays valid) and re-projects the stored residual probes and their images on the grown
``Q`` without new applications; XTrace extends its QR factorization. That costs the probes and
their images in memory, ``O(num_matvecs · n)``, as does applying the operator to all of them
at once. :attr:`Estimate.converged` reports whether the target was met, and a RuntimeWarning
is issued when it was not. Like any rule that stops on an estimated error, this one makes the
adaptive estimate slightly biased toward draws with a small spread (measured: a few tenths of
its standard error for Hutch++ on a decaying spectrum).
"""

from __future__ import annotations

import math
import warnings
from typing import Protocol

import torch

from sntkit.linalg.estimate import Estimate
from sntkit.linalg.gram_side import on_cheap_side
from sntkit.linalg.orthogonal import orth_against
from sntkit.linalg.probes import basis_blocks, flat, make_generator, rademacher
from sntkit.linalg.xtrace import XTrace
from sntkit.operators.base import Operator
from sntkit.operators.validation import choice, finite, positive_int, require_square

METHODS = ("hutch++", "hutchinson", "xtrace", "exact")


class TraceState(Protocol):
    """An estimator that can take more probes without discarding the ones it has."""

    num_matvecs: int
    min_round: int

    def add(self, budget: int) -> None:
        """Spend at most ``budget`` further operator applications."""

    def estimate(self) -> tuple[float, float]:
        """``(value, stderr)`` from every probe so far."""


@on_cheap_side
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
    """Estimate ``tr(op)`` of a square operator (see the module docstring for the methods).

    Parameters
    ----------
    op:
        Square operator (``shape_in == shape_out``); it need not be symmetric.
    method:
        ``"hutch++"`` (default), ``"hutchinson"``, ``"xtrace"`` or ``"exact"``.
    num_matvecs:
        Operator applications of the (first) round; XTrace needs at least 4.
    rtol:
        If given, add rounds until ``stderr <= rtol·|value|`` or ``max_matvecs`` is spent.
    seed, generator:
        Randomness (CPU); pass one or neither (default seed 0).
    chunk_size:
        Basis probes per batched call for ``"exact"``.
    """
    where = "trace"
    require_square(op, "op", where)
    choice(method, "method", where, METHODS)
    if method == "exact":
        value = float(exact_diagonal(op, chunk_size).double().sum())
        converged = None if rtol is None else True
        return Estimate(finite(value, "the trace", where), 0.0, op.size_in, converged)
    positive_int(num_matvecs, "num_matvecs", where, 4 if method == "xtrace" else 1)
    if rtol is not None:
        if not (isinstance(rtol, int | float) and math.isfinite(rtol) and rtol > 0):
            raise ValueError(f"{where}: rtol must be a positive number or None, got {rtol!r}")
        positive_int(max_matvecs, "max_matvecs", where, num_matvecs)
    gen = make_generator(seed, generator)
    if method == "xtrace":
        state: TraceState = XTrace(op, gen)
    else:
        state = Hutch(op, gen, deflate=method == "hutch++")
    return run_rounds(state, num_matvecs, rtol, max_matvecs, where)


def run_rounds(
    state: TraceState, budget: int, rtol: float | None, max_matvecs: int, where: str
) -> Estimate:
    """Spend ``budget``, then (with ``rtol``) double the total until the target or the cap."""
    state.add(budget)
    value, stderr = state.estimate()
    converged = None
    if rtol is not None:
        while not (converged := stderr <= rtol * abs(value)):
            step = min(state.num_matvecs, max_matvecs - state.num_matvecs)
            if step < state.min_round:
                warnings.warn(
                    f"{where}: stderr {stderr:.3g} is above rtol·|value| = {rtol * abs(value):.3g}"
                    f" after {state.num_matvecs} matvecs (max_matvecs={max_matvecs}); the "
                    f"estimate is returned with converged=False — raise max_matvecs or rtol",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            state.add(step)
            value, stderr = state.estimate()
    return Estimate(
        finite(value, "the trace estimate", where), stderr, state.num_matvecs, converged
    )


class Hutch:
    """Hutchinson (``deflate=False``) or Hutch++ (``deflate=True``), growable by rounds.

    Keeps the sketch basis ``Q`` with ``A Q`` and the residual sign probes ``Z`` with ``A Z``;
    the deflated samples ``z'^T A z'`` with ``z' = (I − QQ^T) z`` use
    ``A z' = A z − (A Q)(Q^T z)``, so they are recomputed for a grown ``Q`` for free.
    """

    def __init__(self, op: Operator, gen: torch.Generator, *, deflate: bool) -> None:
        self.op, self.gen, self.deflate = op, gen, deflate
        empty = torch.zeros(0, op.size_in, dtype=op.dtype, device=op.device)
        self.Q, self.AQ, self.Z, self.AZ = empty, empty, empty, empty
        self.num_matvecs = 0
        self.min_round = 1

    def _apply(self, X: torch.Tensor) -> torch.Tensor:
        self.num_matvecs += X.shape[0]
        return flat(self.op.matmat(X.reshape(X.shape[0], *self.op.shape_in)))

    def add(self, budget: int) -> None:
        """Spend ``budget`` more matvecs (a third on the deflation basis when deflating)."""
        start = self.num_matvecs
        s = budget // 3 if self.deflate else 0
        if s:
            Y = self._apply(rademacher(s, self.op.shape_in, self.op, self.gen))
            Qn = orth_against(Y, self.Q)
            if Qn.shape[0]:
                self.Q = torch.cat([self.Q, Qn])
                self.AQ = torch.cat([self.AQ, self._apply(Qn)])
        m = budget - (self.num_matvecs - start)
        if m:
            Z = flat(rademacher(m, self.op.shape_in, self.op, self.gen))
            self.Z = torch.cat([self.Z, Z])
            self.AZ = torch.cat([self.AZ, self._apply(Z)])

    def deflated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the residual probes projected off ``Q``, ``z'``, and their images ``A z'``."""
        C = self.Z @ self.Q.T
        return self.Z - C @ self.Q, self.AZ - C @ self.AQ

    def estimate(self) -> tuple[float, float]:
        """Return the trace estimate and its standard error from the probes so far."""
        base = float((self.Q.double() * self.AQ.double()).sum())
        m = self.Z.shape[0]
        if m == 0:
            return base, (0.0 if self.Q.shape[0] == self.op.size_in else math.inf)
        Zp, AZp = self.deflated()
        samples = (Zp.double() * AZp.double()).sum(1)
        stderr = float(samples.std()) / math.sqrt(m) if m > 1 else math.inf
        return base + float(samples.mean()), stderr


def exact_diagonal(op: Operator, chunk_size: int = 256) -> torch.Tensor:
    """``diag(A)`` of a square operator from basis probes, shaped like ``op.shape_in``.

    ``size_in`` applications in batched chunks of ``chunk_size`` (``O(chunk_size · n)`` memory).
    """
    require_square(op, "op", "exact_diagonal")
    parts = []
    for index, E in basis_blocks(op, chunk_size):
        AE = flat(op.matmat(E))
        parts.append(AE[torch.arange(AE.shape[0], device=AE.device), index])
    return torch.cat(parts).reshape(op.shape_in)
