"""XTrace (Epperly, Tropp & Webber 2024): the exchangeable estimator against its leave-one-out
definition, and incremental growth against a fresh factorization."""

import math

import torch
from spectra import DT, decaying, with_spectrum

from sntkit.linalg.probes import sphere
from sntkit.linalg.xtrace import XTrace
from sntkit.operators import Dense


def test_xtrace_equals_the_leave_one_out_definition():
    """The ``O(n k²)`` formulas equal the average of ``k`` explicit leave-one-out Hutch++."""
    n, k = 40, 6
    for A in (
        with_spectrum(decaying(n, 0.2)).matrix,
        torch.randn(n, n, dtype=DT, generator=torch.Generator().manual_seed(1)),
    ):
        state = XTrace(Dense(A), torch.Generator().manual_seed(3))
        state.add(2 * k)
        assert state.num_matvecs == 2 * k and not state.rank_deficient
        value, _ = state.estimate()
        Om = sphere(k, n, torch.Generator().manual_seed(3))
        ests = []
        for i in range(k):
            Qi = torch.linalg.qr(A @ Om[[j for j in range(k) if j != i]].T).Q
            w = Om[i] - Qi @ (Qi.T @ Om[i])
            gamma = (n - k + 1) / float(w @ w)
            ests.append(torch.trace(Qi.T @ A @ Qi) + gamma * (w @ A @ w))
        assert math.isclose(value, float(torch.stack(ests).mean()), rel_tol=1e-10)
        # growing by a round keeps A Q of the old columns and equals a fresh factorization
        state.add(2 * k)
        fresh = XTrace(Dense(A), torch.Generator().manual_seed(3))
        fresh.add(2 * k)
        fresh.add(2 * k)
        assert math.isclose(state.estimate()[0], fresh.estimate()[0], rel_tol=1e-12)
        torch.testing.assert_close(state.R.T @ state.Q, state.Om @ A.T)  # A Ω = Q R, as rows
