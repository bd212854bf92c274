"""The bifurcation channel of the sNTK and the local landscape (paper 000 §3, App. A.1, Fig. 1E).

**Bifurcation direction.** Near a codimension-one bifurcation let ``λ_c`` be the critical
eigenvalue of ``A = D_h F(h*, θ)`` at the critical fixed point ``h*`` (``F(h*, θ) = h*``), with
right/left eigenvectors ``v``, ``u`` (``u^T v = 1``). First-order perturbation theory gives

    dλ_c = u^T (dA) v / (u^T v),
    dA = D²_{hθ}F [dθ] + D²_{hh}F [dh*],     dh* = (I − A)^{-1} D_θF dθ,

the second term of ``dA`` being the motion of the fixed point itself (implicit function
theorem). ``∇_θ λ_c`` is computed exactly by reverse-mode autodiff of
``θ ↦ u^T D_hF(h* + (I − A)^{-1}(F(h*, θ) − F(h*, θ_0)), θ) v`` at ``θ_0``, whose derivative is
the formula above. For a real ``λ_c`` the gradient is real; for a complex pair ``|λ_c|`` is
differentiated (``d|λ| = Re(λ̄ dλ)/|λ|``), the quantity that crosses 1 at Neimark–Sacker. The
*bifurcation direction* is ``e_g = ∇_θ λ_c / ‖∇_θ λ_c‖`` over the trained parameters.

**Decomposition** (App. A.1, with the local isometry ``θ ↦ (g, R)``, ``g`` along ``e_g``): with
``J = D_θ h`` the parameter-to-state Jacobian of :func:`sntkit.ntk.state_ntk`,

    sNTK = J J^T = sNTK_g + sNTK_R,   sNTK_g = (J e_g)(J e_g)^T (rank one),
    sNTK_R = J (I − e_g e_g^T) J^T,

and the *dominance ratio* ``‖sNTK_g‖₂ / ‖sNTK‖₂ = ‖J e_g‖² / λ_max(sNTK)`` (``λ_max`` by the block
Krylov :func:`sntkit.linalg.eigsh`) measures how much of the kernel the bifurcation channel
carries; it tends to 1 as ``θ`` approaches the bifurcation (§3). The cosine between ``e_g`` and
the top eigenvector of the state-space Fisher ``J^T J`` says whether gradient descent's stiffest
direction is the bifurcation direction.

**Local landscape** (Fig. 1E). Along a unit direction ``d`` (``e_g`` or the top Fisher
eigenvector), ``L(s) = ‖J(θ* + s d) d‖²`` is the sNTK restricted to ``d``. The matching normal
form predicts ``L(s) ≈ c · ‖sNTK_g^{NF}‖(g* + a (s − s_0))`` (:mod:`sntkit.dynamics.normal_forms`):
:func:`fit_normal_form` fits the scale ``a``, the amplitude ``c`` and optionally the offset
``s_0`` and the normal form's initial-condition range by least squares on ``log L``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import scipy.optimize
import torch
from torch.func import jacfwd, jacrev, jvp

from sntkit.dynamics.normal_forms import NORMAL_FORMS, NormalForm
from sntkit.linalg import eigsh
from sntkit.models.cell import rollout
from sntkit.ntk.state_ntk import StateNTK
from sntkit.operators import FunctionOperator, Operator

#: an eigenvalue with ``|Im λ|`` above this is treated as one of a complex pair
IMAG_TOL = 1e-10


def eigenvalue_gradient(
    ntk: StateNTK,
    point: torch.Tensor,
    target: complex = 1.0,
    *,
    x: torch.Tensor | None = None,
    newton_steps: int = 20,
) -> tuple[torch.Tensor, complex]:
    """``∇_θ λ_c`` over the NTK's trained parameters, ``(P,)`` float64, and ``λ_c`` (module).

    ``point`` ``(N,)`` is (near) the critical fixed point at the NTK's parameters; it is
    polished by ``newton_steps`` Newton steps. ``λ_c`` is the eigenvalue of ``D_h F`` there
    closest to ``target``; for a complex ``λ_c`` the gradient is that of ``|λ_c|``. ``x`` is the
    constant input of the fixed point (default none / zero).
    """
    cell = ntk.cell
    N = cell.n_state
    if not isinstance(point, torch.Tensor) or point.shape != (N,):
        raise ValueError(
            f"point must be one state of shape ({N},), got {getattr(point, 'shape', point)}"
        )
    base = {k: v.detach().to(torch.float64) for k, v in ntk.params.items()}
    theta0 = ntk.flatten(base)
    if x is None and cell.n_input:
        x = torch.zeros(cell.n_input, dtype=torch.float64, device=theta0.device)
    xi = None if x is None else x.detach().to(torch.float64)

    def F(h: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return cell.step(base | ntk.unflatten(theta), h, xi)

    h = point.detach().to(torch.float64).clone()
    eye = torch.eye(N, dtype=torch.float64, device=h.device)
    for _ in range(newton_steps):
        A = jacfwd(F)(h, theta0)
        h = h - torch.linalg.solve(A - eye, F(h, theta0) - h)
    A = jacfwd(F)(h, theta0)
    evals, right = torch.linalg.eig(A)
    c = int((evals - complex(target)).abs().argmin())
    lam = complex(evals[c])
    v = right[:, c]
    u = torch.linalg.inv(right)[c]  # the left eigenvector with u^T v = 1
    M = torch.linalg.inv(eye - A)
    is_complex = abs(lam.imag) > IMAG_TOL

    def lam_of(theta: torch.Tensor) -> torch.Tensor:
        h_theta = h + M @ (F(h, theta) - F(h, theta0))  # dh*/dθ = (I − A)^{-1} D_θF at θ_0
        val = u @ jacfwd(F)(h_theta, theta).to(torch.complex128) @ v
        return val.abs() if is_complex else val.real

    return jacrev(lam_of)(theta0), lam


@dataclass(frozen=True)
class ChannelDecomposition:
    """``sNTK = sNTK_g + sNTK_R`` at a bifurcation (module docstring).

    ``channel = J e_g`` (states ``(B, T, N)``) defines the rank-one ``sNTK_g``
    (:attr:`sntk_g`); ``residual`` is the operator ``sNTK_R``; ``top_fisher_vector`` the unit
    top eigenvector of ``J^T J`` (``(P,)``, sign arbitrary).
    """

    e_g: torch.Tensor
    critical_eigenvalue: complex
    channel: torch.Tensor
    sntk_g_norm: float
    sntk_norm: float
    dominance_ratio: float
    fisher_cosine: float
    top_fisher_vector: torch.Tensor
    residual: Operator

    @property
    def sntk_g(self) -> Operator:
        """``sNTK_g = (J e_g)(J e_g)^T`` as a (self-adjoint, rank-one) operator on states."""
        w = self.channel

        def apply(Y: torch.Tensor) -> torch.Tensor:
            coef = (Y * w).flatten(1).sum(1)
            return coef.reshape(-1, *[1] * w.ndim) * w

        return FunctionOperator(
            apply, None, w.shape, w.shape, dtype=w.dtype, device=w.device, batched=True,
            name="sNTK_g",
        )  # fmt: skip

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
    tol: float = 1e-8,
) -> ChannelDecomposition:
    """Split ``ntk``'s sNTK at a bifurcation with critical fixed point ``point`` (module).

    ``target`` selects the critical eigenvalue (the one nearest it: ``1`` for fold-type,
    ``−1`` for period doubling, a point on the unit circle for Neimark–Sacker). ``λ_max(sNTK)``
    comes from :func:`sntkit.linalg.eigsh` (relative residual ``tol``, seed ``seed``).
    """
    grad, lam = eigenvalue_gradient(ntk, point, target, x=x)
    norm = float(grad.norm())
    if not math.isfinite(norm) or norm == 0:
        raise ValueError(
            "the critical eigenvalue does not depend on the trained parameters (or its gradient "
            "is not finite); train other parameters or pick another critical point"
        )
    J = ntk.jacobian
    e_g = (grad / norm).to(dtype=J.dtype, device=J.device)
    w = J.matvec(e_g)
    g_norm = float(w.double().square().sum())
    values, vectors = eigsh(ntk.spectral_operator, 1, seed=seed, tol=tol)
    if ntk.spectral_operator is ntk.fisher:
        v1 = vectors[0]
    else:  # map the top sNTK eigenvector to parameter space: v = J^T u / ‖J^T u‖
        v1 = J.rmatvec(vectors[0])
        v1 = v1 / v1.norm()
    top = float(values[0])
    return ChannelDecomposition(
        e_g=e_g,
        critical_eigenvalue=lam,
        channel=w,
        sntk_g_norm=g_norm,
        sntk_norm=top,
        dominance_ratio=g_norm / top,
        fisher_cosine=float((e_g.double() @ v1.double()).abs()),
        top_fisher_vector=v1,
        residual=J @ _complement_projector(e_g) @ J.T,
    )


def _complement_projector(e: torch.Tensor) -> Operator:
    """``I − e e^T`` on ``(P,)`` (matrix-free: no ``P × P`` matrix)."""

    def apply(V: torch.Tensor) -> torch.Tensor:
        return V - (V @ e)[:, None] * e

    P = e.shape[0]
    return FunctionOperator(
        apply, None, P, P, dtype=e.dtype, device=e.device, batched=True, name="I − e_g e_g^T"
    )


def local_landscape(ntk: StateNTK, direction: torch.Tensor, s_values: torch.Tensor) -> torch.Tensor:
    """``L(s) = ‖J(θ* + s d) d‖²`` for the unit direction ``d`` along ``direction`` (Fig. 1E).

    ``θ*`` are the NTK's trained parameters, ``direction`` is ``(P,)``; one forward-mode
    derivative of the unrolled trajectory (same ``h0``, inputs and ``T``) per ``s``.
    """
    P = ntk.num_params
    if direction.shape != (P,) or not float(direction.norm()) > 0:
        raise ValueError(
            f"direction must be a nonzero vector of shape ({P},), got {direction.shape}"
        )
    base = dict(ntk.params)
    theta0 = ntk.flatten(base)
    d = (direction / direction.norm()).to(theta0)
    x, h0 = ntk.inputs, ntk.h0
    T = ntk.state_shape[1]

    def states(theta: torch.Tensor) -> torch.Tensor:
        return rollout(ntk.cell, base | ntk.unflatten(theta), h0, x, None if x is not None else T)

    out = []
    for s in torch.as_tensor(s_values, dtype=torch.float64).tolist():
        _, tangent = jvp(states, (theta0 + s * d,), (d,))
        out.append(float(tangent.double().square().sum()))
    return torch.tensor(out, dtype=torch.float64)


@dataclass(frozen=True)
class LandscapeFit:
    """``L(s) ≈ c · ‖sNTK_g^{NF}‖(g* + a (s − s0))`` for normal form ``form``.

    ``h0_range``: the normal form's initial conditions ``U[−h0_range, h0_range]``; ``r2`` is
    ``1 − SS_res/SS_tot`` of ``log L`` (the fitted scale), ``r2_linear`` the same of ``L``;
    ``predicted`` the fitted curve on the given ``s``.
    """

    form: str
    a: float
    s0: float
    c: float
    h0_range: float
    r2: float
    r2_linear: float
    predicted: torch.Tensor
    num_fitted_parameters: int

    def to_dict(self) -> dict:
        return {
            "form": self.form,
            "a": self.a,
            "s0": self.s0,
            "c": self.c,
            "h0_range": self.h0_range,
            "r2": self.r2,
            "r2_linear": self.r2_linear,
            "num_fitted_parameters": self.num_fitted_parameters,
        }


def fit_normal_form(
    s_values: torch.Tensor,
    landscape: torch.Tensor,
    form: str = "pitchfork",
    *,
    T: int = 25,
    h0_ranges: Sequence[float] = (0.05, 0.1, 0.2, 0.5),
    batch: int = 64,
    g_span: float = 1.0,
    sign: int = 0,
    fit_offset: bool = True,
    seed: int = 0,
) -> LandscapeFit:
    """Least-squares fit of a normal form's ``‖sNTK_g‖`` curve to a landscape, on ``log L``.

    The model is ``log L(s) = log c + log N_r(g* + a (s − s0))`` with ``N_r`` the normal form's
    ``‖sNTK_g‖_2`` for ``batch`` initial conditions ``U[−r, r]`` (seed ``seed``) over ``T``
    steps. For given ``(a, s0, r)`` the best ``log c`` is the mean residual, so the search is over
    ``a`` (log-spaced, both signs unless ``sign = ±1`` restricts it — along ``e_g`` it must be
    ``+1``, as ``λ_c`` grows with ``s``), ``s0`` (if ``fit_offset``; else 0) and ``r`` in
    ``h0_ranges``: a grid over ``g ∈ g* ± g_span`` (tabulated curve, linear interpolation in
    ``log``) followed by Nelder–Mead on ``(a, s0)`` with the exact curve. Points where the normal
    form's orbits escape (infinite ``N_r``) are not admissible.
    """
    if form not in NORMAL_FORMS:
        raise ValueError(f"unknown normal form {form!r}; choose from {list(NORMAL_FORMS)}")
    if sign not in (-1, 0, 1):
        raise ValueError(f"sign must be -1, 0 or 1, got {sign}")
    s = torch.as_tensor(s_values, dtype=torch.float64).reshape(-1)
    L = torch.as_tensor(landscape, dtype=torch.float64).reshape(-1)
    if s.shape != L.shape or s.numel() < 3:
        raise ValueError(
            f"s_values and landscape must have the same length >= 3, got {s.shape}, {L.shape}"
        )
    if not bool((torch.isfinite(L) & (L > 0)).all()):
        raise ValueError("the landscape must be positive and finite to be fitted on a log scale")
    nf = NORMAL_FORMS[form]
    y = L.log()
    ss_tot = float(((y - y.mean()) ** 2).sum())
    span = float((s.max() - s.min()) / 2) or 1.0
    g_grid = torch.linspace(nf.g_star - g_span, nf.g_star + g_span, 801, dtype=torch.float64)
    a_abs = torch.logspace(-2, 0.5, 40, dtype=torch.float64) * g_span / span
    a_values = {1: a_abs, -1: -a_abs, 0: torch.cat([a_abs, -a_abs])}[sign]
    s0_values = (
        torch.linspace(float(s.min()), float(s.max()), 21, dtype=torch.float64)
        if fit_offset
        else torch.zeros(1, dtype=torch.float64)
    )
    best: tuple[float, float, float, float] | None = None  # (ssr, a, s0, r)
    draws: dict[float, torch.Tensor] = {}
    for r in h0_ranges:
        h0 = _h0(nf, r, batch, seed)
        draws[r] = h0
        log_table = nf.sntk_g_curve(g_grid, h0, T)[0].log()
        g = nf.g_star + a_values[:, None, None] * (s[None, None, :] - s0_values[None, :, None])
        inside = (g >= g_grid[0]) & (g <= g_grid[-1])
        m = _interp(g.clamp(g_grid[0], g_grid[-1]), g_grid, log_table)
        resid = y - m
        resid = resid - resid.mean(-1, keepdim=True)
        ssr = resid.square().sum(-1)
        ssr = torch.where(inside.all(-1) & torch.isfinite(ssr), ssr, torch.inf)
        k = int(ssr.argmin())
        if math.isfinite(float(ssr.flatten()[k])) and (
            best is None or float(ssr.flatten()[k]) < best[0]
        ):
            i, j = divmod(k, ssr.shape[1])
            best = (float(ssr[i, j]), float(a_values[i]), float(s0_values[j]), r)
    if best is None:
        raise ValueError(
            "no normal-form scale gives a finite curve on these s values; widen g_span or "
            "change h0_ranges"
        )
    _, a0, s00, r = best
    h0 = draws[r]

    def model(params: Sequence[float]) -> torch.Tensor:
        a, s0 = params[0], params[1] if fit_offset else 0.0
        return nf.sntk_g_curve(nf.g_star + a * (s - s0), h0, T)[0].log()

    def objective(params: Sequence[float]) -> float:
        if sign and params[0] * sign <= 0:
            return math.inf
        resid = y - model(params)
        val = float((resid - resid.mean()).square().sum())
        return val if math.isfinite(val) else math.inf

    x0 = [a0, s00] if fit_offset else [a0]
    opt = scipy.optimize.minimize(
        objective, x0, method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-14 * max(ss_tot, 1e-300), "maxiter": 2000},
    )  # fmt: skip
    params = list(opt.x) if opt.fun <= best[0] else x0
    log_curve = model(params)
    log_c = float((y - log_curve).mean())
    pred_log = log_c + log_curve
    ss_res = float((y - pred_log).square().sum())
    pred = pred_log.exp()
    lin_tot = float((L - L.mean()).square().sum())
    return LandscapeFit(
        form=form,
        a=float(params[0]),
        s0=float(params[1]) if fit_offset else 0.0,
        c=math.exp(log_c),
        h0_range=float(r),
        r2=1 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        r2_linear=1 - float((L - pred).square().sum()) / lin_tot if lin_tot > 0 else 0.0,
        predicted=pred,
        num_fitted_parameters=2 + int(fit_offset) + int(len(h0_ranges) > 1),
    )


def _h0(nf: NormalForm, r: float, batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(batch, nf.dim, generator=gen, dtype=torch.float64) - 1) * r


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``fp(xp)`` at ``x`` (``xp`` increasing)."""
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    w = (x - x0) / (x1 - x0)
    return fp[idx - 1] * (1 - w) + fp[idx] * w
