"""Fixed points of recurrent maps and their stability (paper 000 §2, App. B; paper 004 App. A.2.1).

For the one-step map ``F(h) = f(h, x; θ)`` of a cell with a constant input ``x`` (or none),
fixed points ``F(h*) = h*`` are found from many initial states at once, all candidates in one
batch:

1. **minimize** the speed ``q(h) = ½‖F(h) − h‖²`` of all candidates at once (one batched
   evaluation per iteration) and **polish** in float64 — both by one damped Newton /
   Levenberg–Marquardt iteration on ``(D_h F − I) δ = −(F(h) − h)``: per candidate the full
   Newton step, its halves (1/2, 1/4) and a Levenberg–Marquardt step
   ``(AᵀA + μ s I) δ = −Aᵀr`` (``A = D_h F − I``, ``r = F(h) − h``, ``s = tr(AᵀA)/N``, ``μ``
   adapted per candidate) are tried together and the first that lowers ``q`` is taken. Far from
   a fixed point (large ``μ``) this is a descent on ``q``; near one (``μ → 0``) it is Newton's
   method with quadratic convergence; where ``A`` is (nearly) singular the LM step still makes
   progress. Jacobians come from ``vmap(jacrev(F))`` and the systems from batched
   ``torch.linalg.solve_ex``. Candidates stop once converged (residual ``POLISH ·
   residual_tol`` or rounding) or stalled (a slow point: ``q`` stuck at a positive minimum).
   ``opt_steps > 0`` first runs Adam on the summed ``q`` (the classic Sussillo–Barak descent),
   stopping early once no candidate halves its ``q`` within 25 steps; it is off by default
   because the damped iteration descends ``q`` itself and was as reliable and 2–4× faster on the
   teacher and Memory-Pro GRUs;
2. **seed** also ``h = 0`` (fixed for every map with ``f(0) = 0``, e.g. odd activations without
   bias) and, after a first pass, the midpoints of the ``midpoints`` (default
   ``MAX_MIDPOINTS``) closest pairs of points found: just past a pitchfork the middle branch
   has a basin of width ``~√|g − g*|`` (about the outer pair's distance) under any descent on
   ``q`` and is otherwise easily missed;
3. **drop** candidates that are not finite or whose residual ``‖F(h) − h‖`` exceeds
   ``residual_tol`` (slow points, where ``q`` has a positive local minimum, end here);
4. **merge** duplicates: two converged candidates ``a, b`` are one fixed point when
   ``‖a − b‖ <= 1e-9 (1 + max(‖a‖, ‖b‖))``, or when ``‖a − b‖ <= dedup_tol (1 + max(‖a‖, ‖b‖))``
   *and* their midpoint is itself fixed to ``residual_tol``. The second rule handles a degenerate
   point (exactly at a pitchfork Newton converges only linearly, and candidates stop at slightly
   different places of one flat fixed point) while two distinct points close to each other (just
   after a bifurcation) stay apart, because between them ``F(h) − h`` does not vanish. Merging is
   transitive (connected components); each cluster keeps its smallest-residual member;
5. **linearize**: Jacobians ``J = D_h F(h*)``, eigenvalues sorted by decreasing ``|λ|``, right
   and left eigenvectors, and a stability class per point — for *maps*, with ``|λ| < 1`` the
   stability criterion (not ``Re λ < 0``), see :func:`classify`.

The model is never modified: the search runs on float64 copies of the parameters
(:func:`sntkit.models.cell.detached_params`) through the pure ``cell.step(params, h, x)``.
:func:`solve_fixed_points` takes a parameter dict directly (e.g. interpolated ``θ(s)`` during
training), :func:`find_fixed_points` takes a model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch.func import jacrev, vmap

from sntkit.dynamics.tolerances import IMAG_TOL
from sntkit.models.cell import Cell, detached_params
from sntkit.models.torch_adapter import as_cell

Map = Callable[[torch.Tensor], torch.Tensor]

STABLE_LABELS = ("stable node", "stable focus")
#: two candidates closer than this (relative) are the same point without further checks
SAME_POINT_RTOL = 1e-9
#: default number of closest pairs of found points whose midpoints are extra Newton starts
MAX_MIDPOINTS = 64
#: Newton stops for a candidate whose q fell by less than 0.1% in this many iterations in a row
STALL_ITERS = 4
#: ... and once its residual is this fraction of ``residual_tol`` (or at rounding): a residual
#: ``r`` moves an eigenvalue near 1 by about ``r / |λ − 1|``, so 1e-12 stays below the
#: marginal band (1e-6) of every point that the band does not already call marginal
POLISH = 1e-2


@dataclass(frozen=True)
class FixedPoints:
    """``n`` fixed points of dimension ``N`` with their linearization ``J = D_h F(h*)``.

    ``eigvals`` (n, N) complex, sorted by decreasing ``|λ|`` (conjugate pairs adjacent);
    ``right[i][:, j]`` and ``left[i][j, :]`` are the matching right/left eigenvectors, normalized
    so that ``left[i] @ right[i] = I`` (``u_j^T v_j = 1``). ``labels`` are the stability classes
    of :func:`classify` and ``unstable_dims`` the number of ``|λ| > 1 + margin`` per point.
    """

    locations: torch.Tensor  # (n, N) float64
    residuals: torch.Tensor  # (n,) ‖F(h) − h‖
    jacobians: torch.Tensor  # (n, N, N)
    eigvals: torch.Tensor  # (n, N) complex
    labels: tuple[str, ...]
    unstable_dims: torch.Tensor  # (n,) int64
    margin: float = 1e-6

    @functools.cached_property
    def _eigenvectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        # computed on first use when :func:`linearize` skipped them (``vectors=False``); the
        # columns are matched to ``eigvals`` (a second eig may order ties differently)
        evals, right = torch.linalg.eig(self.jacobians)
        right = right.gather(2, _match(evals, self.eigvals)[:, None, :].expand_as(right))
        return right, torch.linalg.inv(right)

    @property
    def right(self) -> torch.Tensor:
        """``(n, N, N)`` complex right eigenvectors as columns, in the order of ``eigvals``."""
        return self._eigenvectors[0]

    @property
    def left(self) -> torch.Tensor:
        """``(n, N, N)`` complex left eigenvectors as rows (``left @ right = I``)."""
        return self._eigenvectors[1]

    def __len__(self) -> int:
        return self.locations.shape[0]

    @property
    def dim(self) -> int:
        """Return ``N``, the state dimension."""
        return self.locations.shape[1]

    @property
    def stable(self) -> torch.Tensor:
        """Boolean mask: every ``|λ| < 1 − margin``."""
        return torch.tensor([lab in STABLE_LABELS for lab in self.labels], dtype=torch.bool)

    @property
    def marginal(self) -> torch.Tensor:
        """Boolean mask: no ``|λ| > 1 + margin`` but some ``||λ| − 1| <= margin``."""
        return torch.tensor([lab == "marginal" for lab in self.labels], dtype=torch.bool)

    @property
    def unstable(self) -> torch.Tensor:
        """Boolean mask: at least one ``|λ| > 1 + margin``."""
        return self.unstable_dims > 0

    @property
    def num_stable(self) -> int:
        """Return how many points are stable (:attr:`stable`)."""
        return int(self.stable.sum())

    @property
    def num_unstable(self) -> int:
        """Return how many points are unstable (:attr:`unstable`)."""
        return int(self.unstable.sum())

    @property
    def num_marginal(self) -> int:
        """Return how many points are marginal (:attr:`marginal`)."""
        return int(self.marginal.sum())

    def spectral_radius(self) -> torch.Tensor:
        """``max |λ|`` per point, ``(n,)``."""
        return self.eigvals.abs().amax(1) if len(self) else torch.zeros(0, dtype=torch.float64)

    def nearest_to_circle(self) -> torch.Tensor:
        """Per point the eigenvalue closest to the unit circle (``min ||λ| − 1|``), ``(n,)``."""
        return self._nearest

    @functools.cached_property
    def _nearest(self) -> torch.Tensor:
        # read by a monitor's metrics and its history at every check: computed once
        if not len(self):
            return torch.zeros(0, dtype=torch.complex128)
        j = (self.eigvals.abs() - 1).abs().argmin(1)
        return self.eigvals.gather(1, j[:, None])[:, 0]

    def test_functions(self) -> dict[str, torch.Tensor]:
        """Continuous bifurcation test functions per point (paper 000 §2), each ``(n,)`` real.

        * ``"fold"``: ``det(J − I) = Π(λ − 1)`` — vanishes when a real eigenvalue is ``+1``
          (saddle-node, pitchfork, transcritical); its sign is ``(−1)^{#real λ < 1}``.
        * ``"flip"``: ``det(J + I) = Π(λ + 1)`` — vanishes at ``λ = −1`` (period doubling).
        * ``"neimark_sacker"``: ``|λ_c|² − 1`` for the complex pair closest to the unit circle
          (``nan`` without complex eigenvalues). This is the one factor ``λ_c λ̄_c − 1`` of the
          bialternate-product determinant ``det(J ⊙ J − I) = Π_{i<j}(λ_i λ_j − 1)`` that belongs
          to a conjugate pair; the full determinant also vanishes at real pairs with
          ``λ_i λ_j = 1`` (neutral saddles), which are not bifurcations, so it is not used.
        """
        return dict(self._tests)

    @functools.cached_property
    def _tests(self) -> dict[str, torch.Tensor]:
        ev = self.eigvals
        n = len(self)
        if n == 0:
            empty = torch.zeros(0, dtype=torch.float64)
            return {"fold": empty, "flip": empty, "neimark_sacker": empty}
        fold = torch.prod(ev - 1, dim=1).real
        flip = torch.prod(ev + 1, dim=1).real
        complex_ = ev.imag.abs() > 0
        mod2 = ev.abs().square() - 1
        dist = torch.where(complex_, mod2.abs(), torch.full_like(mod2, torch.inf))
        j = dist.argmin(1)
        ns = torch.where(complex_.any(1), mod2.gather(1, j[:, None])[:, 0], torch.nan)
        return {"fold": fold, "flip": flip, "neimark_sacker": ns}

    def select(self, mask: torch.Tensor) -> FixedPoints:
        """Return the points where the boolean ``mask`` (n,) is true (or at the given indices)."""
        idx = mask.nonzero()[:, 0] if mask.dtype == torch.bool else mask
        out = FixedPoints(
            self.locations[idx],
            self.residuals[idx],
            self.jacobians[idx],
            self.eigvals[idx],
            tuple(self.labels[int(i)] for i in idx),
            self.unstable_dims[idx],
            self.margin,
        )
        if "_eigenvectors" in self.__dict__:
            right, left = self._eigenvectors
            out.__dict__["_eigenvectors"] = (right[idx], left[idx])
        return out

    def to_dict(self) -> dict:
        """JSON-friendly summary: locations, residuals, labels, leading eigenvalues, tests."""
        top = self.eigvals[:, :4]
        tests = self.test_functions()
        return {
            "locations": self.locations.tolist(),
            "residuals": self.residuals.tolist(),
            "labels": list(self.labels),
            "unstable_dims": self.unstable_dims.tolist(),
            "leading_eigenvalues": [[[float(z.real), float(z.imag)] for z in row] for row in top],
            "test_functions": {k: v.tolist() for k, v in tests.items()},
        }


def classify(
    eigvals: torch.Tensor, margin: float = 1e-6, imag_tol: float = IMAG_TOL
) -> tuple[list[str], torch.Tensor]:
    """Stability classes of fixed points of a *map* from eigenvalues ``(n, N)`` sorted by ``|λ|``.

    With ``k = #{|λ| > 1 + margin}`` (the unstable dimension; ``|λ| < 1`` is stable for maps,
    whatever the sign of ``Re λ``):

    * ``k = 0`` and some ``||λ| − 1| <= margin``: ``"marginal"``;
    * ``k = 0``: ``"stable focus"`` if the slowest (largest ``|λ|``) eigenvalue is complex
      (``|Im λ| > imag_tol``), else ``"stable node"``;
    * ``k = N``: ``"unstable focus"`` / ``"unstable node"`` by the same rule;
    * otherwise ``"saddle (k unstable)"`` (also when other eigenvalues are marginal).

    Returns the labels and ``k`` per point.
    """
    if eigvals.ndim != 2:
        raise ValueError(f"eigvals must be (n, N), got shape {tuple(eigvals.shape)}")
    mod = eigvals.abs()
    unstable = (mod > 1 + margin).sum(1)
    marginal = ((mod - 1).abs() <= margin).any(1)
    lead_complex = eigvals[:, 0].imag.abs() > imag_tol if eigvals.shape[1] else unstable > 0
    N = eigvals.shape[1]
    labels = []
    for k, marg, cplx in zip(
        unstable.tolist(), marginal.tolist(), lead_complex.tolist(), strict=True
    ):
        if k == 0:
            labels.append("marginal" if marg else ("stable focus" if cplx else "stable node"))
        elif k == N:
            labels.append("unstable focus" if cplx else "unstable node")
        else:
            labels.append(f"saddle ({k} unstable)")
    return labels, unstable


def step_map(cell: Cell, params: Mapping[str, torch.Tensor], x: torch.Tensor | None) -> Map:
    """``h ↦ cell.step(params, h, x)`` for ``h`` of shape ``(..., N)`` and a constant ``x``."""

    def F(h: torch.Tensor) -> torch.Tensor:
        xi = None if x is None else x.expand(*h.shape[:-1], x.shape[-1])
        return cell.step(params, h, xi)

    return F


def state_jacobians(
    cell: Cell, params: Mapping[str, torch.Tensor], h: torch.Tensor, x: torch.Tensor | None
) -> torch.Tensor:
    """``∂f/∂h`` at the states ``h`` ``(n, N)`` under the constant input ``x``: ``(n, N, N)``.

    From the cell's closed form ``c I + diag(left) M diag(right)``
    (:meth:`~sntkit.models.cell.Cell.step_jacobian`) when it has one — no autograd, which is
    most of a Newton iteration's cost for an RNN — else by ``vmap(jacrev)``.
    """
    xi = None if x is None else x.expand(*h.shape[:-1], x.shape[-1])
    closed = cell.step_jacobian(params, h, xi)
    if closed is None:
        return vmap(jacrev(step_map(cell, params, x)))(h)
    return closed.dense(tuple(h.shape[:-1]))


def linearize(
    cell: Cell,
    params: Mapping[str, torch.Tensor],
    points: torch.Tensor,
    x: torch.Tensor | None = None,
    margin: float = 1e-6,
    vectors: bool = True,
) -> FixedPoints:
    """Jacobians, eigen-decompositions and stability classes at given points ``(n, N)``.

    No search: ``points`` are taken as they are (their residuals are reported). ``params`` and
    ``x`` are used as given (pass float64 for float64 results). ``vectors=False`` computes only
    the eigenvalues (about a third of the cost); the eigenvectors then follow on first access.
    """
    F = step_map(cell, params, x)
    n, N = points.shape
    if n == 0:
        cz = torch.zeros(0, N, N, dtype=torch.complex128, device=points.device)
        empty = FixedPoints(
            points,
            torch.zeros(0, dtype=points.dtype, device=points.device),
            torch.zeros(0, N, N, dtype=points.dtype, device=points.device),
            torch.zeros(0, N, dtype=torch.complex128, device=points.device),
            (),
            torch.zeros(0, dtype=torch.long, device=points.device),
            margin,
        )
        empty.__dict__["_eigenvectors"] = (cz, cz)
        return empty
    J = state_jacobians(cell, params, points, x)
    residuals = torch.linalg.vector_norm(F(points) - points, dim=1)
    evals, right = torch.linalg.eig(J) if vectors else (torch.linalg.eigvals(J), None)
    order = evals.abs().argsort(dim=1, descending=True, stable=True)
    evals = evals.gather(1, order)
    labels, unstable = classify(evals.cpu(), margin)
    out = FixedPoints(
        points, residuals, J, evals, tuple(labels), unstable.to(points.device), margin
    )
    if right is not None:
        right = right.gather(2, order[:, None, :].expand_as(right))
        # rows are left eigenvectors with left @ right = I
        out.__dict__["_eigenvectors"] = (right, torch.linalg.inv(right))
    return out


def _match(found: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Per row, the permutation ``π`` with ``found[π] ≈ wanted`` (greedy nearest, ``(n, N)``)."""
    n, N = wanted.shape
    dist = (found[:, :, None] - wanted[:, None, :]).abs()  # (n, found, wanted)
    perm = torch.empty(n, N, dtype=torch.long, device=found.device)
    rows = torch.arange(n, device=found.device)
    for j in range(N):
        a = dist[:, :, j].argmin(1)
        perm[:, j] = a
        dist[rows, a, :] = torch.inf
    return perm


