"""Tracking the sNTK and bifurcations inside a user's own training loop.

:class:`Tracker` computes sNTK ranks, eigenvalues, views, spectral radius, fixed points and
bifurcation events every few steps and writes them to sinks (:mod:`sntkit.tracking.sinks`);
:class:`BifurcationAwarePolicy` switches a natural-gradient preconditioner on near a learned
bifurcation. Layer: above ``ntk``, ``linalg``, ``dynamics`` and ``optim``, below ``tasks``.
The Lightning callback lives in :mod:`sntkit.tracking.lightning` (extra ``sntkit[lightning]``).
"""

from sntkit.tracking.policy import BifurcationAwarePolicy
from sntkit.tracking.sinks import CSVSink, ParquetSink, TensorBoardSink
from sntkit.tracking.tracker import METRICS, Tracker

__all__ = [
    "METRICS",
    "BifurcationAwarePolicy",
    "CSVSink",
    "ParquetSink",
    "TensorBoardSink",
    "Tracker",
]
