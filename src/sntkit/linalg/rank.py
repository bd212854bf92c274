"""Effective ranks of symmetric positive semidefinite operators (NTKs), with error bars.

For ``A ⪰ 0`` with eigenvalues ``λ_i`` and ``p_i = λ_i / tr A``:

* ``"participation"``: ``(tr A)² / ‖A‖_F² = (Σ λ_i)² / Σ λ_i²``. Both from one Hutch++ sketch
  ``Q = orth(A S)``: ``tr A = tr(Q^T A Q) + E[z'^T A z']`` and
  ``‖A‖_F² = ‖A Q‖_F² + E[‖A z'‖²]`` for sign probes ``z'`` projected off ``Q``, so the top
  modes, which dominate both, are exact. (kpflow's default "effdim" squares the operator
  first; this is the participation ratio of ``A`` itself, paper 004 Sec. 5.3.)
* ``"stable"``: ``tr A / λ_max`` — for ``A = J J^*`` the stable rank ``‖J‖_F² / ‖J‖_2²`` of
  ``J``; ``tr`` by Hutch++, ``λ_max`` by :func:`~sntkit.linalg.eigen.eigsh` to ``tol`` (its
  error is negligible next to the trace's, which sets the error bar).
* ``"entropy"``: ``exp(H)`` with the spectral entropy ``H = −Σ p_i log p_i`` (Roy & Vetterli
  2007), i.e. ``H = log tr A − tr(A log A) / tr A``; both traces from the same stochastic
  Lanczos quadrature vectors (:mod:`sntkit.linalg.lanczos`), deflated as in Hutch++: with
  ``v = num_matvecs // lanczos_steps`` quadrature vectors (each costs ``lanczos_steps``
  applications), ``v/2`` of them are the orthonormal sketch ``Q = orth(A S)``, whose part
  ``tr(Q^T f(A) Q) = Σ_i q_i^T f(A) q_i`` has no probe noise, and the others are sign probes
  projected off ``Q``. An operator of rank below ``v/2`` is then measured without probe noise
  (the NTK case); on a slowly decaying spectrum the split costs a little variance.

Error bars are the jackknife over the random probes (first-order equal to the delta method).
``method="exact"`` uses the dense eigenvalues instead (``size_in`` applications plus an
``O(n³)`` eigendecomposition); the default ``"auto"`` does so when ``size_in <= num_matvecs``,
where it is both cheaper and exact. :func:`variance_rank` counts the leading modes that explain
a fraction of the trace.
"""

from __future__ import annotations

import math

import torch

from sntkit.linalg.eigen import eigsh
from sntkit.linalg.estimate import Estimate, jackknife
from sntkit.linalg.gram_side import on_cheap_side
from sntkit.linalg.lanczos import lanczos_quadrature
from sntkit.linalg.orthogonal import orth_against
from sntkit.linalg.probes import flat, make_generator, rademacher
from sntkit.linalg.trace import Hutch, trace
from sntkit.operators.base import Operator
from sntkit.operators.validation import (
    choice,
    finite,
    positive_int,
    require_square,
    require_symmetric,
)

KINDS = ("participation", "stable", "entropy")
METHODS = ("auto", "randomized", "exact")


