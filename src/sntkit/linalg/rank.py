"""Effective ranks of PSD operators (NTKs), with error bars.

* ``"participation"``: ``(tr A)² / ‖A‖_F²``. Both from one Hutch++-style sketch: with
  ``Q = orth(A S)``, ``tr A = tr(Q^T A Q) + E[z'^T A z']`` and
  ``‖A‖_F² = ‖A Q‖_F² + E[‖A z'‖²]`` for probes ``z'`` projected off ``Q`` (exact for symmetric
  ``A``); jackknife standard error over the probes. kpflow's default "effdim" squares the
  operator first; this is the participation ratio of ``A`` itself.
* ``"stable"``: ``tr A / λ_max`` (for ``A = J J^*``, the stable rank ``‖J‖_F²/‖J‖_2²`` of ``J``),
  ``λ_max`` by :func:`~sntkit.linalg.eigen.eigsh`, ``tr`` by Hutch++.
* ``"entropy"``: ``exp(H)``, ``H = −Σ p_i log p_i`` with ``p_i = λ_i / tr A`` (Roy & Vetterli
  2007), i.e. ``H = log tr A − tr(A log A)/tr A``, both traces by stochastic Lanczos quadrature
  on shared probes; jackknife standard error.

:func:`variance_rank` counts the leading eigenmodes that explain a fraction of ``tr A``.
"""

from __future__ import annotations

import torch

from sntkit.linalg.eigen import eigsh
from sntkit.linalg.estimate import Estimate, jackknife
from sntkit.linalg.lanczos import lanczos_quadrature
from sntkit.linalg.probes import flat, make_generator, rademacher
from sntkit.linalg.trace import sketch, trace
from sntkit.operators.base import Operator

KINDS = ("participation", "stable", "entropy")


def effective_rank(
    op: Operator,
    kind: str = "participation",
    num_matvecs: int = 64,
    *,
    lanczos_steps: int = 30,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Effective rank of a symmetric PSD operator (see module docstring for ``kind``)."""
    op.require_square("effective_rank")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    gen = make_generator(seed, generator)
    if kind == "participation":
        return _participation(op, num_matvecs, gen)
    if kind == "stable":
        tr = trace(op, "hutch++", num_matvecs, generator=gen)
        lam, _, info = eigsh(op, 1, generator=gen, return_info=True)
        top = float(lam[0])
        if top <= 0:
            raise ValueError("effective_rank: the operator's top eigenvalue is not positive")
        return Estimate(tr.value / top, tr.stderr / top, tr.num_matvecs + info.num_matvecs)
    return _entropy(op, num_matvecs, lanczos_steps, gen)


def _participation(op: Operator, m: int, gen: torch.Generator) -> Estimate:
    k = m // 3
    if k >= 1 and op.size_in > 2 * k:
        Q, AQ = sketch(op, k, gen)
        base = torch.tensor([float((Q * AQ).sum()), float(AQ.double().square().sum())])
        used, m = 2 * k, m - 2 * k
    else:
        Q, base, used = None, torch.zeros(2, dtype=torch.float64), 0
    m = max(2, m)
    Z = flat(rademacher(m, op.shape_in, op, gen))
    if Q is not None:
        Z = Z - (Z @ Q.T) @ Q
    AZ = flat(op.matmat(Z.reshape(m, *op.shape_in))).double()
    samples = torch.stack([(Z.double() * AZ).sum(1), AZ.square().sum(1)]).cpu()  # (2, m)

    def stat(x: torch.Tensor) -> torch.Tensor:
        return x[0] ** 2 / x[1]

    return jackknife(base, samples, stat, used + m)


def _entropy(op: Operator, m: int, steps: int, gen: torch.Generator) -> Estimate:
    steps = min(steps, op.size_in)
    probes = max(4, m // steps)
    Z = flat(rademacher(probes, op.shape_in, op, gen))
    theta, w = lanczos_quadrature(op, Z, steps)
    theta = theta.clamp_min(0)
    xlogx = torch.where(theta > 0, theta * theta.clamp_min(1e-300).log(), torch.zeros_like(theta))
    samples = torch.stack([(w * theta).sum(1), (w * xlogx).sum(1)]).cpu()  # tr A, tr A log A

    def stat(x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x[0].log() - x[1] / x[0])

    return jackknife(torch.zeros(2, dtype=torch.float64), samples, stat, probes * steps)


def variance_rank(
    op: Operator,
    fraction: float = 0.95,
    *,
    num_matvecs: int = 64,
    max_k: int = 256,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Number of leading eigenmodes whose eigenvalues sum to ``fraction · tr A``.

    The trace is estimated by Hutch++ (exact for operators of size <= ``num_matvecs``); the
    count at ``tr ± stderr`` sets the error bar. Eigenpairs come from :func:`eigsh` with ``k``
    doubling up to ``max_k``; if even ``max_k`` modes do not reach the fraction, the value is
    ``max_k`` with ``converged=False`` (a lower bound).
    """
    op.require_square("variance_rank")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    gen = make_generator(seed, generator)
    n = op.size_in
    tr = (
        trace(op, "exact") if n <= num_matvecs else trace(op, "hutch++", num_matvecs, generator=gen)
    )
    used = tr.num_matvecs
    k = min(8, n)
    while True:
        lam, _, info = eigsh(op, k, generator=gen, return_info=True)
        used += info.num_matvecs
        cum = torch.cumsum(lam.double().clamp_min(0), 0).cpu()
        if cum[-1] >= fraction * (tr.value + tr.stderr) or k >= min(n, max_k):
            break
        k = min(2 * k, n, max_k)

    def count(total: float) -> int:
        hit = (cum >= fraction * total).nonzero()
        return int(hit[0]) + 1 if hit.numel() else k

    value = count(tr.value)
    lo, hi = count(tr.value - tr.stderr), count(tr.value + tr.stderr)
    converged = bool(cum[-1] >= fraction * tr.value)
    return Estimate(float(value), (hi - lo) / 2, used, converged)
