"""Spearman correlation against its definition: Pearson correlation of average ranks."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sntkit.experiments.stats import spearman


def _average_ranks(x: list[float]) -> np.ndarray:
    """Rank by brute force: 1 + (#smaller) + (#equal − 1)/2."""
    a = np.asarray(x)
    return np.array([1 + (a < v).sum() + ((a == v).sum() - 1) / 2 for v in a])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.floats(-5, 5)), min_size=3, max_size=12))
def test_spearman_is_pearson_of_average_ranks(pairs):
    a = [float(p[0]) for p in pairs]
    b = [p[1] for p in pairs]
    ra, rb = _average_ranks(a), _average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        assert math.isnan(spearman(a, b))
    else:
        assert spearman(a, b) == pytest.approx(float(np.corrcoef(ra, rb)[0, 1]), abs=1e-12)


def test_spearman_monotone_and_errors():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1e9]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2], [1, 2, 3])
