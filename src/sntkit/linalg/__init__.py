"""Randomized, matrix-free linear algebra on :class:`sntkit.operators.Operator` s.

Every estimator returns an :class:`Estimate` (value, standard error, operator applications) and
takes ``seed=`` or ``generator=``; probes live on the operator's device and dtype.
"""

from sntkit.linalg.eigen import EigshInfo, eigsh, spectral_norm, svds
from sntkit.linalg.estimate import Estimate
from sntkit.linalg.norms import compare, cosine_similarity, frobenius_norm
from sntkit.linalg.rank import effective_rank, variance_rank
from sntkit.linalg.trace import exact_diagonal, trace

__all__ = [
    "EigshInfo",
    "Estimate",
    "compare",
    "cosine_similarity",
    "effective_rank",
    "eigsh",
    "exact_diagonal",
    "frobenius_norm",
    "spectral_norm",
    "svds",
    "trace",
    "variance_rank",
]