@on_cheap_side
def effective_rank(
    op: Operator,
    kind: str = "participation",
    num_matvecs: int = 64,
    *,
    method: str = "auto",
    lanczos_steps: int = 20,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Effective rank of a symmetric PSD operator (see the module docstring for ``kind``).

    ``num_matvecs`` is the budget of the randomized part (for ``"stable"``, of the trace; the
    eigensolver adds its own, reported in ``num_matvecs`` of the result); ``lanczos_steps`` the
    quadrature nodes per vector for ``"entropy"`` (``num_matvecs // lanczos_steps`` vectors).
    ``method``: ``"randomized"``, ``"exact"`` (dense eigenvalues: ``size_in`` applications and
    ``O(size_in²)`` memory) or ``"auto"`` (exact when ``size_in <= num_matvecs``).
    """
    where = "effective_rank"
    require_square(op, "op", where)
    choice(kind, "kind", where, KINDS)
    choice(method, "method", where, METHODS)
    positive_int(num_matvecs, "num_matvecs", where, 2)
    positive_int(lanczos_steps, "lanczos_steps", where)
    gen = make_generator(seed, generator)
    exact = method == "exact" or (method == "auto" and op.size_in <= num_matvecs)
    if kind == "stable":
        est = _stable(op, num_matvecs, exact, gen)
    elif exact:
        est = _exact(op, kind)
    elif kind == "participation":
        est = _participation(op, num_matvecs, gen)
    else:
        est = _entropy(op, num_matvecs, lanczos_steps, gen)
    finite(est.value, f"the {kind} rank", where)
    return est


def participation_ratio(M: torch.Tensor) -> float:
    """``(tr M)² / ‖M‖_F² = (Σ λ_i)² / Σ λ_i²`` of a dense symmetric PSD matrix ``M`` (n, n).

    The exact participation ratio of a small matrix (a view built densely, the covariance
    ``XᵀX`` of a data matrix), computed in float64 without an eigendecomposition.
    """
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"M must be a non-empty square matrix, got shape {tuple(M.shape)}")
    M = M.double()
    return float(torch.trace(M) ** 2 / M.square().sum())


def _exact(op: Operator, kind: str) -> Estimate:
    lam = _eigenvalues(op, "effective_rank")
    if kind == "participation":
        value = lam.sum() ** 2 / lam.square().sum()
    else:
        p = lam / lam.sum()
        value = torch.exp(-torch.special.xlogy(p, p).sum())
    return Estimate(float(value), 0.0, op.size_in)


def _eigenvalues(op: Operator, where: str) -> torch.Tensor:
    """Dense eigenvalues (descending, float64) of a symmetric PSD operator, validated."""
    M = op.to_dense().double()
    require_symmetric(M, op.dtype, "op", where)
    lam = torch.linalg.eigvalsh((M + M.T) / 2).flip(0).cpu()
    _require_psd(lam, op.dtype, where)
    return lam.clamp_min(0)


def _require_psd(nodes: torch.Tensor, dtype: torch.dtype, where: str) -> None:
    """Raise if eigenvalues (or Ritz values) are clearly negative or all zero."""
    top = float(nodes.max())
    if top <= 0 or float(nodes.min()) < -math.sqrt(torch.finfo(dtype).eps) * top:
        raise ValueError(
            f"{where}: op must be positive semidefinite and nonzero, but it has eigenvalues "
            f"in [{float(nodes.min()):.3g}, {top:.3g}]; effective ranks are defined for PSD "
            f"operators such as an NTK J J^*"
        )


def _stable(op: Operator, m: int, exact: bool, gen: torch.Generator) -> Estimate:
    tr = trace(op, "exact") if exact else trace(op, "hutch++", m, generator=gen)
    lam, _, info = eigsh(op, 1, generator=gen, return_info=True)
    top = float(lam[0])
    if top <= 0 or tr.value < 0:
        raise ValueError(
            f"effective_rank: op must be positive semidefinite and nonzero, but its top "
            f"eigenvalue is {top:.3g} and its trace {tr.value:.3g}"
        )
    return Estimate(tr.value / top, tr.stderr / top, tr.num_matvecs + info.num_matvecs)


def _participation(op: Operator, m: int, gen: torch.Generator) -> Estimate:
    state = Hutch(op, gen, deflate=True)
    state.add(m)
    Q, AQ = state.Q.double(), state.AQ.double()
    Zp, AZp = (X.double() for X in state.deflated())
    _check_projection(torch.cat([Q, Zp]), torch.cat([AQ, AZp]), op.dtype)
    base = torch.stack([(Q * AQ).sum(), AQ.square().sum()]).cpu()
    samples = torch.stack([(Zp * AZp).sum(1), AZp.square().sum(1)]).cpu()
    return jackknife(base, samples, lambda x: x[0] ** 2 / x[1], state.num_matvecs)


def _check_projection(X: torch.Tensor, AX: torch.Tensor, dtype: torch.dtype) -> None:
    """Symmetry and semidefiniteness of ``A`` as seen on the rows of ``X`` (no new products).

    ``H = X̂ A X̂^T`` on the normalized rows is symmetric and PSD whenever ``A`` is; an
    indefinite ``A`` shows negative eigenvalues of ``H`` for almost every draw.
    """
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True).clamp_min(1e-300)
    H = (X / norms) @ (AX / norms).T
    require_symmetric(H, dtype, "op", "effective_rank")
    _require_psd(torch.linalg.eigvalsh((H + H.T) / 2).cpu(), dtype, "effective_rank")


def _entropy(op: Operator, m: int, steps: int, gen: torch.Generator) -> Estimate:
    steps = min(steps, op.size_in)
    vectors = max(2, m // steps)  # quadrature start vectors the budget affords
    s = vectors // 2 if vectors >= 4 else 0
    Q = torch.zeros(0, op.size_in, dtype=op.dtype, device=op.device)
    if s:  # deflate the top of the spectrum, as in Hutch++: Q = orth(A S)
        Q = orth_against(flat(op.matmat(rademacher(s, op.shape_in, op, gen))), None)
    q = Q.shape[0]
    Z = flat(rademacher(vectors - q, op.shape_in, op, gen))
    Z = Z - (Z @ Q.T) @ Q
    theta, w = lanczos_quadrature(op, torch.cat([Q, Z]), steps, "effective_rank")
    _require_psd(theta, op.dtype, "effective_rank")
    theta = theta.clamp_min(0)
    f = torch.stack([(w * theta).sum(1), (w * torch.special.xlogy(theta, theta)).sum(1)]).cpu()

    def stat(x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x[0].log() - x[1] / x[0])

    return jackknife(f[:, :q].sum(1), f[:, q:], stat, s + vectors * steps)


def variance_rank(
    op: Operator,
    fraction: float = 0.95,
    *,
    num_matvecs: int = 64,
    max_k: int = 256,
    method: str = "auto",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Return the number of leading eigenmodes of a PSD operator reaching ``fraction · tr A``.

    Randomized: ``tr A`` by Hutch++ (``num_matvecs``), the leading eigenvalues by
    :func:`eigsh` with ``k`` doubling from 8 up to ``max_k``; the counts at ``tr ± stderr`` set
    the error bar. If even ``max_k`` modes do not reach the fraction, the value is ``max_k``
    with ``converged=False`` (a lower bound). ``method="exact"`` (and ``"auto"`` when
    ``size_in <= num_matvecs``) counts on the dense eigenvalues.
    """
    where = "variance_rank"
    require_square(op, "op", where)
    if not (isinstance(fraction, int | float) and 0 < fraction <= 1):
        raise ValueError(f"{where}: fraction must be in (0, 1], got {fraction!r}")
    choice(method, "method", where, METHODS)
    positive_int(num_matvecs, "num_matvecs", where)
    positive_int(max_k, "max_k", where)
    gen = make_generator(seed, generator)
    n = op.size_in
    if method == "exact" or (method == "auto" and n <= num_matvecs):
        lam = _eigenvalues(op, where)
        cum = torch.cumsum(lam, 0)
        return Estimate(float(_count(cum, fraction * float(cum[-1]))), 0.0, n)
    tr = trace(op, "hutch++", num_matvecs, generator=gen)
    used = tr.num_matvecs
    k = min(8, n, max_k)
    while True:
        lam, _, info = eigsh(op, k, generator=gen, return_info=True)
        used += info.num_matvecs
        cum = torch.cumsum(lam.double().clamp_min(0), 0).cpu()
        if float(cum[-1]) >= fraction * (tr.value + tr.stderr) or k >= min(n, max_k):
            break
        k = min(2 * k, n, max_k)
    value = _count(cum, fraction * tr.value)
    lo, hi = (
        _count(cum, fraction * (tr.value - tr.stderr)),
        _count(cum, fraction * (tr.value + tr.stderr)),
    )
    converged = bool(float(cum[-1]) >= fraction * tr.value)
    return Estimate(float(value), (hi - lo) / 2, used, converged)


def _count(cum: torch.Tensor, target: float) -> int:
    """Leading modes needed for the cumulative eigenvalue sum ``cum`` to reach ``target``."""
    hit = (cum >= target).nonzero()
    return int(hit[0]) + 1 if hit.numel() else cum.numel()