def solve_fixed_points(
    cell: Cell,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor | None = None,
    inits: torch.Tensor | int = 256,
    *,
    trajectory: torch.Tensor | None = None,
    num_samples: int = 256,
    noise: float = 0.1,
    scale: float = 1.0,
    opt_steps: int = 0,
    lr: float = 0.05,
    newton_steps: int = 50,
    residual_tol: float = 1e-10,
    dedup_tol: float = 1e-3,
    margin: float = 1e-6,
    midpoints: int = MAX_MIDPOINTS,
    known: torch.Tensor | None = None,
    vectors: bool = True,
    generator: torch.Generator | None = None,
) -> FixedPoints:
    """Return fixed points of ``h ↦ cell.step(params, h, x)`` for a parameter dict (see module).

    Parameters
    ----------
    cell, params:
        The cell whose pure ``step`` is used (its own parameters are not read) and parameter
        values by name (model-free: a monitor passes interpolated ``θ(s)``; float64 copies).
    x:
        A constant input ``(n_input,)``; ``None`` means no input for autonomous cells and a zero
        input for cells with ``n_input > 0``.
    inits:
        Initial states: a tensor ``(n, N)`` used as given; a trajectory tensor ``(..., T, N)``
        (e.g. states ``(B, T, N)``) from which ``num_samples`` states are drawn and perturbed by
        Gaussian noise of std ``noise``; or a number ``n`` of states to draw — from
        ``trajectory`` (plus noise) if given, else from ``N(0, scale²)``.
    opt_steps, lr, newton_steps, residual_tol:
        Adam steps (default 0) on the summed speed before Newton and their learning rate;
        maximum damped-Newton iterations (a candidate stops at a residual ``POLISH ·
        residual_tol`` or at rounding); with ``‖F(h) − h‖ > residual_tol`` after them, dropped.
    dedup_tol, margin, midpoints:
        Relative distance below which two candidates merge if their midpoint is fixed too;
        ``|λ|`` within ``margin`` of 1 counts as marginal (:func:`classify`); number of closest
        pairs whose midpoints seed a second pass (module docstring, step 2; ``0``: none, e.g.
        to only follow known points).
    known:
        Points ``(k, N)`` found before at nearby parameters (a monitor's previous check): extra
        Newton starts, and pairs of their continuations get no midpoint (tried before).
    vectors, generator:
        ``False``: eigenvectors on first access of ``right``/``left`` (a monitor reads them at
        events only; the eigenvalues alone cost a third). Randomness of drawn initial states.
    """
    _check_solver(cell, residual_tol, dedup_tol, opt_steps, newton_steps, midpoints)
    p = _float64_params(params, cell)
    xi = constant_input(cell, x, device := next(iter(p.values())).device if p else "cpu")
    h = _initial_states(inits, cell.n_state, trajectory, num_samples, noise, scale, generator)
    h = torch.cat([old := _known_states(known, cell.n_state), h]).to(device)
    tols = newton_steps, residual_tol, dedup_tol, midpoints
    found = _search(cell, p, xi, h, opt_steps, lr, *tols, len(old))
    return linearize(cell, p, found, xi, margin, vectors=vectors)


