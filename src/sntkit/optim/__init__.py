"""Optimizers: low-rank state-space natural gradient (paper 000 App. C.1) and Shampoo."""

from sntkit.optim.natural_gradient import LowRankNaturalGradient
from sntkit.optim.shampoo import Shampoo

__all__ = ["LowRankNaturalGradient", "Shampoo"]
