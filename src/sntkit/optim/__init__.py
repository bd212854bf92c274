"""Optimizers: low-rank state-space natural gradient (paper 000 App. C.1) and Shampoo.

:class:`StateSpaceNaturalGradient` preconditions ``.grad`` in place for any ``torch.optim``
optimizer; :class:`LowRankNaturalGradient` is it followed by SGD.
"""

from sntkit.optim.natural_gradient import LowRankNaturalGradient
from sntkit.optim.preconditioner import StateSpaceNaturalGradient
from sntkit.optim.shampoo import Shampoo

__all__ = ["LowRankNaturalGradient", "Shampoo", "StateSpaceNaturalGradient"]
