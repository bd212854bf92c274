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

Two variants serve paper 004's Memory-Pro Network 2 (§5.2, App. A.2.1):

* **GRU** (:func:`gru_fixed_point_weights`, the construction adapted to the GRU cell of
  :class:`sntkit.models.GRU`). With ``W_hr = W_hz = 0`` and zero biases of the gates, zero input
  gives ``r = z = σ(0) = ½``, so ``h' = ½ tanh(½(W_hn h + b_hn)) + ½ h`` and ``x̄`` is fixed iff

      W_hn x̄ + b_hn = 2 artanh(x̄),

  i.e. ``[W_hn | b_hn] [X̄; 1] = 2 artanh(X̄)``: the general case above with ``Φ = [X̄; 1]``
  ((N+1) × m) and right-hand side ``2 artanh(X̄)``, so ``[W_hn | b_hn] = 2 artanh(X̄) Φ⁺ +
  M (I − Φ Φ⁺)``, ``M`` of std ``perp_gain/√N``. The Jacobian at a placed point is
  ``J = ½ I + ¼ diag(1 − x̄²) W_hn`` (the gates do not move: ``W_hr = W_hz = 0``); the point is
  stable iff every eigenvalue of ``J`` has ``|λ| < 1``.
* **Sequential insertion** (:func:`insert_fixed_points`, the authors' leaky-RNN Network 2 in
  github meeree/kpflow): for each point in turn, with ``s = tanh(x̄)``,

      W ← x̄ sᵀ/‖s‖² + W (I − s sᵀ/‖s‖²),

  a rank-one change that makes ``W tanh(x̄) = x̄`` — a zero-input fixed point of ``h' = W
  tanh(h)`` and of the leaky map ``h' = (1 − α) h + α W tanh(h)`` — and leaves ``W`` unchanged on
  ``s^⊥``. Only the last point is exact: inserting ``x̄_i`` changes ``W s_j`` of an earlier
  point by ``(x̄_i − W s_i)(s_iᵀ s_j)/‖s_i‖²`` (``W`` before the insertion), so earlier points
  stay exact only when ``s_j ⟂ s_i``; the Jacobian of the leaky map at the last point is
  ``(1 − α) I + α W diag(1 − s²)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from sntkit.models.rnn import RNN

METHODS = ("pinv", "orthogonal")
PERP = ("right", "both")
_UNSOLVABLE_RNN = (
    "no W satisfies W φ(x̄_i) = x̄_i for all points: some φ(x̄_i) is a linear combination of "
    "the others (or m > N) while x̄_i is not the same combination of the other x̄; "
    "drop or move those points (for odd φ, x̄ and −x̄ may be given together)"
)
_UNSOLVABLE_GRU = (
    "no GRU weights place all points: the augmented points [x̄_i; 1] are linearly "
    "dependent while 2 artanh(x̄_i) are not in the same way; drop or move those points"
)


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
        Relative tolerance of the solvability check ``‖X̄ Φ⁺ Φ − X̄‖ <= tol max(‖X̄‖, 1)``.

    Returns
    -------
    torch.Tensor
        ``W`` ``(N, N)`` in the dtype and on the device of ``points``.
    """
    X = _points_matrix(points)  # (N, m)
    if perp not in PERP:
        raise ValueError(f"perp must be one of {PERP}, got {perp!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    N = X.shape[0]
    Phi = phi(X.T).T  # (N, m)
    if method == "orthogonal":
        W0, Pi = _eq17(X, Phi)
    else:
        W0, Pi = _pinv_solution(X, Phi)
    _check_solved(W0, Phi, X, tol, _UNSOLVABLE_RNN)
    eye = torch.eye(N, dtype=torch.float64)
    M = _perp_matrix(W_perp, (N, N), perp_gain, generator)
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
    """Build the paper-000 student-teacher teacher (App. B): a post-form tanh RNN, ``b = 0``.

    ``W`` places ``x̄ = scale·e_r`` for both readout units ``r`` with ``perp="both"`` and
    ``W_⊥ = perp_gain × Xavier`` restricted off the readout plane. The readout plane then evolves
    as two decoupled maps ``h ↦ c tanh(h)``, ``c = scale / tanh(scale)`` (> 1), with fixed points
    ``{−scale, 0, scale}`` each (multipliers ``c·sech²(scale) < 1`` outside, ``c > 1`` at 0), so the
    network has the nine fixed points ``{−scale, 0, scale}²`` (other units 0 when ``perp_gain`` is
    small enough for the complement to contract): 4 stable corners, 4 saddles with one unstable
    direction and the origin with two — 4 stable and 5 unstable, in ``±`` pairs (tanh is odd).
    A full-scale ``W_⊥`` acting on the whole space destroys this structure.

    Parameters
    ----------
    n:
        Number of units N.
    scale:
        The placed coordinate ``x̄ = scale·e_r`` (positive).
    perp_gain:
        Scale of ``W_⊥`` (Xavier-normal from ``generator``).
    readout:
        The two distinct units of the readout plane.
    generator:
        Source of ``W_⊥``.
    dtype:
        Dtype of the returned cell.

    Returns
    -------
    RNN
        The teacher, ``RNN.from_weights(W, form="post")``.
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