def _known_states(known: torch.Tensor | None, N: int) -> torch.Tensor:
    """``known`` as float64 CPU rows ``(k, N)`` (none: ``(0, N)``); a wrong shape names the fix."""
    if known is None:
        return torch.zeros(0, N, dtype=torch.float64)
    if not isinstance(known, torch.Tensor) or known.ndim != 2 or known.shape[1] != N:
        got = tuple(known.shape) if isinstance(known, torch.Tensor) else type(known).__name__
        raise ValueError(f"known must be points (k, {N}) found before, got {got}")
    return known.detach().to(device="cpu", dtype=torch.float64)


def _search(
    cell: Cell,
    p: dict[str, torch.Tensor],
    x: torch.Tensor | None,
    h: torch.Tensor,
    opt_steps: int,
    lr: float,
    newton_steps: int,
    residual_tol: float,
    dedup_tol: float,
    midpoints: int,
    known: int,
) -> torch.Tensor:
    """Return the distinct fixed points ``(n, N)`` of the cell's map reached from ``h``.

    The first ``known`` rows of ``h`` are points known before (``solve_fixed_points(known=)``).
    """
    F = step_map(cell, p, x)

    def jac(h: torch.Tensor) -> torch.Tensor:
        return state_jacobians(cell, p, h, x)

    h = torch.cat([h, torch.zeros_like(h[:1])])  # h = 0 is fixed for every odd, unbiased map
    h = _newton(F, jac, _descend(F, h, opt_steps, lr), newton_steps, POLISH * residual_tol)
    points, res, keep = _converged(F, h, residual_tol)
    continued = h[:known][keep[:known]]
    points = _dedup(F, points, res, dedup_tol, residual_tol)
    if midpoints and len(points) >= 2:
        # a point is fresh when no known point's continuation is within dedup_tol of it
        fresh = ~(_relative_distances(points, continued) <= dedup_tol).any(1)
        pairs = midpoints, newton_steps, residual_tol, dedup_tol
        points = _with_midpoints(F, jac, points, fresh, *pairs)
    return points


