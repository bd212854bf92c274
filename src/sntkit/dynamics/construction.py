"""Recurrent weights with prescribed fixed points (paper 004 App. A.2.1 eqs. 17–18; 000 App. B).

For the "post"-form map ``h' = W φ(h)`` (bias 0, no input) a point ``x̄`` is fixed when
``W φ(x̄) = x̄``. With ``Φ = [φ(x̄_1) … φ(x̄_m)]`` (N × m) and ``X̄ = [x̄_1 … x̄_m]`` (N × m) the
conditions are the linear system ``W Φ = X̄``.

* **Orthogonal case** (paper 004 eq. 17): if the ``φ(x̄_i)`` are mutually orthogonal,

      W = Σ_i x̄_i φ(x̄_i)^T / ‖φ(x̄_i)‖² + W_⊥,     W_⊥ φ(x̄_i) = 0,

  and eq. 18 shows ``W φ(x̄_j) = x̄_j``. Scaled coordinate directions ``x̄_i = k_i e_{j_i}`` make
  this automatic for an elementwise ``φ`` (``φ(k e_j) = φ(k) e_j``). ``method="orthogonal"``
  uses this formula and raises if the ``φ(x̄_i)`` are not orthogonal.
* **General case** (``method="pinv"``, the default): every solution of ``W Φ = X̄`` is

      W = X̄ Φ⁺ + W_⊥,     W_⊥ = M (I − Π),     Π = Φ Φ⁺,

  with ``Φ⁺`` the Moore–Penrose pseudo-inverse and ``Π`` the orthogonal projector onto
  ``span{φ(x̄_i)}``. It equals eq. 17 when the ``φ(x̄_i)`` are orthogonal (then
  ``Φ⁺ = diag(1/‖φ(x̄_i)‖²) Φ^T``) and is exact for any linearly independent ``φ(x̄_i)``. Dependent
  ``φ(x̄_i)`` are fine when the ``x̄_i`` obey the same dependence (e.g. ``±x̄`` for odd ``φ``);
  otherwise ``X̄ ≠ X̄ Φ⁺ Φ`` and no ``W`` exists — a ``ValueError`` says so.

``W_⊥`` starts from a matrix ``M`` (``W_perp``, or ``perp_gain`` × Xavier-normal, std
``perp_gain/√N``) and is projected so that it annihilates every ``φ(x̄_i)``: ``perp="right"`` gives
``M (I − Π)``; ``perp="both"`` gives ``(I − Π) M (I − Π)``, which also keeps ``W_⊥``'s output off
``span Φ``, so the placed coordinates evolve on their own ("restricted off the readout plane").
For an odd ``φ`` (``tanh``) every ``−x̄_i`` is a fixed point too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from sntkit.models.rnn import RNN

METHODS = ("pinv", "orthogonal")
PERP = ("right", "both")


def fixed_point_weights(
    points: torch.Tensor,
    phi: Callable[[torch.Tensor], torch.Tensor] = torch.tanh,
    W_perp: torch.Tensor | None = None,
    *,
    perp_gain: float = 1.0,
    perp: str = "right",
    method: str = "pinv",
    tol: float = 1e-10,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``W`` (N × N) with ``W φ(x̄_i) = x̄_i`` for the rows ``x̄_i`` of ``points`` (m × N).

    Parameters
    ----------
    points:
        The fixed points to place, one per row, ``(m, N)``.
    phi:
        The elementwise activation of the post-form map ``h' = W φ(h)``.
    W_perp:
        The matrix ``M`` (N × N) that is projected to ``W_⊥``; default ``perp_gain`` × a
        Xavier-normal draw from ``generator``.
    perp:
        ``"right"``: ``W_⊥ = M (I − Π)``; ``"both"``: ``(I − Π) M (I − Π)`` (module docstring).
    method:
        ``"pinv"`` (general, exact for independent ``φ(x̄_i)``) or ``"orthogonal"`` (eq. 17 as
        written; requires mutually orthogonal ``φ(x̄_i)``, relative tolerance ``1e-8``).
    tol:
        Relative tolerance of the solvability check ``‖X̄ Φ⁺ Φ − X̄‖ <= tol ‖X̄‖``.
    """
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[0] < 1:
        raise ValueError(
            f"points must be a tensor (m, N) with one fixed point per row, got "
            f"{getattr(points, 'shape', type(points).__name__)}"
        )
    if perp not in PERP:
        raise ValueError(f"perp must be one of {PERP}, got {perp!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    N = points.shape[1]
    X = points.T.to(torch.float64)
    Phi = phi(points.to(torch.float64)).T  # (N, m)
    if method == "orthogonal":
        G = Phi.T @ Phi
        off = G - torch.diag(G.diagonal())
        if float(off.abs().max()) > 1e-8 * float(G.diagonal().max()):
            raise ValueError(
                "method='orthogonal' (paper 004 eq. 17) needs mutually orthogonal φ(x̄_i); "
                "use method='pinv' for general points"
            )
        if bool((G.diagonal() == 0).any()):
            raise ValueError("some φ(x̄_i) is zero, so W φ(x̄_i) = 0 cannot equal a nonzero x̄_i")
        W0 = (X / G.diagonal()) @ Phi.T
        Pi = (Phi / G.diagonal()) @ Phi.T
    else:
        pinv = torch.linalg.pinv(Phi)
        W0 = X @ pinv
        Pi = Phi @ pinv
    if float(torch.linalg.matrix_norm(W0 @ Phi - X)) > tol * max(
        float(torch.linalg.matrix_norm(X)), 1.0
    ):
        raise ValueError(
            "no W satisfies W φ(x̄_i) = x̄_i for all points: some φ(x̄_i) is a linear combination of "
            "the others (or m > N) while x̄_i is not the same combination of the other x̄; "
            "drop or move those points (for odd φ, x̄ and −x̄ may be given together)"
        )
    eye = torch.eye(N, dtype=torch.float64)
    if W_perp is None:
        M = perp_gain * torch.randn(N, N, generator=generator, dtype=torch.float64) / math.sqrt(N)
    else:
        if W_perp.shape != (N, N):
            raise ValueError(f"W_perp must be ({N}, {N}), got {tuple(W_perp.shape)}")
        M = W_perp.detach().to(torch.float64)
    Wp = M @ (eye - Pi)
    if perp == "both":
        Wp = (eye - Pi) @ Wp
    return (W0 + Wp).to(dtype=points.dtype, device=points.device)


def planar_teacher(
    n: int = 64,
    *,
    scale: float = 1.5,
    perp_gain: float = 0.5,
    readout: tuple[int, int] = (0, 1),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> RNN:
    """The paper-000 student-teacher teacher (App. B): a post-form tanh RNN, ``b = 0``.

    ``W`` places ``x̄ = scale·e_r`` for both readout units ``r`` with ``perp="both"`` and
    ``W_⊥ = perp_gain × Xavier`` restricted off the readout plane. The readout plane then evolves
    as two decoupled maps ``h ↦ c tanh(h)``, ``c = scale / tanh(scale)`` (> 1), with fixed points
    ``{−scale, 0, scale}`` each (multipliers ``c·sech²(scale) < 1`` outside, ``c > 1`` at 0), so the
    network has the nine fixed points ``{−scale, 0, scale}²`` (other units 0 when ``perp_gain`` is
    small enough for the complement to contract): 4 stable corners, 4 saddles with one unstable
    direction and the origin with two — 4 stable and 5 unstable, in ``±`` pairs (tanh is odd).
    A full-scale ``W_⊥`` acting on the whole space destroys this structure.
    """
    if n < len(readout) or len(set(readout)) != len(readout) or max(readout) >= n:
        raise ValueError(f"readout must be distinct units < n = {n}, got {readout}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    pts = torch.zeros(len(readout), n, dtype=torch.float64)
    for i, r in enumerate(readout):
        pts[i, r] = scale
    W = fixed_point_weights(pts, perp="both", perp_gain=perp_gain, generator=generator)
    return RNN.from_weights(W.to(dtype), form="post")
