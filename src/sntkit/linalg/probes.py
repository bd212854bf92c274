"""Random probes on an operator's space, reproducible across devices.

Probes are drawn on the CPU from a ``torch.Generator`` (seeded by ``seed`` unless a
``generator`` is given) and moved to the operator's device and dtype, so the same seed gives the
same estimate on every device.
"""

from __future__ import annotations

import torch

from sntkit.operators.base import Operator


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """``generator`` if given, else a CPU generator seeded with ``seed`` (default 0)."""
    if generator is not None:
        if seed is not None:
            raise ValueError("pass either seed= or generator=, not both")
        return generator
    if seed is not None and not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(0 if seed is None else seed)


def rademacher(n: int, shape: tuple[int, ...], op: Operator, gen: torch.Generator) -> torch.Tensor:
    """``n`` random-sign probes of shape ``shape`` in ``op``'s dtype and device."""
    z = torch.randint(0, 2, (n, *shape), generator=gen)
    return (2.0 * z - 1.0).to(dtype=op.dtype, device=op.device)


def gaussian(n: int, shape: tuple[int, ...], op: Operator, gen: torch.Generator) -> torch.Tensor:
    """``n`` standard Gaussian probes of shape ``shape`` in ``op``'s dtype and device."""
    return torch.randn((n, *shape), generator=gen, dtype=torch.float64).to(
        dtype=op.dtype, device=op.device
    )


def flat(X: torch.Tensor) -> torch.Tensor:
    """``(k, *shape) -> (k, n)``."""
    return X.reshape(X.shape[0], -1)