def _relative_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``‖a_i − b_j‖ / (1 + max(‖a_i‖, ‖b_j‖))``, the scale of every "same point" rule."""
    scale = 1 + torch.maximum(a.norm(dim=1)[:, None], b.norm(dim=1)[None, :])
    return torch.cdist(a, b) / scale


def _check_solver(
    cell: Cell,
    residual_tol: float,
    dedup_tol: float,
    opt_steps: int,
    newton_steps: int,
    midpoints: int,
) -> None:
    """``ValueError`` naming the argument of :func:`solve_fixed_points` that is out of range."""
    if cell.n_state < 1:
        raise ValueError("cell must have n_state >= 1")
    for name, v in (("residual_tol", residual_tol), ("dedup_tol", dedup_tol)):
        if not v > 0:
            raise ValueError(f"{name} must be positive, got {v}")
    if opt_steps < 0 or newton_steps < 0:
        raise ValueError(
            f"opt_steps and newton_steps must be >= 0, got {opt_steps}, {newton_steps}"
        )
    if isinstance(midpoints, bool) or not isinstance(midpoints, int) or midpoints < 0:
        raise ValueError(f"midpoints must be an int >= 0 (pairs), got {midpoints!r}")


def _with_midpoints(
    F: Map,
    jac: Map,
    points: torch.Tensor,
    fresh: torch.Tensor,
    pairs: int,
    newton_steps: int,
    residual_tol: float,
    dedup_tol: float,
) -> torch.Tensor:
    """``points`` plus the fixed points Newton finds from the midpoints of the ``pairs`` closest.

    The middle branch of a (nearly) symmetric pitchfork has a basin of width ~ the outer pair's
    distance under any descent on ``q``, and a saddle between two attractors sits on their
    basins' boundary; Newton from the midpoints lands on them. Only pairs with a ``fresh`` point
    are taken: two continued known points had their midpoint tried when they were found.
    """
    i, j = torch.triu_indices(len(points), len(points), 1, device=points.device)
    i, j = i[fresh[i] | fresh[j]], j[fresh[i] | fresh[j]]
    if not len(i):
        return points
    closest = torch.linalg.vector_norm(points[i] - points[j], dim=1).argsort()
    i, j = i[closest[:pairs]], j[closest[:pairs]]
    mids, mres, _ = _converged(
        F,
        _newton(F, jac, 0.5 * (points[i] + points[j]), newton_steps, POLISH * residual_tol),
        residual_tol,
    )
    both = torch.cat([points, mids])
    both_res = torch.cat([torch.linalg.vector_norm(F(points) - points, dim=1), mres])
    return _dedup(F, both, both_res, dedup_tol, residual_tol)


def find_fixed_points(
    model: Cell | torch.nn.Module,
    x: torch.Tensor | None = None,
    inits: torch.Tensor | int = 256,
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    **kwargs,
) -> FixedPoints:
    """Return fixed points of a model's map ``h ↦ f(h, x; θ)`` (see module docstring).

    ``model`` is an sntkit cell or a ``torch.nn`` RNN/GRU/LSTM (adapted by
    :func:`sntkit.models.as_cell`); it is never modified — the search works on
    ``detached_params(cell, torch.float64)`` (or on ``params`` if given, e.g. interpolated
    values). All other arguments are those of :func:`solve_fixed_points`.
    """
    cell = as_cell(model)
    p = detached_params(cell, torch.float64) if params is None else params
    return solve_fixed_points(cell, p, x, inits, **kwargs)


# ---------------------------------------------------------------------- internals
def _float64_params(params: Mapping[str, torch.Tensor], cell: Cell) -> dict[str, torch.Tensor]:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of tensors, got {type(params).__name__}")
    out = {}
    for k, v in params.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"params[{k!r}] must be a tensor, got {type(v).__name__}")
        out[k] = v.detach().to(torch.float64, copy=True)
        if not bool(torch.isfinite(out[k]).all()):
            # a NaN/inf weight makes every candidate diverge: an empty result would read as
            # "no fixed points" rather than as the broken model it is
            raise ValueError(
                f"params[{k!r}] has NaN or infinite entries; fixed points are undefined — check "
                "the training for divergence (lower the learning rate) before analysing"
            )
    missing = [k for k, _ in cell.named_parameters() if k not in out]
    if missing:
        raise ValueError(f"params is missing entries {missing} of {type(cell).__name__}")
    return out


def constant_input(
    cell: Cell, x: torch.Tensor | None, device: torch.device | str = "cpu"
) -> torch.Tensor | None:
    """Return the constant input ``x`` of an autonomous map ``h ↦ F(h, x)`` in float64.

    Zeros of shape ``(n_input,)`` when ``x`` is ``None`` (the zero-input dynamics), ``None`` for
    a cell without inputs; a sequence or a wrong size raises ``ValueError``.
    """
    if x is None:
        return (
            torch.zeros(cell.n_input, dtype=torch.float64, device=device) if cell.n_input else None
        )
    if not cell.n_input:
        raise ValueError("x must be None: this cell is autonomous (n_input = 0)")
    if x.shape != (cell.n_input,):
        raise ValueError(
            f"x must be a constant input of shape ({cell.n_input},), got {tuple(x.shape)}; "
            "pass one input vector, not a sequence"
        )
    return x.detach().to(device=device, dtype=torch.float64)


def _initial_states(
    inits: torch.Tensor | int,
    N: int,
    trajectory: torch.Tensor | None,
    num_samples: int,
    noise: float,
    scale: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    g = generator or torch.Generator().manual_seed(0)
    if isinstance(inits, torch.Tensor):
        if inits.ndim == 2 and inits.shape[1] == N:
            return inits.detach().to(device="cpu", dtype=torch.float64).clone()
        if inits.ndim >= 3 and inits.shape[-1] == N:
            return _sample(inits, num_samples, noise, g)
        raise ValueError(
            f"inits must be initial states (n, {N}) or a trajectory (B, T, {N}), got shape "
            f"{tuple(inits.shape)}"
        )
    if isinstance(inits, bool) or not isinstance(inits, int) or inits < 1:
        raise ValueError(f"inits must be a positive number of initial states, got {inits!r}")
    if trajectory is not None:
        if trajectory.shape[-1] != N:
            raise ValueError(f"trajectory must end in the state size {N}, got {trajectory.shape}")
        return _sample(trajectory, inits, noise, g)
    return scale * torch.randn(inits, N, generator=g, dtype=torch.float64)


def _sample(traj: torch.Tensor, n: int, noise: float, g: torch.Generator) -> torch.Tensor:
    flat = traj.detach().reshape(-1, traj.shape[-1]).to(device="cpu", dtype=torch.float64)
    idx = torch.randint(0, flat.shape[0], (n,), generator=g)
    return flat[idx] + noise * torch.randn(n, flat.shape[1], generator=g, dtype=torch.float64)


def _converged(
    F: Map, h: torch.Tensor, tol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the finite rows of ``h`` with ``‖F(h) − h‖ <= tol``, their residuals, the mask."""
    res = torch.linalg.vector_norm(F(h) - h, dim=1)
    keep = torch.isfinite(h).all(1) & torch.isfinite(res) & (res <= tol)
    return h[keep], res[keep], keep


