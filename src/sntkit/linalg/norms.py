"""Frobenius norms, operator cosine similarity and relative distance, matrix-free.

All three come from the Frobenius inner products ``⟨A, B⟩_F = tr(A^* B)`` estimated with shared
random-sign probes ``z`` on the input space: ``E[(A z)·(B z)] = ⟨A, B⟩_F``. With
``method="hutch++"`` a third of the budget first builds a sketch ``Q = orth([A^*A S, B^*B S])``
of the dominant input directions; the products on ``Q`` are exact and the probes are projected
off ``Q``, so for the (low-rank) NTK only the small remainder is random. Standard errors of the
ratios come from the jackknife over the residual probes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sntkit.linalg.estimate import Estimate, jackknife
from sntkit.linalg.probes import flat, make_generator, rademacher
from sntkit.linalg.trace import orth_rows
from sntkit.operators.base import Operator

Stat = Callable[[torch.Tensor], torch.Tensor]


def frobenius_norm(
    op: Operator,
    method: str = "hutch++",
    num_matvecs: int = 64,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Estimate:
    """``‖A‖_F`` (``method``: ``"hutch++"``, ``"hutchinson"`` or ``"exact"``)."""
    if method == "exact":
        return Estimate(float(torch.linalg.matrix_norm(op.to_dense())), 0.0, op.size_in)
    return _estimate(op, None, method, num_matvecs, seed, generator, lambda x: x[0].sqrt())


def cosine_similarity(
    op1: Operator,
    op2: Operator,
    method: str = "hutch++",
    num_matvecs: int = 64,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Estimate:
    """``⟨A, B⟩_F / (‖A‖_F ‖B‖_F)`` — e.g. ``cos(NTK_S, V V^T ⊗ I)`` (paper 004 Fig. 3B)."""
    if method == "exact":
        A, B = op1.to_dense(), _dense_like(op2, op1)
        return Estimate(float((A * B).sum() / (A.norm() * B.norm())), 0.0, 2 * op1.size_in)
    return _estimate(
        op1, op2, method, num_matvecs, seed, generator, lambda x: x[2] / (x[0] * x[1]).sqrt()
    )


def compare(
    op1: Operator,
    op2: Operator,
    method: str = "hutch++",
    num_matvecs: int = 64,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Relative Frobenius distance ``‖A − B‖_F / ‖B‖_F``; ``op2`` is the reference."""
    if method == "exact":
        A, B = op1.to_dense(), _dense_like(op2, op1)
        return Estimate(float((A - B).norm() / B.norm()), 0.0, 2 * op1.size_in)
    return _estimate(op1, op2, method, num_matvecs, seed, generator, lambda x: (x[3] / x[1]).sqrt())


def _dense_like(op: Operator, ref: Operator) -> torch.Tensor:
    _check_pair(ref, op)
    return op.to_dense()


def _check_pair(A: Operator, B: Operator) -> None:
    if A.shape_in != B.shape_in or A.shape_out != B.shape_out:
        raise ValueError(
            f"operators must have the same shapes to be compared: {A.shape_in} -> {A.shape_out} "
            f"vs {B.shape_in} -> {B.shape_out}; reshape one with op.reshape(...)"
        )
    A._check_compatible(B, "comparison")


def _estimate(
    A: Operator,
    B: Operator | None,
    method: str,
    num_matvecs: int,
    seed: int | None,
    generator: torch.Generator | None,
    stat: Stat,
) -> Estimate:
    """Evaluate ``stat([‖A‖², ‖B‖², ⟨A,B⟩, ‖A−B‖²])`` with its jackknife standard error."""
    if method not in ("hutch++", "hutchinson"):
        raise ValueError(f"method must be 'hutch++', 'hutchinson' or 'exact', got {method!r}")
    if B is not None:
        _check_pair(A, B)
    ops = [A] if B is None else [A, B]
    per_probe = len(ops)
    gen = make_generator(seed, generator)
    exact = torch.zeros(4, dtype=torch.float64)
    Q = None
    used = 0
    s = num_matvecs // (6 * per_probe)
    if method == "hutch++" and s >= 1 and A.size_in > 2 * per_probe * s:
        S = rademacher(s, A.shape_in, A, gen)
        grams = [flat(op.rmatmat(op.matmat(S))) for op in ops]  # A^*A S (and B^*B S)
        Q = orth_rows(torch.cat(grams))
        used += 2 * per_probe * s
        exact = _moments(ops, Q, A).sum(1)
        used += per_probe * Q.shape[0]
    m = max(2, (num_matvecs - used) // per_probe)
    Z = flat(rademacher(m, A.shape_in, A, gen))
    if Q is not None:
        Z = Z - (Z @ Q.T) @ Q
    samples = _moments(ops, Z, A)  # (4, m)
    return jackknife(exact, samples, stat, used + per_probe * m)


def _moments(ops: list[Operator], Z: torch.Tensor, A: Operator) -> torch.Tensor:
    """Per-probe ``(|Az|², |Bz|², (Az)·(Bz), |Az − Bz|²)`` as a ``(4, m)`` float64 tensor."""
    probes = Z.reshape(Z.shape[0], *A.shape_in)
    a = flat(ops[0].matmat(probes)).double()
    b = flat(ops[1].matmat(probes)).double() if len(ops) == 2 else a
    return torch.stack(
        [a.square().sum(1), b.square().sum(1), (a * b).sum(1), (a - b).square().sum(1)]
    ).cpu()
