"""Trace estimators and the block Krylov eigensolver on synthetic PSD operators.

1. Operator applications (matvecs) that Hutchinson, Hutch++ and XTrace need for a median
   relative error below 1 % over ``--seeds`` seeds, on ``U diag(λ) U^T`` (``n = --n``, ``U``
   Haar-random) with a low-rank-plus-noise spectrum (20 eigenvalues from 1 to 0.5, the rest
   1e-3) and a flat one (λ uniform in [0, 1]). The budget is searched by doubling and then
   bisection on the method's natural grid (Hutch++: multiples of 3, XTrace: of 2; the
   smallest grid point is taken to fail).
2. Top-10 eigenpairs of a decaying and of the low-rank-plus-noise operator by sntkit's
   ``eigsh`` (tol 1e-8) and by ARPACK through ``scipy.sparse.linalg.eigsh`` (tol 1e-8) on
   ``op.to_scipy()``: matvecs, sequential operator calls (a batched ``matmat`` is one call),
   wall time (median of 3 after a warm-up) and the largest eigenvalue error against
   ``torch.linalg.eigvalsh``.

All ratios are measured in the same run.
``python benchmarks/trace_bench.py [--n 1000] [--seeds 50] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import scipy.sparse.linalg as spla
import torch

sys.path.insert(0, os.path.dirname(__file__))
import sntkit.linalg as sla
from common import machine, table, timeit
from sntkit.operators import Dense

METHODS = {"hutchinson": 1, "hutch++": 3, "xtrace": 2}  # method -> budget granularity


def operator(lam: torch.Tensor, seed: int = 0) -> Dense:
    """``U diag(λ) U^T`` with a Haar-random orthogonal ``U``."""
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(lam.numel(), lam.numel(), generator=g, dtype=torch.float64)).Q
    M = (U * lam) @ U.T
    return Dense((M + M.T) / 2)


def median_error(op: Dense, true: float, method: str, m: int, seeds: int) -> float:
    errs = [abs(sla.trace(op, method, m, seed=s).value - true) / true for s in range(seeds)]
    return float(np.median(errs))


def matvecs_to_one_percent(op: Dense, true: float, method: str, seeds: int) -> int:
    """Smallest budget on the method's grid whose median relative error is below 1 %."""
    step = METHODS[method]
    lo, hi = 1, 2  # in units of step: lo fails (or is below XTrace's minimum of 4), hi is next
    while median_error(op, true, method, hi * step, seeds) >= 0.01:
        lo, hi = hi, 2 * hi
        if hi * step > 8192:
            return -1
    while hi - lo > 1:  # bisection; the median error decreases with the budget
        mid = (lo + hi) // 2
        if median_error(op, true, method, mid * step, seeds) < 0.01:
            hi = mid
        else:
            lo = mid
    return hi * step


class CountingOperator(spla.LinearOperator):
    """A scipy operator that counts its products (ARPACK asks for one vector at a time)."""

    def __init__(self, inner: spla.LinearOperator) -> None:
        super().__init__(inner.dtype, inner.shape)
        self.inner, self.count = inner, 0

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        self.count += 1
        return self.inner.matvec(v)


def eigsh_comparison(name: str, lam: torch.Tensor) -> tuple[tuple[str, ...], tuple[str, ...]]:
    op = operator(lam)
    ref = torch.linalg.eigvalsh(op.matrix).flip(0)[:10].numpy()
    ours = sla.eigsh(op, 10, tol=1e-8, seed=0, return_info=True)
    t_ours = timeit(lambda: sla.eigsh(op, 10, tol=1e-8, seed=0), repeats=3)
    info = ours[2]
    counted = CountingOperator(op.to_scipy())
    v0 = np.random.default_rng(0).standard_normal(op.size_in)
    theirs = spla.eigsh(counted, k=10, which="LA", tol=1e-8, v0=v0, return_eigenvectors=False)
    calls = counted.count
    t_sp = timeit(lambda: spla.eigsh(op.to_scipy(), k=10, which="LA", tol=1e-8, v0=v0), repeats=3)
    err_ours = float(np.abs(ours[0].numpy() - ref).max())
    err_sp = float(np.abs(np.sort(theirs)[::-1] - ref).max())
    row = (
        name,
        str(info.num_matvecs),
        str(info.iterations),
        f"{t_ours * 1e3:.0f}",
        f"{err_ours:.0e}",
        str(calls),
        f"{t_sp * 1e3:.0f}",
        f"{err_sp:.0e}",
    )
    ratios = (
        name,
        f"{calls / info.num_matvecs:.2f}",
        f"{calls / info.iterations:.1f}",
        f"{t_sp / t_ours:.2f}",
    )
    return row, ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="operator size")
    ap.add_argument("--seeds", type=int, default=50, help="seeds per budget for the median")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine a second OpenMP thread "
        "makes these small products orders of magnitude slower)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.n
    flat = torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    spectra = {
        "low rank + noise": torch.cat(
            [
                torch.linspace(1, 0.5, 20, dtype=torch.float64),
                torch.full((n - 20,), 1e-3, dtype=torch.float64),
            ]
        ),
        "flat U[0, 1]": flat,
    }
    rows, ratio_rows = [], []
    for name, lam in spectra.items():
        op, true = operator(lam), float(lam.sum())
        counts = {m: matvecs_to_one_percent(op, true, m, args.seeds) for m in METHODS}
        rows.append((name, *(str(counts[m]) for m in METHODS)))
        ratio_rows.append(
            (
                name,
                f"{counts['hutchinson'] / counts['hutch++']:.2f}",
                f"{counts['hutchinson'] / counts['xtrace']:.2f}",
                f"{counts['hutch++'] / counts['xtrace']:.2f}",
            )
        )
    print(f"machine: {machine()}\n")
    print(f"Matvecs to a median relative trace error below 1 % (n = {n}, {args.seeds} seeds):\n")
    print(table(rows, ("spectrum", "Hutchinson", "Hutch++", "XTrace")))
    print("\nRatios (matvecs of the first / of the second):\n")
    print(
        table(
            ratio_rows,
            ("spectrum", "Hutchinson / Hutch++", "Hutchinson / XTrace", "Hutch++ / XTrace"),
        )
    )
    eig_rows, eig_ratios = [], []
    for name, lam in {
        "decaying exp(−i/10)": torch.exp(-torch.arange(n, dtype=torch.float64) / 10),
        "decaying exp(−i/50)": torch.exp(-torch.arange(n, dtype=torch.float64) / 50),
        "low rank + noise": spectra["low rank + noise"],
    }.items():
        row, ratios = eigsh_comparison(name, lam)
        eig_rows.append(row)
        eig_ratios.append(ratios)
    print(f"\nTop-10 eigenpairs (n = {n}, tol 1e-8), sntkit block Krylov vs scipy ARPACK:\n")
    print(
        table(
            eig_rows,
            (
                "spectrum",
                "sntkit matvecs",
                "sntkit calls",
                "sntkit ms",
                "sntkit max |Δλ|",
                "ARPACK matvecs (= calls)",
                "ARPACK ms",
                "ARPACK max |Δλ|",
            ),
        )
    )
    print("\nRatios (ARPACK / sntkit):\n")
    print(table(eig_ratios, ("spectrum", "matvecs", "sequential calls", "wall time")))


if __name__ == "__main__":
    main()