def _descend(F: Map, h: torch.Tensor, steps: int, lr: float, window: int = 25) -> torch.Tensor:
    """Adam on ``Σ_i q(h_i)``; stops once no candidate halves its ``q`` over ``window`` steps."""
    if steps <= 0 or h.shape[0] == 0:
        return h
    h = h.clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=lr)
    ref = None
    with torch.enable_grad():
        for k in range(steps):
            q = 0.5 * (F(h) - h).square().sum(1)
            if k % window == 0:
                qd = q.detach()
                settled = ~torch.isfinite(qd) | (qd < 1e-20)
                if ref is not None:
                    settled |= qd > 0.5 * ref
                if bool(settled.all()):
                    break
                ref = qd
            # diverging candidates (unbounded maps) must not poison the others' steps
            total = torch.where(torch.isfinite(q), q, torch.zeros_like(q)).sum()
            opt.zero_grad()
            total.backward()
            if h.grad is None:  # q contains -h, so only a broken autograd graph gets here
                raise RuntimeError("_descend: backward gave no gradient for the candidates h")
            with torch.no_grad():
                h.grad.nan_to_num_(0.0, 0.0, 0.0)
            opt.step()
    return h.detach()


def _newton(F: Map, jac: Map, h: torch.Tensor, steps: int, done_at: float = 0.0) -> torch.Tensor:
    """Damped Newton / Levenberg–Marquardt polish (module docstring, step 2), float64.

    A candidate is done once its residual ``‖F(h) − h‖`` is at rounding level or ``<= done_at``.

    The active candidates are kept compact (dropped once done) and each iteration reuses the
    residual its accepted step already evaluated: one ``F`` and one Jacobian per iteration.
    """
    n, N = h.shape
    if n == 0 or steps == 0:
        return h
    h = h.clone()
    eye = torch.eye(N, dtype=h.dtype, device=h.device)
    # μ's update by the step taken (none, Newton, 1/2, 1/4, LM): trust grows after full steps
    mu_factor = torch.tensor([10.0, 0.1, 1.0, 1.0, 1 / 3], dtype=h.dtype, device=h.device)
    eps = torch.finfo(h.dtype).eps
    idx = torch.isfinite(h).all(1).nonzero()[:, 0]
    ha = h[idx]
    r = F(ha) - ha
    m = torch.full((len(idx),), 1e-3, dtype=h.dtype, device=h.device)
    stalls = torch.zeros(len(idx), dtype=torch.long, device=h.device)
    for _ in range(steps):
        if idx.numel() == 0:
            break
        q = r.square().sum(1)
        A = jac(ha) - eye
        newton, info = torch.linalg.solve_ex(A, -r)
        newton = torch.where((info == 0)[:, None] & torch.isfinite(newton), newton, 0.0)
        step, r_new, choice = _damped_step(F, ha, A, r, q, m, newton)
        ok = choice >= 0
        ha = torch.where(ok[:, None], ha + step, ha)
        h[idx] = ha
        q_new = r_new.square().sum(1)
        m = (m * mu_factor[choice + 1]).clamp(1e-15, 1e15)
        # 2q at rounding level: each of the N entries of F(h) − h is off by ~eps (1 + ‖h‖)
        tiny = (N * (eps * (1 + ha.norm(dim=1))) ** 2).clamp_min(done_at**2)
        # converged to rounding; stuck at a positive minimum of q (a slow point: no step helps,
        # or q has barely moved for STALL_ITERS iterations); or no longer improvable (a failed
        # step at a residual near rounding)
        stalls = torch.where(q_new > (1 - 1e-3) * q, stalls + 1, 0)
        done = (
            (q_new <= tiny)
            | (~ok & ((m > 1e8) | (q <= 1e8 * tiny)))
            | (ok & (step.norm(dim=1) <= eps * ha.norm(dim=1)))
            | (stalls >= STALL_ITERS)
        )
        keep = (~done).nonzero()[:, 0]
        if len(keep) < len(idx):
            idx, ha, r, m, stalls = idx[keep], ha[keep], r_new[keep], m[keep], stalls[keep]
        else:
            r = r_new
    return h