def gru_fixed_point_weights(
    points: torch.Tensor,
    W_perp: torch.Tensor | None = None,
    *,
    perp_gain: float = 1.0,
    tol: float = 1e-10,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """GRU hidden weights under which every row ``x̄_i`` of ``points`` is a zero-input fixed point.

    Paper 004 App. A.2.1 adapted to the GRU (module docstring): ``W_hr = W_hz = 0``, zero gate
    biases, and ``[W_hn | b_hn] = 2 artanh(X̄) Φ⁺ + M (I − Φ Φ⁺)`` with ``Φ = [X̄; 1]``, which
    solves ``W_hn x̄_i + b_hn = 2 artanh(x̄_i)``. Then ``r = z = ½`` at zero input and
    ``x̄_i = ½ tanh(½(W_hn x̄_i + b_hn)) + ½ x̄_i``, with Jacobian ``½ I + ¼ diag(1 − x̄_i²) W_hn``.

    Parameters
    ----------
    points:
        The fixed points, one per row, ``(m, N)`` with ``m <= N + 1`` and every entry in
        ``(−1, 1)`` (the range of the GRU state).
    W_perp:
        The matrix ``M`` ((N, N+1)) projected to the free part; default ``perp_gain`` times a
        normal draw of std ``1/√N`` from ``generator``.
    perp_gain:
        Scale of the default ``M``.
    tol:
        Relative tolerance of the solvability check ``‖R Φ⁺ Φ − R‖ <= tol max(‖R‖, 1)``,
        ``R = 2 artanh(X̄)``.
    generator:
        Source of the default ``M``.

    Returns
    -------
    dict
        ``weight_hh`` (3N, N) ``= [0; 0; W_hn]``, ``bias_hh`` (3N) ``= [0; 0; b_hn]`` and
        ``bias_ih`` (3N) ``= 0``, under the parameter names of :class:`sntkit.models.GRU` and
        ``torch.nn.GRU`` (there with the suffix ``_l0``), in the dtype of ``points``. The input
        weights ``weight_ih`` are free: they do not act at zero input.
    """
    X = _gru_points_matrix(points)  # (N, m)
    N, m = X.shape
    aug = torch.cat([X, torch.ones(1, m, dtype=torch.float64)])  # (N+1, m)
    rhs = 2 * torch.atanh(X)
    W0, Pi = _pinv_solution(rhs, aug)
    _check_solved(W0, aug, rhs, tol, _UNSOLVABLE_GRU)
    M = _perp_matrix(W_perp, (N, N + 1), perp_gain, generator)
    Wb = (W0 + M @ (torch.eye(N + 1, dtype=torch.float64) - Pi)).to(points.dtype)
    weight_hh = torch.zeros(3 * N, N, dtype=points.dtype, device=points.device)
    bias_hh = torch.zeros(3 * N, dtype=points.dtype, device=points.device)
    weight_hh[2 * N :] = Wb[:, :N]
    bias_hh[2 * N :] = Wb[:, N]
    return {"weight_hh": weight_hh, "bias_hh": bias_hh, "bias_ih": torch.zeros_like(bias_hh)}


def insert_fixed_points(W: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Insert fixed points one by one: ``W ← x̄ sᵀ/‖s‖² + W (I − s sᵀ/‖s‖²)``, ``s = tanh(x̄)``.

    Applied for each row ``x̄`` of ``points`` in order (module docstring). Afterwards
    ``W tanh(x̄) = x̄`` holds exactly for the last point — a zero-input fixed point of
    ``h' = W tanh(h)`` and of the leaky RNN ``h' = (1 − α) h + α W tanh(h)`` (paper 004 §5.2,
    Network 2 of the authors' code) — and ``W`` is unchanged on ``s^⊥`` of every insertion.

    Parameters
    ----------
    W:
        The recurrent matrix ``(N, N)``; not modified.
    points:
        The points, one per row, ``(m, N)``, none of them zero.

    Returns
    -------
    torch.Tensor
        The new ``W`` ``(N, N)``, computed in float64 and returned in the dtype of ``W``.
    """
    if not isinstance(W, torch.Tensor) or W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be a square matrix (N, N), got {_shape(W)}")
    X = _points_matrix(points)
    if X.shape[0] != W.shape[0]:
        raise ValueError(f"points must have N = {W.shape[0]} columns like W, got {X.shape[0]}")
    if bool((X.abs().amax(0) == 0).any()):
        raise ValueError("points must be nonzero (tanh(0) = 0 cannot be mapped to x̄): drop them")
    Wd = W.detach().double()
    for x in X.T:
        s = torch.tanh(x)
        s2 = s @ s
        Wd = torch.outer(x, s) / s2 + Wd - torch.outer(Wd @ s, s) / s2
    return Wd.to(W.dtype)


def _eq17(X: torch.Tensor, Phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper 004 eq. 17: ``W_0 = Σ_i x̄_i φ_iᵀ/‖φ_i‖²`` and ``Π = Σ_i φ_i φ_iᵀ/‖φ_i‖²``."""
    G = Phi.T @ Phi
    off = G - torch.diag(G.diagonal())
    if float(off.abs().max()) > 1e-8 * float(G.diagonal().max()):
        raise ValueError(
            "method='orthogonal' (paper 004 eq. 17) needs mutually orthogonal φ(x̄_i); "
            "use method='pinv' for general points"
        )
    if bool((G.diagonal() == 0).any()):
        raise ValueError("some φ(x̄_i) is zero, so W φ(x̄_i) = 0 cannot equal a nonzero x̄_i")
    return (X / G.diagonal()) @ Phi.T, (Phi / G.diagonal()) @ Phi.T


def _pinv_solution(R: torch.Tensor, Phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the minimal-norm solution ``R Φ⁺`` of ``W Φ = R`` and the projector ``Π = Φ Φ⁺``."""
    pinv = torch.linalg.pinv(Phi)
    return R @ pinv, Phi @ pinv


def _check_solved(
    W0: torch.Tensor, Phi: torch.Tensor, R: torch.Tensor, tol: float, message: str
) -> None:
    """Raise ``ValueError(message)`` unless ``‖W_0 Φ − R‖ <= tol max(‖R‖, 1)``."""
    residual = float(torch.linalg.matrix_norm(W0 @ Phi - R))
    if residual > tol * max(float(torch.linalg.matrix_norm(R)), 1.0):
        raise ValueError(message)


def _perp_matrix(
    W_perp: torch.Tensor | None,
    shape: tuple[int, int],
    perp_gain: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``W_perp`` in float64, or ``perp_gain`` × a normal draw of std ``1/√N`` (N = shape[0])."""
    if W_perp is None:
        N = shape[0]
        return (
            perp_gain * torch.randn(*shape, generator=generator, dtype=torch.float64) / math.sqrt(N)
        )
    if not isinstance(W_perp, torch.Tensor):
        raise TypeError(f"W_perp must be a torch.Tensor {shape}, got {type(W_perp).__name__}")
    if tuple(W_perp.shape) != shape:
        raise ValueError(f"W_perp must be {shape}, got {tuple(W_perp.shape)}")
    return W_perp.detach().to(torch.float64)


def _points_matrix(points: object) -> torch.Tensor:
    """Check the points and return them as the float64 matrix ``X̄ = [x̄_1 … x̄_m]`` (N × m)."""
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"points must be a torch.Tensor (m, N), got {type(points).__name__}")
    if points.ndim != 2 or points.shape[0] < 1 or not points.is_floating_point():
        raise ValueError(
            "points must be a floating tensor (m, N) with one fixed point per row, got "
            f"{points.dtype} {tuple(points.shape)}"
        )
    return points.detach().T.to(torch.float64)


def _gru_points_matrix(points: object) -> torch.Tensor:
    """:func:`_points_matrix`, checked for the GRU: entries in ``(−1, 1)``, at most N + 1 points."""
    X = _points_matrix(points)
    N, m = X.shape
    if bool((X.abs() >= 1).any()) or not bool(X.isfinite().all()):
        raise ValueError(
            "points must have every entry in (−1, 1), the range of a GRU state (artanh of ±1 is "
            f"infinite); got max |x̄| = {float(X.abs().max()):.4g}: scale the points down"
        )
    if m > N + 1:
        raise ValueError(
            f"points holds {m} points but a GRU with N = {N} units fixes at most N + 1 = {N + 1} "
            "(the augmented points [x̄_i; 1] must be independent): give fewer points"
        )
    return X


def _shape(obj: object) -> str:
    return str(tuple(obj.shape)) if isinstance(obj, torch.Tensor) else type(obj).__name__
