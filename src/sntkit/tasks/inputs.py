"""Random input sequences with controlled rank, and Fourier-feature embeddings (paper 004 §5.3–5.4).

``gaussian_inputs(B, T, n_in, rank=r)`` draws ``x = z U^T`` with ``z ~ N(0, I_r)`` i.i.d. over
batch and time and ``U`` a random orthonormal ``n_in × r`` frame, scaled by ``√(n_in/r)`` so that
``E‖x‖² = n_in`` as for full-rank standard normal inputs: the ``(B·T) × n_in`` input matrix has
rank ``r`` (App. A.2.2's "effective rank of the task inputs"). ``fourier_features`` is the
deterministic embedding of a scalar signal used for Fig. 6D (Tancik et al. 2020):
``[sin(2π f_j x), cos(2π f_j x)]`` with frequencies ``f_j = j``, ``j = 1..F``.
"""

from __future__ import annotations

import math

import torch

from sntkit.linalg import participation_ratio as linalg_participation_ratio


def gaussian_inputs(
    batch: int,
    steps: int,
    n_in: int,
    rank: int | None = None,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """I.i.d. Gaussian inputs ``(B, T, n_in)`` lying in a random ``rank``-dimensional subspace."""
    rank = n_in if rank is None else rank
    if not 1 <= rank <= n_in:
        raise ValueError(f"rank must be in [1, n_in={n_in}], got {rank}")
    if batch < 1 or steps < 1:
        raise ValueError(f"batch and steps must be positive, got {batch}, {steps}")
    z = torch.randn(batch, steps, rank, generator=generator, dtype=torch.float64)
    U = torch.linalg.qr(torch.randn(n_in, rank, generator=generator, dtype=torch.float64)).Q
    x = z @ U.T * math.sqrt(n_in / rank)
    return x.to(dtype=dtype, device=device)


def participation_ratio(x: torch.Tensor) -> float:
    """Return ``(Σ σ_i²)² / Σ σ_i⁴`` of the ``(B·T) × n_in`` matrix ``X`` of ``x``.

    Its effective rank: the participation ratio of ``XᵀX``, whose eigenvalues are the ``σ_i²``.
    """
    X = x.reshape(-1, x.shape[-1]).double()
    return linalg_participation_ratio(X.T @ X)


def fourier_features(x: torch.Tensor, n_frequencies: int) -> torch.Tensor:
    """``(B, T, 1) -> (B, T, 2F)``: ``[sin(2π j x), cos(2π j x)]_{j=1..F}``."""
    if x.shape[-1] != 1:
        raise ValueError(f"fourier_features embeds a scalar signal (B, T, 1), got {tuple(x.shape)}")
    if n_frequencies < 1:
        raise ValueError(f"n_frequencies must be >= 1, got {n_frequencies}")
    f = torch.arange(1, n_frequencies + 1, dtype=x.dtype, device=x.device)
    arg = 2 * math.pi * x * f
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