def _damped_step(
    F: Map,
    h: torch.Tensor,
    A: torch.Tensor,
    r: torch.Tensor,
    q: torch.Tensor,
    mu: torch.Tensor,
    newton: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per candidate the first of Newton, its halves (1/2, 1/4) and LM that lowers ``2q``.

    Returns the step, the residual ``F(h') − h'`` after it (the old one where nothing helps)
    and which step was taken (0 Newton, 1 half, 2 quarter, 3 LM, −1 none). Each alternative
    is evaluated only where all before it failed: near a fixed point the full step almost
    always wins, so an iteration costs one evaluation of ``F``.
    """
    step = newton.clone()
    r_new = _residuals(F, h + newton)
    q_new = r_new.square().sum(-1)
    choice = torch.where(torch.isfinite(q_new) & (q_new < q), 0, -1)
    lost = (choice < 0).nonzero()[:, 0]
    if lost.numel():
        tries = torch.stack([0.5 * newton[lost], 0.25 * newton[lost]])
        rt = _residuals(F, h[lost] + tries)
        qt = rt.square().sum(-1)
        better = torch.isfinite(qt) & (qt < q[lost])
        first = better.int().argmax(0)
        cols = torch.arange(len(lost), device=h.device)
        step[lost], r_new[lost] = tries[first, cols], rt[first, cols]
        choice[lost] = torch.where(better.any(0), first + 1, -1)
        lost = lost[choice[lost] < 0]
    if lost.numel():
        step[lost] = _levenberg_marquardt(A[lost], r[lost], mu[lost])
        r_new[lost] = _residuals(F, h[lost] + step[lost])
        q_lm = r_new[lost].square().sum(-1)
        choice[lost] = torch.where(torch.isfinite(q_lm) & (q_lm < q[lost]), 3, -1)
    return step, torch.where((choice >= 0)[:, None], r_new, r), choice


def _levenberg_marquardt(A: torch.Tensor, r: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Return the LM steps ``−(AᵀA + μ s I)⁻¹ Aᵀ r`` (``s`` = mean diagonal of ``AᵀA``)."""
    AtA = A.mT @ A
    s = AtA.diagonal(dim1=1, dim2=2).mean(1).clamp_min(torch.finfo(A.dtype).eps)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    lm = torch.linalg.solve_ex(AtA + (mu * s)[:, None, None] * eye, -(A.mT @ r[..., None]))[0]
    return torch.nan_to_num(lm[..., 0], 0.0, 0.0, 0.0)


def _residuals(F: Map, h: torch.Tensor) -> torch.Tensor:
    """``F(h) − h`` for ``h`` of shape ``(..., N)``."""
    flat = h.reshape(-1, h.shape[-1])
    return (F(flat) - flat).reshape(h.shape)


def _dedup(
    F: Map, points: torch.Tensor, residuals: torch.Tensor, tol: float, residual_tol: float
) -> torch.Tensor:
    """Merge duplicates (module docstring, step 4); returns points sorted by norm."""
    n = points.shape[0]
    if n <= 1:
        return points
    dist = _relative_distances(points, points)
    upper = torch.ones(n, n, dtype=torch.bool, device=points.device).triu(1)
    same = upper & (dist <= SAME_POINT_RTOL)
    near = upper & ~same & (dist <= tol)
    i, j = near.nonzero(as_tuple=True)
    if i.numel():
        mid = 0.5 * (points[i] + points[j])
        rm = torch.linalg.vector_norm(F(mid) - mid, dim=1)
        same[i[rm <= residual_tol], j[rm <= residual_tol]] = True
    labels = _components(same)
    # the smallest-residual member of each cluster: the first of its label in residual order
    order = torch.argsort(residuals, stable=True)
    positions = torch.arange(n, device=points.device)
    first = torch.full((n,), n, dtype=torch.long, device=points.device)
    first = first.scatter_reduce(0, labels[order], positions, reduce="amin")
    out = points[order[first[first < n]]]
    return out[torch.argsort(out.norm(dim=1), stable=True)]


def _components(same: torch.Tensor) -> torch.Tensor:
    """Label each node of the undirected graph ``same`` ``(n, n)`` by its component's smallest.

    Label propagation: a few rounds for a handful of points, where scipy's sparse-graph set-up
    alone costs several times more.
    """
    n = same.shape[0]
    adj = same | same.T | torch.eye(n, dtype=torch.bool, device=same.device)
    labels = torch.arange(n, device=same.device)
    while True:
        new = torch.where(adj, labels[None, :], n).amin(1)
        if torch.equal(new, labels):
            return labels
        labels = new
