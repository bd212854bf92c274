"""The result type of every randomized estimator, and the jackknife for functions of means."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Estimate:
    """A randomized estimate with its standard error.

    ``value`` is the estimate; ``stderr`` its estimated standard error (``0`` for exact
    computations, ``inf`` when a single sample leaves it unknown); ``num_matvecs`` the operator
    applications it cost (one per probe, counting ``A`` and ``A^*`` alike); ``converged`` whether
    an adaptive accuracy target was met (``None`` when no target was set). ``float(est)`` is the
    value; ``repr`` prints the value to the precision its error bar supports, e.g.
    ``1.234 ± 0.005 (96 matvecs)``.
    """

    value: float
    stderr: float
    num_matvecs: int
    converged: bool | None = None

    def __float__(self) -> float:
        return float(self.value)

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """``value ± z·stderr`` (a normal-approximation confidence interval)."""
        return self.value - z * self.stderr, self.value + z * self.stderr

    def __repr__(self) -> str:
        flag = ", not converged" if self.converged is False else ""
        return f"{_format(self.value, self.stderr)} ({self.num_matvecs} matvecs{flag})"


def _format(value: float, stderr: float) -> str:
    if stderr == 0 or not math.isfinite(stderr) or not math.isfinite(value):
        return f"{value:.6g}" if stderr == 0 else f"{value:.6g} ± {stderr:g}"
    exponent = math.floor(math.log10(stderr))
    # one significant digit of the error (two if it starts with a 1), value to the same place
    digits = max(0, -exponent + (1 if f"{stderr:e}".startswith("1") else 0))
    if digits > 12 or max(abs(value), stderr) >= 1e7:
        return f"{value:.6g} ± {stderr:.2g}"
    return f"{value:.{digits}f} ± {stderr:.{digits}f}"


def jackknife(
    base: torch.Tensor,
    samples: torch.Tensor,
    stat: Callable[[torch.Tensor], torch.Tensor],
    num_matvecs: int,
) -> Estimate:
    """``stat(base + mean(samples))`` with its jackknife standard error.

    ``base`` holds exact parts of ``q`` quantities (``(q,)``) and ``samples`` their per-probe
    random parts (``(q, m)``, i.i.d. over the ``m`` columns); ``stat`` maps a ``(q, ...)`` tensor
    of quantities to a value, vectorized over trailing axes. The leave-one-out values give the
    standard error of a nonlinear function of means (a ratio such as ``tr² / ‖·‖_F²``): to first
    order it equals the delta-method error ``sqrt(∇stat^T Σ ∇stat / m)``, without derivatives, and
    it is less optimistic when ``m`` is small. With ``m < 2`` the error is ``inf``.
    """
    base = base.double().cpu()
    samples = samples.double().cpu()
    m = samples.shape[1]
    value = float(stat(base + samples.mean(1)))
    if m < 2:
        return Estimate(value, math.inf, num_matvecs)
    total = samples.sum(1, keepdim=True)
    loo = stat(base[:, None] + (total - samples) / (m - 1))
    stderr = math.sqrt((m - 1) / m * float(((loo - loo.mean()) ** 2).sum()))
    return Estimate(value, stderr, num_matvecs)
