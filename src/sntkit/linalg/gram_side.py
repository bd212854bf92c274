"""Spectral estimators on the cheap side of a Gram operator ``G = J J^*``.

``G = J J^*`` (on ``n = J.size_out``) and its dual ``F = J^* J`` (on ``p = J.size_in``) have
the same nonzero eigenvalues, so (see :mod:`sntkit.operators.gram`)

* ``tr G = tr F``, ``‖G‖_F = ‖F‖_F`` and every effective rank agree: estimate them on ``F``;
* top eigenpairs: ``F v = λ v`` gives ``u = J v / √λ`` with ``G u = λ u`` — ``eigsh`` runs on
  ``F`` and maps back with ``k`` applications of ``J`` (``√λ = ‖J v‖``, used as the norm, so
  rounding in ``λ`` cannot unnormalize ``u``);
* a Gram is symmetric PSD, so its singular triplets are its eigenpairs (``U = V``);
* ``⟨G_1, G_2⟩_F = ‖J_1^* J_2‖_F²``, so ``cos(G_1, G_2) = ‖J_1^* J_2‖_F² / (‖F_1‖_F ‖F_2‖_F)``
  lives on the parameter sides ``p_1 × p_2``.

For the recurrent NTK, ``n = B·T·N`` and ``p = P``: at the paper-000 scale (``N = 64``,
``B = 256``, ``T = 25``) ``n = 409,600`` against ``P = 4,160``, and a Krylov method on ``G``
needs many more iterations than on ``F`` (benchmarks/gram_bench.py). The dispatch is the only
job of this module; the estimators themselves are unchanged and unaware of it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch

from sntkit.linalg.estimate import Estimate
from sntkit.linalg.probes import flat
from sntkit.operators.base import Operator
from sntkit.operators.gram import Gram

F = TypeVar("F", bound=Callable[..., Any])


def cheap_side(op: Operator) -> Operator:
    """``op.dual`` if ``op`` is a :class:`Gram` whose dual acts on a smaller space, else ``op``."""
    if isinstance(op, Gram) and op.factor.size_in < op.size_in:
        return op.dual
    return op


def map_back(gram: Gram, vectors: torch.Tensor) -> torch.Tensor:
    """Return unit eigenvectors ``u_i = J v_i / ‖J v_i‖`` of ``J J^*`` from ``v_i`` of ``J^* J``."""
    U = gram.factor.matmat(vectors)
    norms = torch.linalg.vector_norm(flat(U), dim=1).clamp_min(torch.finfo(U.dtype).tiny)
    return U / norms.reshape(-1, *([1] * (U.ndim - 1)))


def on_cheap_side(fn: F) -> F:
    """Run a spectral-invariant estimator (trace, norm, rank) of ``op`` on :func:`cheap_side`."""

    @functools.wraps(fn)
    def wrapper(op: Operator, *args: Any, **kwargs: Any) -> Any:
        return fn(cheap_side(op), *args, **kwargs)

    return cast(F, wrapper)


def eigenpairs_on_cheap_side(eigsh: F) -> F:
    """``eigsh`` of a Gram on its smaller side, eigenvectors mapped back (see module docstring).

    ``info.num_matvecs`` counts the applications of the small side plus the ``k`` map-back
    applications of ``J``; ``info.residuals`` are those of the small-side pairs. When ``k``
    exceeds the small side's dimension (zero eigenvalues wanted) ``eigsh`` runs on ``op``.
    """

    @functools.wraps(eigsh)
    def wrapper(op: Operator, k: int = 6, *args: Any, return_info: bool = False, **kw: Any) -> Any:
        small = cheap_side(op)
        # cheap_side swaps only a Gram, so isinstance(op, Gram) holds when small is not op
        if small is op or not isinstance(op, Gram) or not isinstance(k, int) or k > small.size_in:
            return eigsh(op, k, *args, return_info=return_info, **kw)
        values, vectors, info = eigsh(small, k, *args, return_info=True, **kw)
        U = map_back(op, vectors)
        if not return_info:
            return values, U
        return values, U, dataclasses.replace(info, num_matvecs=info.num_matvecs + k)

    return cast(F, wrapper)


def gram_svds(eigsh: Callable[..., Any], op: Gram, k: int, return_info: bool, kw: dict) -> Any:
    """Singular triplets of the PSD ``op`` as its eigenpairs: ``(U, λ, U)``."""
    values, U, info = eigsh(op, k, return_info=True, **kw)
    return (U, values, U, info) if return_info else (U, values, U)


def uses_gram_cosine(op1: Operator, op2: Operator) -> bool:
    """Whether :func:`gram_cosine` is cheaper: two Grams on one space with small factors."""
    return (
        isinstance(op1, Gram)
        and isinstance(op2, Gram)
        and op1.shape_in == op2.shape_in
        and max(op1.factor.size_in, op2.factor.size_in) < op1.size_in
    )


def gram_cosine(
    frobenius_norm: Callable[..., Estimate], op1: Gram, op2: Gram, **kw: Any
) -> Estimate:
    """``cos(G_1, G_2) = ‖J_1^* J_2‖_F² / (‖J_1^* J_1‖_F ‖J_2^* J_2‖_F)``.

    The three norms are estimated independently (``kw`` go to ``frobenius_norm``, seeds
    offset per term); the standard error is the delta method for independent errors,
    ``cos · sqrt((2 s_c/c)² + (s_1/f_1)² + (s_2/f_2)²)``.
    """
    op1._check_compatible(op2, "cosine_similarity(op1, op2)")
    cross = op1.factor.T @ op2.factor
    seed = kw.pop("seed", None)
    ests = [
        frobenius_norm(a, seed=None if seed is None else seed + i, **kw)
        for i, a in enumerate((cross, op1.dual, op2.dual))
    ]
    c, f1, f2 = ests
    for name, est in (("op1", f1), ("op2", f2)):
        if est.value <= 0:
            raise ValueError(
                f"cosine_similarity: {name} has zero Frobenius norm, so the ratio is undefined; "
                f"check that {name} is not the zero operator"
            )
    value = c.value**2 / (f1.value * f2.value)
    rel = [2 * c.stderr / c.value if c.value > 0 else 0.0, f1.stderr / f1.value]
    rel.append(f2.stderr / f2.value)
    stderr = abs(value) * math.sqrt(sum(r * r for r in rel))
    return Estimate(value, stderr, sum(e.num_matvecs for e in ests))
