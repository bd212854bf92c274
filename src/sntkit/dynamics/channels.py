"""The bifurcation channel of the sNTK and the local landscape (paper 000 §3, App. A.1, Fig. 1E).

Near a codimension-one bifurcation with critical eigenvalue ``λ_c`` of ``D_h F`` at the critical
fixed point ``h*``, the *bifurcation direction* in parameter space is

    e_g = ∇_θ λ_c / ‖∇_θ λ_c‖,     dλ_c = u^T (dJ) v / (u^T v),

with ``u, v`` the left/right eigenvectors and ``dJ`` the total change of ``J = D_h F(h*(θ), θ)``,
including the motion of the fixed point ``dh* = (I − D_h F)^{-1} D_θ F dθ`` (for a complex pair
the gradient of ``|λ_c|`` is used). Splitting parameter space into ``e_g`` and its complement
gives (App. A.1, with the isometry ``θ ↦ (g, R)``)

    sNTK = sNTK_g + sNTK_R,   sNTK_g = (J e_g)(J e_g)^T (rank one),
    sNTK_R = J (I − e_g e_g^T) J^T,

and the *dominance ratio* ``‖sNTK_g‖₂ / ‖sNTK‖₂ = ‖J e_g‖² / λ_max(sNTK)`` says how much of the
kernel the bifurcation channel carries. The *local landscape* along a unit direction ``d`` is
``L(s) = ‖J(θ* + s d) d‖²``; it is compared with the normal form's ``‖sNTK_g‖(g* + a s)`` by
fitting the scale ``a`` and an amplitude ``c`` (least squares on ``log L``; R² reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import jacfwd, jacrev, jvp

from sntkit.dynamics.fixed_points import FixedPoints
from sntkit.dynamics.normal_forms import NORMAL_FORMS
from sntkit.linalg import eigsh
from sntkit.models.cell import rollout
from sntkit.ntk.state_ntk import StateNTK
from sntkit.operators import Dense, Identity, Operator


def eigenvalue_gradient(
    ntk: StateNTK, point: torch.Tensor, target: complex, x: torch.Tensor | None = None
) -> tuple[torch.Tensor, complex]:
    """``∇_θ λ_c`` (flattened trained parameters, ``(P,)``) and ``λ_c``.

    ``point`` is (near) the critical fixed point at the NTK's parameters; it is polished by a
    few Newton steps. ``λ_c`` is the Jacobian eigenvalue closest to ``target``; for a complex
    ``λ_c`` the gradient is that of ``|λ_c|``.
    """
    cell, space = ntk.cell, ntk.space
    theta0 = space.vector().detach().to(torch.float64)
    params0 = {k: v.to(torch.float64) for k, v in space.params.items()}
    xi = None if x is None else x.to(torch.float64)

    def F(h: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        p = params0 | {k: v.to(torch.float64) for k, v in space.unflatten(theta).items()}
        return cell.step(p, h, xi)

    h = point.detach().to(torch.float64).clone()
    eye = torch.eye(h.shape[0], dtype=torch.float64)
    for _ in range(20):
        A = jacfwd(F)(h, theta0)
        h = h - torch.linalg.solve(A - eye, F(h, theta0) - h)
    A = jacfwd(F)(h, theta0)
    evals, right = torch.linalg.eig(A)
    c = int((evals - complex(target)).abs().argmin())
    lam = complex(evals[c])
    v = right[:, c]
    u = torch.linalg.inv(right)[c]  # left eigenvector, u·v = 1
    M = torch.linalg.inv(eye - A)

    def lam_of(theta: torch.Tensor) -> torch.Tensor:
        # first-order fixed-point motion: d h*/dθ = (I − A)^{-1} D_θ F, exact at θ0
        h_theta = h + M @ (F(h, theta) - F(h, theta0))
        J = jacfwd(F)(h_theta, theta).to(torch.complex128)
        val = u @ J @ v
        return val.abs() if abs(lam.imag) > 1e-10 else val.real

    return jacrev(lam_of)(theta0), lam


@dataclass(frozen=True)
class ChannelDecomposition:
    """``sNTK = sNTK_g + sNTK_R`` at a bifurcation (see module docstring)."""

    e_g: torch.Tensor  # (P,) unit bifurcation direction
    critical_eigenvalue: complex
    channel: torch.Tensor  # J e_g, states (B, T, N); sNTK_g = channel channel^T
    sntk_g_norm: float  # ‖J e_g‖²
    sntk_norm: float  # λ_max(sNTK)
    dominance_ratio: float
    fisher_cosine: float  # |⟨e_g, top Fisher eigenvector⟩|
    residual: Operator  # sNTK_R = J (I − e_g e_g^T) J^T

    def to_dict(self) -> dict:
        return {
            "critical_eigenvalue": [self.critical_eigenvalue.real, self.critical_eigenvalue.imag],
            "sntk_g_norm": self.sntk_g_norm,
            "sntk_norm": self.sntk_norm,
            "dominance_ratio": self.dominance_ratio,
            "fisher_cosine": self.fisher_cosine,
        }


def channel_decomposition(
    ntk: StateNTK,
    point: torch.Tensor,
    target: complex = 1.0,
    *,
    x: torch.Tensor | None = None,
    seed: int = 0,
) -> ChannelDecomposition:
    """Decompose ``ntk`` at a bifurcation with critical fixed point ``point`` (see module)."""
    grad, lam = eigenvalue_gradient(ntk, point, target, x)
    norm = float(grad.norm())
    if not math.isfinite(norm) or norm == 0:
        raise ValueError("the critical eigenvalue does not depend on the trained parameters")
    e_g = (grad / norm).to(ntk.states.dtype)
    w = ntk.jacobian.matvec(e_g)
    g_norm = float(w.double().square().sum())
    lam_max, vecs = eigsh(ntk.spectral_operator, 1, seed=seed)
    top = float(lam_max[0])
    if ntk.spectral_operator is ntk.fisher:
        v1 = vecs[0]
    else:  # map the top NTK eigenvector to parameter space: v = J^T u / ‖J^T u‖
        v1 = ntk.jacobian.rmatvec(vecs[0])
        v1 = v1 / v1.norm()
    residual = _residual(ntk.jacobian, e_g)
    return ChannelDecomposition(
        e_g=e_g,
        critical_eigenvalue=lam,
        channel=w,
        sntk_g_norm=g_norm,
        sntk_norm=top,
        dominance_ratio=g_norm / top,
        fisher_cosine=float((e_g.double() @ v1.double()).abs()),
        residual=residual,
    )


def _residual(J: Operator, e_g: torch.Tensor) -> Operator:
    """``J (I − e_g e_g^T) J^T`` as an operator on the states."""
    P = e_g.shape[0]
    proj = Identity(P, dtype=e_g.dtype, device=e_g.device) - Dense(torch.outer(e_g, e_g))
    return J @ proj @ J.T


def local_landscape(ntk: StateNTK, direction: torch.Tensor, s_values: torch.Tensor) -> torch.Tensor:
    """``L(s) = ‖J(θ* + s d) d‖²`` for a unit direction ``d`` over ``s_values`` (Fig. 1E)."""
    d = direction / direction.norm()
    theta0 = ntk.space.vector()
    cell, space, h0, x = ntk.cell, ntk.space, ntk.h0, ntk.inputs
    T = ntk.state_shape[1]
    out = []
    for s in s_values.tolist():
        theta = theta0 + s * d

        def states(t: torch.Tensor) -> torch.Tensor:
            return rollout(cell, space.merged(t), h0, x, None if x is not None else T)

        _, tangent = jvp(states, (theta,), (d,))
        out.append(float(tangent.double().square().sum()))
    return torch.tensor(out, dtype=torch.float64)


@dataclass(frozen=True)
class LandscapeFit:
    """``L(s) ≈ c · ‖sNTK_g^{NF}‖(g* + a (s − s0))`` fitted on ``log L``."""

    form: str
    a: float
    s0: float
    c: float
    h0_range: float
    r2: float
    predicted: torch.Tensor

    def to_dict(self) -> dict:
        return {
            "form": self.form,
            "a": self.a,
            "s0": self.s0,
            "c": self.c,
            "h0_range": self.h0_range,
            "r2": self.r2,
            "num_fitted_parameters": 4,
        }


def fit_normal_form(
    s_values: torch.Tensor,
    landscape: torch.Tensor,
    form: str = "pitchfork",
    *,
    T: int = 25,
    h0_ranges: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5),
    batch: int = 64,
    g_span: float = 1.0,
    sign: int = 0,
    seed: int = 0,
) -> LandscapeFit:
    """Least-squares fit of the normal form's sNTK_g curve to a landscape on a log scale.

    The normal form's ``‖sNTK_g‖`` is tabulated once per initial-condition range ``h0_ranges``
    on ``g ∈ [g* − g_span, g* + g_span]`` and interpolated; the scale ``a`` (both signs), the
    offset ``s0`` of the bifurcation within the window and the range are searched on grids, and
    ``log c`` is the mean log-ratio. Four parameters are fitted in all; ``R² = 1 − SS_res/SS_tot``
    of ``log L``. ``sign=+1`` restricts ``a > 0`` (``g`` grows with ``s``, as it must when ``s``
    moves along ``e_g = ∇λ_c/‖∇λ_c‖``), ``sign=-1`` to ``a < 0``; ``0`` allows both.
    """
    nf = NORMAL_FORMS[form]
    y = landscape.double().log()
    if not bool(torch.isfinite(y).all()):
        raise ValueError("the landscape must be positive and finite to fit on a log scale")
    s = s_values.double()
    span = float((s.max() - s.min()) / 2) or 1.0
    g_grid = torch.linspace(nf.g_star - g_span, nf.g_star + g_span, 801, dtype=torch.float64)
    a_values = torch.logspace(-2, 0.5, 40, dtype=torch.float64) * g_span / span
    s0_values = torch.linspace(float(s.min()), float(s.max()), 21, dtype=torch.float64)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    best: LandscapeFit | None = None
    for r in h0_ranges:
        gen = torch.Generator().manual_seed(seed)
        h0 = (2 * torch.rand(batch, nf.dim, generator=gen, dtype=torch.float64) - 1) * r
        table = torch.tensor([nf.sntk_g(float(g), h0, T)[1] for g in g_grid], dtype=torch.float64)
        log_table = table.log()
        signed = {1: a_values, -1: -a_values, 0: torch.cat([a_values, -a_values])}[sign]
        for a in signed.tolist():
            for s0 in s0_values.tolist():
                g = nf.g_star + a * (s - s0)
                if float(g.min()) < float(g_grid[0]) or float(g.max()) > float(g_grid[-1]):
                    continue
                log_curve = _interp(g, g_grid, log_table)
                if not bool(torch.isfinite(log_curve).all()):
                    continue
                log_c = float((y - log_curve).mean())
                resid = y - (log_c + log_curve)
                r2 = 1 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 0.0
                if best is None or r2 > best.r2:
                    best = LandscapeFit(
                        form, a, s0, math.exp(log_c), r, r2, (log_c + log_curve).exp()
                    )
    if best is None:
        raise ValueError("no normal-form scale gave a finite curve on these s values")
    return best


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``fp(xp)`` at ``x`` (``xp`` increasing)."""
    idx = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    w = (x - x0) / (x1 - x0)
    return fp[idx - 1] * (1 - w) + fp[idx] * w


def critical_point_of(points: FixedPoints, location: list[float]) -> torch.Tensor:
    """The fixed point of ``points`` nearest to ``location``."""
    loc = torch.tensor(location, dtype=points.locations.dtype)
    return points.locations[int(torch.cdist(points.locations, loc[None]).argmin())]
