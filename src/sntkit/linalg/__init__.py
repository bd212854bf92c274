"""Randomized, matrix-free linear algebra on :class:`sntkit.operators.Operator` s.

Every estimator returns an :class:`Estimate` (value, standard error, operator applications)
and takes ``seed=`` or ``generator=``; probes are drawn on the CPU and moved to the operator's
device and dtype, so a seed gives the same result on every device.

* :func:`trace` — Hutchinson, Hutch++, XTrace, exact; adaptive with ``rtol``.
* :func:`frobenius_norm`, :func:`cosine_similarity`, :func:`compare` — Frobenius geometry.
* :func:`effective_rank` (participation, stable, entropy), :func:`variance_rank`,
  :func:`participation_ratio` (exact, of a dense matrix).
* :func:`eigsh`, :func:`svds`, :func:`spectral_norm` — block Krylov eigensolver.
* :func:`warm_sketch` — trace, ``‖A‖_F²``, ranks and top eigenvalues of a slowly changing
  operator from one warm-started block product (a training-loop tracker's estimator).

Applied to a Gram operator ``J J^*`` (an NTK), ``eigsh``, ``svds``, ``trace``,
``frobenius_norm``, ``cosine_similarity`` and ``effective_rank`` work on the smaller of
``J J^*`` and ``J^* J`` (:mod:`sntkit.linalg.gram_side`).
"""

from sntkit.linalg.eigen import EigshInfo, eigsh, spectral_norm, svds
from sntkit.linalg.estimate import Estimate
from sntkit.linalg.norms import compare, cosine_similarity, frobenius_norm
from sntkit.linalg.rank import effective_rank, participation_ratio, variance_rank
from sntkit.linalg.spectral_sketch import SpectralSketch, warm_sketch
from sntkit.linalg.trace import exact_diagonal, trace

__all__ = [
    "EigshInfo",
    "Estimate",
    "SpectralSketch",
    "compare",
    "cosine_similarity",
    "effective_rank",
    "eigsh",
    "exact_diagonal",
    "frobenius_norm",
    "participation_ratio",
    "spectral_norm",
    "svds",
    "trace",
    "variance_rank",
    "warm_sketch",
]
