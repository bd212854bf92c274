"""The global-state NTK ``NTK_S = P K P^*`` of recurrent models (paper 004 §3–4).

Entry point: :func:`state_ntk`. See :class:`StateNTK` for the operators it exposes
(``P``, ``K``, ``jacobian``, ``operator``, ``fisher``, the Kronecker core, views, alignment).
"""

from sntkit.models.resolve import resolve_model
from sntkit.ntk.core import WeightSites
from sntkit.ntk.dataset import DatasetFisher, ntk_over
from sntkit.ntk.feedforward import FeedforwardNTK, feedforward_ntk
from sntkit.ntk.output import OutputNTK
from sntkit.ntk.parameters import ParameterSpace
from sntkit.ntk.state_ntk import StateNTK, state_ntk
from sntkit.ntk.trajectory import Trajectory

__all__ = [
    "DatasetFisher",
    "FeedforwardNTK",
    "OutputNTK",
    "ParameterSpace",
    "StateNTK",
    "Trajectory",
    "WeightSites",
    "feedforward_ntk",
    "ntk_over",
    "resolve_model",
    "state_ntk",
]
