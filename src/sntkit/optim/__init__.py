"""Optimizers: low-rank state-space natural gradient (paper 000 App. C.1) and Shampoo."""

from sntkit.optim.natural_gradient import LowRankNaturalGradient

__all__ = ["LowRankNaturalGradient"]
