"""Frobenius norms, operator cosine similarity and relative distance, matrix-free.

All three are functions of the Frobenius inner products ``⟨A, B⟩_F = tr(A^* B)``, estimated
from shared random-sign probes ``z`` of the input space: ``E[(A z)·(B z)] = ⟨A, B⟩_F``.

``method="hutch++"`` (default) is Hutch++ on ``A^* A`` (and ``B^* B``): a sixth of the budget
builds ``Q = orth([A^*A S, B^*B S])`` from sign vectors ``S`` (each costs an ``A`` and an
``A^*``), the inner products restricted to ``Q`` are computed exactly (``A Q``, ``B Q``), and
the remaining probes are projected off ``Q``, so that ``⟨A, B⟩ = ⟨AQ, BQ⟩ + E[(A z')·(B z')]``
with ``z' = (I − QQ^T) z``. Why: with ``m`` probes Hutchinson's relative error on ``‖A‖_F²`` is
``≈ sqrt(2/m) · ‖A^*A‖_F / ‖A‖_F²``, which for ``r`` comparable singular values is
``sqrt(2/(m r))`` — it does not improve with low rank. The sketch instead captures the top
right singular directions exactly, and only the tail beyond them is random: an operator of rank
below the sketch size (the NTK ``J J^*`` with few parameters, the Kronecker core
``V V^T ⊗ I``) is measured exactly, and a decaying spectrum leaves a small, low-variance
remainder. ``method="hutchinson"`` spends every probe on the plain estimator;
``method="exact"`` sums over basis probes (``size_in`` applications per operator, chunked).

The ratios (cosine, relative distance, the square root) get their standard errors from the
jackknife over the random probes (:func:`sntkit.linalg.estimate.jackknife`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sntkit.linalg.estimate import Estimate, jackknife
from sntkit.linalg.gram_side import gram_cosine, on_cheap_side, uses_gram_cosine
from sntkit.linalg.orthogonal import orth_against
from sntkit.linalg.probes import basis_blocks, flat, make_generator, rademacher
from sntkit.operators.base import Operator
from sntkit.operators.gram import Gram
from sntkit.operators.validation import (
    choice,
    finite,
    positive_int,
    require_operator,
    require_same_space,
)

METHODS = ("hutch++", "hutchinson", "exact")
Stat = Callable[[torch.Tensor], torch.Tensor]


@on_cheap_side
def frobenius_norm(
    op: Operator,
    method: str = "hutch++",
    num_matvecs: int = 64,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 256,
) -> Estimate:
    """``‖A‖_F = sqrt(tr(A^* A))`` of any (not necessarily square) operator.

    ``method``: ``"hutch++"`` (default, see the module docstring), ``"hutchinson"`` or
    ``"exact"``; ``num_matvecs`` counts applications of ``A`` and ``A^*``.
    """
    require_operator(op, "op", "frobenius_norm")
    return _estimate(
        "frobenius_norm", op, None, method, num_matvecs, seed, generator, chunk_size, _fro, ()
    )


def cosine_similarity(
    op1: Operator,
    op2: Operator,
    method: str = "hutch++",
    num_matvecs: int = 64,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 256,
) -> Estimate:
    """Return ``⟨A, B⟩_F / (‖A‖_F ‖B‖_F)`` for ``A = op1``, ``B = op2`` on the same spaces.

    E.g. ``cos(NTK_S, V V^T ⊗ I)`` (paper 004, Fig. 3B). All three inner products come from
    the same probes, so their errors are correlated and partly cancel in the ratio; the
    standard error is the jackknife over those probes. Two Gram operators ``J_i J_i^*`` with
    smaller factor domains are compared on those (:func:`sntkit.linalg.gram_side.gram_cosine`).
    """
    if isinstance(op1, Gram) and isinstance(op2, Gram) and uses_gram_cosine(op1, op2):
        kw: dict[str, Any] = {"method": method, "num_matvecs": num_matvecs}
        kw["chunk_size"] = chunk_size
        if generator is not None:
            kw["generator"] = generator
        return gram_cosine(frobenius_norm, op1, op2, seed=seed, **kw)
    return _estimate(
        "cosine_similarity",
        op1,
        op2,
        method,
        num_matvecs,
        seed,
        generator,
        chunk_size,
        _cos,
        ("op1", "op2"),
    )


def compare(
    op1: Operator,
    op2: Operator,
    method: str = "hutch++",
    num_matvecs: int = 64,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 256,
) -> Estimate:
    """Relative Frobenius distance ``‖A − B‖_F / ‖B‖_F``; ``op2`` (``B``) is the reference.

    Not symmetric in its arguments: the error of ``op1`` is measured relative to the size of
    ``op2`` (paper 004, App. A.1.2: ``kop.compare(V V^T ⊗ I)``). ``‖A − B‖_F²`` is estimated
    from ``‖(A − B) z‖²`` per probe, never as a difference of large numbers, so nearly equal
    operators get an accurate small distance.
    """
    return _estimate(
        "compare", op1, op2, method, num_matvecs, seed, generator, chunk_size, _cmp, ("op2",)
    )


def _fro(x: torch.Tensor) -> torch.Tensor:
    return x[0].clamp_min(0).sqrt()


def _cos(x: torch.Tensor) -> torch.Tensor:
    return x[2] / (x[0] * x[1]).sqrt()


def _cmp(x: torch.Tensor) -> torch.Tensor:
    return (x[3] / x[1]).clamp_min(0).sqrt()


def _estimate(
    where: str,
    A: Operator,
    B: Operator | None,
    method: str,
    num_matvecs: int,
    seed: int | None,
    generator: torch.Generator | None,
    chunk_size: int,
    stat: Stat,
    nonzero: tuple[str, ...],
) -> Estimate:
    """``stat`` of the moments ``[‖A‖², ‖B‖², ⟨A,B⟩, ‖A−B‖²]`` with its standard error."""
    ops = [A] if B is None else [A, B]
    if B is not None:
        require_operator(A, "op1", where)
        require_operator(B, "op2", where)
        require_same_space(A, B, where)
    choice(method, "method", where, METHODS)
    p = len(ops)
    if method == "exact":
        blocks = basis_blocks(A, chunk_size)
        total = torch.stack([_moments(ops, E).sum(1) for _, E in blocks]).sum(0)
        _require_nonzero(total, nonzero, where)
        value = finite(float(stat(total)), "the estimate", where)
        return Estimate(value, 0.0, p * A.size_in)
    positive_int(num_matvecs, "num_matvecs", where, 2 * p)
    gen = make_generator(seed, generator)
    base = torch.zeros(4, dtype=torch.float64)
    Q, used = None, 0
    s = num_matvecs // (6 * p)
    if method == "hutch++" and s:
        S = rademacher(s, A.shape_in, A, gen)
        Q = orth_against(torch.cat([flat(op.rmatmat(op.matmat(S))) for op in ops]), None)
        used = 2 * p * s + p * Q.shape[0]
        base = _moments(ops, Q.reshape(-1, *A.shape_in)).sum(1)
    m = max(2, (num_matvecs - used) // p)
    Z = flat(rademacher(m, A.shape_in, A, gen))
    if Q is not None:
        Z = Z - (Z @ Q.T) @ Q
    samples = _moments(ops, Z.reshape(m, *A.shape_in))
    _require_nonzero(base + samples.mean(1), nonzero, where)
    est = jackknife(base, samples, stat, used + p * m)
    finite(est.value, "the estimate", where)
    return est


def _moments(ops: list[Operator], X: torch.Tensor) -> torch.Tensor:
    """Per-probe ``(‖Ax‖², ‖Bx‖², (Ax)·(Bx), ‖Ax − Bx‖²)`` as a ``(4, k)`` float64 CPU tensor."""
    a = flat(ops[0].matmat(X)).double()
    if len(ops) == 1:
        sq = a.square().sum(1)
        return torch.stack([sq, sq, sq, torch.zeros_like(sq)]).cpu()
    b = flat(ops[1].matmat(X)).double()
    return torch.stack(
        [a.square().sum(1), b.square().sum(1), (a * b).sum(1), (a - b).square().sum(1)]
    ).cpu()


def _require_nonzero(moments: torch.Tensor, names: tuple[str, ...], where: str) -> None:
    """Raise if ``op1`` (moment 0) or ``op2`` (moment 1), where a ratio divides by it, is zero."""
    for name in names:
        if float(moments[0 if name == "op1" else 1]) <= 0:
            raise ValueError(
                f"{where}: {name} has zero Frobenius norm on every probe, so the ratio is "
                f"undefined; check that {name} is not the zero operator"
            )
