"""Random and basis probes on an operator's space, reproducible across devices.

Random probes are drawn on the CPU from a ``torch.Generator`` (seeded by ``seed`` unless a
``generator`` is given) and only then moved to the operator's device and dtype, so the same seed
gives the same probes — and the same estimate, up to rounding — on every device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from sntkit.operators.base import Operator


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """Return ``generator`` if given, else a CPU generator seeded with ``seed`` (default 0).

    The default seed is fixed, not drawn from the clock, so that every estimate is reproducible
    unless the caller asks otherwise (pass a fresh ``generator`` for independent draws).
    """
    if generator is not None:
        if seed is not None:
            raise ValueError("pass either seed= or generator=, not both")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != "cpu":
            raise ValueError(
                f"generator must be a CPU generator (probes are drawn on the CPU and then moved, "
                f"so that results do not depend on the device), got one on {generator.device}"
            )
        return generator
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(0 if seed is None else seed)


def rademacher(n: int, shape: tuple[int, ...], op: Operator, gen: torch.Generator) -> torch.Tensor:
    """``n`` random-sign probes of shape ``shape`` in ``op``'s dtype and device."""
    z = torch.randint(0, 2, (n, *shape), generator=gen, dtype=torch.int8)
    return (2 * z - 1).to(dtype=op.dtype, device=op.device)


def gaussian(n: int, shape: tuple[int, ...], op: Operator, gen: torch.Generator) -> torch.Tensor:
    """``n`` standard Gaussian probes of shape ``shape`` in ``op``'s dtype and device."""
    z = torch.randn((n, *shape), generator=gen, dtype=torch.float64)
    return z.to(dtype=op.dtype, device=op.device)


def sphere(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` float64 CPU rows uniform on the sphere of radius ``√size`` in ``R^size``."""
    z = torch.randn((n, size), generator=gen, dtype=torch.float64)
    return z * (size**0.5 / torch.linalg.vector_norm(z, dim=1, keepdim=True))


def flat(X: torch.Tensor) -> torch.Tensor:
    """``(k, *shape) -> (k, prod(shape))`` (row-major, the convention of ``to_dense``)."""
    return X.reshape(X.shape[0], math.prod(X.shape[1:]))


def basis_blocks(op: Operator, chunk_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Return standard basis probes of ``op``'s domain in chunks: yields ``(index, E)``.

    ``E`` is ``(c, *shape_in)`` with ``E[i]`` the basis tensor of flat index ``index[i]``; the
    chunks cover the ``size_in`` basis tensors once, so exact quantities cost ``size_in``
    applications in ``ceil(size_in / chunk_size)`` batched calls and ``O(chunk_size · n)`` memory.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    n = op.size_in
    for start in range(0, n, chunk_size):
        c = min(chunk_size, n - start)
        index = torch.arange(start, start + c, device=op.device)
        E = torch.zeros(c, n, dtype=op.dtype, device=op.device)
        E[torch.arange(c, device=op.device), index] = 1
        yield index, E.reshape(c, *op.shape_in)
