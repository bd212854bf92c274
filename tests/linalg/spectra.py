"""Symmetric test operators with prescribed spectra, and repeated-trial helpers."""

import torch

from sntkit.operators import Dense

DT = torch.float64


def rotation(n: int, seed: int = 0) -> torch.Tensor:
    """A random orthogonal ``n × n`` matrix."""
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT)).Q


def with_spectrum(lam: torch.Tensor, seed: int = 0, shape=None) -> Dense:
    """``U diag(lam) U^T`` with a random rotation ``U``, on tensors of shape ``shape``."""
    U = rotation(lam.numel(), seed)
    M = (U * lam) @ U.T
    return Dense((M + M.T) / 2, shape_in=shape or (lam.numel(),))


def decaying(n: int, rate: float) -> torch.Tensor:
    """``exp(−rate · i)``, ``i = 0..n−1``."""
    return torch.exp(-rate * torch.arange(n, dtype=DT))


def low_rank_plus_noise(n: int, rank: int, noise: float) -> torch.Tensor:
    """``rank`` eigenvalues from 1 down to 0.5, the rest ``noise``."""
    return torch.cat(
        [torch.linspace(1, 0.5, rank, dtype=DT), noise * torch.ones(n - rank, dtype=DT)]
    )


def trials(fn, count: int):
    """Values, standard errors and the first ``num_matvecs`` of ``fn(seed)`` for ``count`` seeds."""
    ests = [fn(s) for s in range(count)]
    values = torch.tensor([e.value for e in ests], dtype=DT)
    stderrs = torch.tensor([e.stderr for e in ests], dtype=DT)
    return values, stderrs, ests[0].num_matvecs


def coverage(values: torch.Tensor, stderrs: torch.Tensor, truth: float, z: float = 1.96) -> float:
    """Fraction of trials whose interval ``value ± z·stderr`` contains ``truth``."""
    return float(((values - truth).abs() <= z * stderrs).double().mean())
