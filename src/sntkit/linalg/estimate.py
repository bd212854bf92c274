"""The result type of every randomized estimator."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Estimate:
    """A randomized estimate with its standard error.

    ``value`` is the estimate, ``stderr`` its estimated standard error (``0`` for exact
    computations), ``num_matvecs`` the operator applications it cost (probes, counting each
    application of ``A`` or ``A^*`` once) and ``converged`` whether an adaptive target was met
    (``None`` when no target was set). ``float(est)`` is the value.
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
        if self.stderr == 0 or math.isnan(self.stderr):
            return f"{self.value:.6g} ({self.num_matvecs} matvecs)"
        return f"{self.value:.6g} ± {self.stderr:.2g} ({self.num_matvecs} matvecs)"


def jackknife(
    base: torch.Tensor,
    samples: torch.Tensor,
    stat: Callable[[torch.Tensor], torch.Tensor],
    num_matvecs: int,
) -> Estimate:
    """``stat(base + mean(samples))`` with its jackknife standard error.

    ``base`` holds exact parts of ``q`` quantities (``(q,)``) and ``samples`` their per-probe
    random parts (``(q, m)``); ``stat`` maps a ``(q, ...)`` tensor of quantities to a value, so
    ratios such as ``tr² / ‖·‖_F²`` get an error bar from the leave-one-out means.
    """
    m = samples.shape[1]
    total = samples.sum(1, keepdim=True)
    value = stat(base + samples.mean(1))
    loo = stat(base[:, None] + (total - samples) / (m - 1))
    stderr = math.sqrt((m - 1) / m * float(((loo - loo.mean()) ** 2).sum()))
    return Estimate(float(value), stderr, num_matvecs)
