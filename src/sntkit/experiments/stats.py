"""Statistics that the reproductions report about their sweeps.

* :func:`spearman` — the Spearman rank correlation ``ρ = corr(rank(a), rank(b))`` with average
  ranks for ties (Pearson correlation of the rank vectors), ``nan`` when either side is constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of two equally long sequences (average ranks for ties).

    Returns ``nan`` when either sequence is constant (its ranks have no spread), rather than
    warning and dividing by zero.
    """
    if len(a) != len(b):
        raise ValueError(f"spearman needs sequences of equal length, got {len(a)} and {len(b)}")
    ra, rb = rankdata(np.asarray(a, float)), rankdata(np.asarray(b, float))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / den) if den else math.nan
