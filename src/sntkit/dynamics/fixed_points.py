"""Fixed points of recurrent maps and their stability (paper 000 §2, App. B).

For ``F(h) = f(h, x; θ)`` with a constant input ``x`` (or none), fixed points ``F(h*) = h*`` are
found from many initial states at once:

1. minimize the speed ``q(h) = ½‖F(h) − h‖²`` (summed over candidates, Adam) to get near them;
2. polish by damped Newton on ``(D_h F − I) δ = −(F(h) − h)`` in float64 (batched solves,
   step halving while ``q`` does not decrease);
3. keep candidates with ``‖F(h) − h‖ <= residual_tol`` and merge two of them when they are
   closer than ``dedup_tol · (1 + ‖h‖)`` *and* their midpoint is itself fixed to
   ``residual_tol``: at a degenerate point (exactly at a pitchfork) Newton converges only
   linearly and candidates stop at slightly different places of one flat fixed point, while two
   distinct points close to each other (just after a bifurcation) are kept apart;
4. classify each point by the eigenvalues ``λ`` of ``D_h F``, for *maps*: stable when all
   ``|λ| < 1``, unstable directions are those with ``|λ| > 1`` (not ``Re λ < 0``), marginal when
   some ``||λ| − 1| <= margin``.

Everything works on detached float64 copies of the parameters; the model is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch.func import jacrev, vmap

from sntkit.models.cell import Cell, detached_params
from sntkit.models.torch_adapter import as_cell

STABLE_LABELS = ("stable node", "stable focus")


@dataclass(frozen=True)
class FixedPoints:
    """Fixed points with their linearization. ``n`` points of dimension ``N``.

    ``eigvals`` (n, N) complex, sorted by decreasing ``|λ|``; ``right[i][:, j]`` and
    ``left[i][j, :]`` are the matching right/left eigenvectors with ``left_j · right_j = 1``.
    """

    locations: torch.Tensor  # (n, N) float64
    residuals: torch.Tensor  # (n,)  ‖F(h) − h‖
    jacobians: torch.Tensor  # (n, N, N)
    eigvals: torch.Tensor  # (n, N) complex
    right: torch.Tensor  # (n, N, N) complex, columns
    left: torch.Tensor  # (n, N, N) complex, rows
    labels: tuple[str, ...]
    unstable_dims: torch.Tensor  # (n,) int: number of |λ| > 1 + margin

    def __len__(self) -> int:
        return self.locations.shape[0]

    @property
    def stable(self) -> torch.Tensor:
        """Boolean mask of stable points."""
        return torch.tensor([lab in STABLE_LABELS for lab in self.labels], dtype=torch.bool)

    @property
    def num_stable(self) -> int:
        return int(self.stable.sum())

    @property
    def num_unstable(self) -> int:
        return len(self) - self.num_stable

    def spectral_radius(self) -> torch.Tensor:
        """``max |λ|`` per point."""
        return self.eigvals.abs().amax(1) if len(self) else torch.zeros(0, dtype=torch.float64)

    def to_dict(self) -> dict:
        """JSON-friendly summary (locations, residuals, labels, leading eigenvalues)."""
        top = self.eigvals[:, :4] if len(self) else self.eigvals
        return {
            "locations": self.locations.tolist(),
            "residuals": self.residuals.tolist(),
            "labels": list(self.labels),
            "unstable_dims": self.unstable_dims.tolist(),
            "leading_eigenvalues": [[[float(z.real), float(z.imag)] for z in row] for row in top],
        }


def classify(
    eigvals: torch.Tensor, margin: float = 1e-6, imag_tol: float = 1e-9
) -> tuple[list[str], torch.Tensor]:
    """Stability labels and unstable dimensions from eigenvalues ``(n, N)`` sorted by ``|λ|``."""
    mod = eigvals.abs()
    unstable = (mod > 1 + margin).sum(1)
    marginal = ((mod - 1).abs() <= margin).any(1)
    labels = []
    for i in range(eigvals.shape[0]):
        lead_complex = bool(eigvals[i, 0].imag.abs() > imag_tol)
        k, n = int(unstable[i]), eigvals.shape[1]
        if bool(marginal[i]) and k == 0:
            labels.append("marginal")
        elif k == 0:
            labels.append("stable focus" if lead_complex else "stable node")
        elif k == n:
            labels.append("unstable focus" if lead_complex else "unstable node")
        else:
            labels.append(f"saddle ({k} unstable)")
    return labels, unstable


def linearize(
    cell: Cell,
    params: Mapping[str, torch.Tensor],
    points: torch.Tensor,
    x: torch.Tensor | None,
    margin: float = 1e-6,
) -> FixedPoints:
    """Jacobians, eigen-decompositions and labels at given points (no search)."""
    F = _map(cell, params, x)
    n, N = points.shape
    if n == 0:
        empty = torch.zeros(0, N, dtype=points.dtype)
        cz = torch.zeros(0, N, N, dtype=torch.complex128)
        return FixedPoints(
            empty,
            torch.zeros(0, dtype=points.dtype),
            torch.zeros(0, N, N, dtype=points.dtype),
            torch.zeros(0, N, dtype=torch.complex128),
            cz,
            cz,
            (),
            torch.zeros(0, dtype=torch.long),
        )
    J = vmap(jacrev(F))(points)
    residuals = torch.linalg.vector_norm(F(points) - points, dim=1)
    evals, right = torch.linalg.eig(J)
    order = evals.abs().argsort(dim=1, descending=True)
    evals = evals.gather(1, order)
    right = right.gather(2, order[:, None, :].expand_as(right))
    left = torch.linalg.inv(right)  # rows: left eigenvectors with left @ right = I
    labels, unstable = classify(evals, margin)
    return FixedPoints(points, residuals, J, evals, right, left, tuple(labels), unstable)


def find_fixed_points(
    model: Cell | torch.nn.Module,
    x: torch.Tensor | None = None,
    inits: torch.Tensor | int = 256,
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    trajectory: torch.Tensor | None = None,
    noise: float = 0.1,
    scale: float = 1.0,
    opt_steps: int = 400,
    lr: float = 0.05,
    newton_steps: int = 30,
    residual_tol: float = 1e-10,
    dedup_tol: float = 1e-3,
    margin: float = 1e-6,
    generator: torch.Generator | None = None,
) -> FixedPoints:
    """Fixed points of ``h ↦ f(h, x; θ)`` (see module docstring).

    Parameters
    ----------
    model:
        An sntkit cell or torch.nn RNN/GRU/LSTM module (never modified).
    x:
        A constant input ``(n_in,)``; ``None`` for autonomous cells (or zero input).
    inits:
        Initial states ``(n, N)``, or a number of them to draw: from ``trajectory`` (states
        ``(..., N)``) plus Gaussian noise of std ``noise`` if given, else ``N(0, scale²)``.
    params:
        Parameter values to use instead of the model's (e.g. interpolated ``θ(s)``).
    """
    cell = as_cell(model)
    p = {k: v.detach().to(torch.float64) for k, v in (params or detached_params(cell)).items()}
    if x is not None:
        x = x.detach().to(torch.float64)
        if x.shape != (cell.n_input,):
            raise ValueError(
                f"x must be a constant input of shape ({cell.n_input},), got {tuple(x.shape)}"
            )
    elif cell.n_input:
        x = torch.zeros(cell.n_input, dtype=torch.float64, device=next(iter(p.values())).device)
    device = next(iter(p.values())).device
    h = _initial_states(inits, cell.n_state, trajectory, noise, scale, generator).to(device)
    F = _map(cell, p, x)
    h = _descend(F, h, opt_steps, lr)
    h = _newton(F, h, newton_steps)
    res = torch.linalg.vector_norm(F(h) - h, dim=1)
    keep = torch.isfinite(res) & (res <= residual_tol)
    points = _dedup(F, h[keep], dedup_tol, residual_tol)
    return linearize(cell, p, points, x, margin)


def _map(cell: Cell, params: Mapping[str, torch.Tensor], x: torch.Tensor | None):
    def F(h: torch.Tensor) -> torch.Tensor:
        xi = None if x is None else x.expand(*h.shape[:-1], x.shape[-1])
        return cell.step(params, h, xi)

    return F


def _initial_states(
    inits: torch.Tensor | int,
    N: int,
    trajectory: torch.Tensor | None,
    noise: float,
    scale: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    if isinstance(inits, torch.Tensor):
        if inits.ndim != 2 or inits.shape[1] != N:
            raise ValueError(f"inits must be (n, {N}), got shape {tuple(inits.shape)}")
        return inits.detach().to(torch.float64).clone()
    n = int(inits)
    if n < 1:
        raise ValueError(f"inits must be a positive number of initial states, got {n}")
    g = generator or torch.Generator().manual_seed(0)
    if trajectory is not None:
        flat = trajectory.detach().reshape(-1, N).to(torch.float64).cpu()
        idx = torch.randint(0, flat.shape[0], (n,), generator=g)
        return flat[idx] + noise * torch.randn(n, N, generator=g, dtype=torch.float64)
    return scale * torch.randn(n, N, generator=g, dtype=torch.float64)


def _descend(F, h: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    if steps <= 0:
        return h
    h = h.clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            q = 0.5 * (F(h) - h).square().sum()
            opt.zero_grad()
            q.backward()
            opt.step()
    return h.detach()


def _newton(F, h: torch.Tensor, steps: int) -> torch.Tensor:
    eye = torch.eye(h.shape[1], dtype=h.dtype, device=h.device)
    for _ in range(steps):
        r = F(h) - h
        q = r.square().sum(1)
        J = vmap(jacrev(F))(h)
        try:
            delta = torch.linalg.solve(J - eye, -r)
        except RuntimeError:
            delta = torch.linalg.lstsq(J - eye, -r[..., None]).solution[..., 0]
        step = torch.ones(h.shape[0], 1, dtype=h.dtype, device=h.device)
        accepted = torch.zeros(h.shape[0], dtype=torch.bool, device=h.device)
        new = h
        for _ in range(20):  # damping: halve the step where q does not decrease
            trial = h + step * delta
            q_trial = (F(trial) - trial).square().sum(1)
            ok = torch.isfinite(q_trial) & (q_trial <= q) & ~accepted
            new = torch.where(ok[:, None], trial, new)
            accepted |= ok
            if bool(accepted.all()):
                break
            step = torch.where(accepted[:, None], step, step / 2)
        h = torch.where(torch.isfinite(new).all(1, keepdim=True), new, h)
        if bool((q < 1e-28).all()):
            break
    return h


def _dedup(F, points: torch.Tensor, tol: float, residual_tol: float) -> torch.Tensor:
    kept: list[torch.Tensor] = []
    for p in points:
        same = False
        for k in kept:
            if float(torch.linalg.vector_norm(p - k)) <= tol * (1 + float(k.norm())):
                mid = 0.5 * (p + k)
                if float(torch.linalg.vector_norm(F(mid) - mid)) <= residual_tol:
                    same = True
                    break
        if not same:
            kept.append(p)
    if not kept:
        return points[:0]
    out = torch.stack(kept)
    return out[torch.argsort(out.norm(dim=1))]
