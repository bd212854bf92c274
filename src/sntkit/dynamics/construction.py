"""Recurrent weights with prescribed fixed points (paper 004 App. A.2.1 eq. 17; paper 000 App. B).

For the "post"-form map ``h' = W φ(h)`` a point ``x̄`` is fixed when ``W φ(x̄) = x̄``. With
``Φ = [φ(x̄_1) … φ(x̄_m)]`` (N × m) and ``X̄ = [x̄_1 … x̄_m]``, every solution is

    W = X̄ Φ⁺ + W_⊥,        W_⊥ Φ = 0,

where ``Φ⁺`` is the pseudo-inverse. If the ``φ(x̄_i)`` are orthogonal this is the paper's
``Σ_i x̄_i φ(x̄_i)^T / ‖φ(x̄_i)‖² + W_⊥``; in general it needs ``Φ`` of full column rank
(``m <= N`` independent ``φ(x̄_i)``). ``W_⊥`` is a random (Xavier-normal) matrix ``M`` times
``gain``, projected to annihilate ``span Φ``: ``W_⊥ = M (I − Π)`` with ``Π = Φ Φ⁺``, or with
``perp="both"`` also ``(I − Π) M (I − Π)``, which keeps the ``span Φ`` coordinates from being
driven by the rest of the network (the teacher's readout plane then evolves on its own). For an
odd ``φ`` (``tanh``), ``−x̄_i`` is fixed too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from sntkit.models.rnn import RNN


def fixed_point_weights(
    points: torch.Tensor,
    phi: Callable[[torch.Tensor], torch.Tensor] = torch.tanh,
    *,
    perp_gain: float = 1.0,
    perp: str = "right",
    W_perp: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``W`` (N × N) with ``W φ(x̄_i) = x̄_i`` for the rows ``x̄_i`` of ``points`` (m × N).

    ``W_perp`` (N × N) replaces the random matrix ``M`` if given; it is still projected.
    """
    if points.ndim != 2:
        raise ValueError(f"points must be (m, N), got shape {tuple(points.shape)}")
    if perp not in ("right", "both"):
        raise ValueError(f"perp must be 'right' or 'both', got {perp!r}")
    m, N = points.shape
    X = points.T
    Phi = phi(points).T  # (N, m)
    if m > N or torch.linalg.matrix_rank(Phi) < m:
        raise ValueError(
            f"the {m} vectors φ(x̄_i) are linearly dependent (or m > N = {N}), so no W places all "
            "of them exactly; use fewer or more distinct points (for odd φ, ±x̄ come together)"
        )
    pinv = torch.linalg.pinv(Phi)
    Pi = Phi @ pinv
    eye = torch.eye(N, dtype=points.dtype, device=points.device)
    if W_perp is None:
        g = torch.randn(N, N, generator=generator, dtype=torch.float64) / math.sqrt(N)
        W_perp = (perp_gain * g).to(points.dtype).to(points.device)
    elif W_perp.shape != (N, N):
        raise ValueError(f"W_perp must be ({N}, {N}), got {tuple(W_perp.shape)}")
    Wp = W_perp @ (eye - Pi)
    if perp == "both":
        Wp = (eye - Pi) @ Wp
    return X @ pinv + Wp


def planar_teacher(
    n: int = 64,
    *,
    scale: float = 1.5,
    perp_gain: float = 0.5,
    readout: tuple[int, int] = (0, 1),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> RNN:
    """The paper-000 teacher: a post-form tanh RNN with fixed points ``±scale·e_i`` on the readout.

    ``W`` places ``x̄ = scale·e_{r}`` for both readout units ``r`` and uses ``perp="both"`` with
    ``W_⊥ = perp_gain × Xavier``, so the readout plane evolves as two decoupled maps
    ``h ↦ c tanh(h)`` with ``c = scale / tanh(scale)``: fixed points ``{−scale, 0, scale}²`` —
    4 stable (the corners), 4 saddles and the unstable origin, i.e. 4 stable and 5 unstable —
    while the other units contract to 0 (``perp_gain < 1``). Bias ``b = 0``.
    """
    pts = torch.zeros(len(readout), n, dtype=torch.float64)
    for i, r in enumerate(readout):
        pts[i, r] = scale
    W = fixed_point_weights(pts, perp="both", perp_gain=perp_gain, generator=generator)
    teacher = RNN(n, 0, form="post", dtype=dtype)
    with torch.no_grad():
        teacher.W.copy_(W.to(dtype))
        teacher.b.zero_()
    return teacher
