"""The local learning landscape along a direction and its normal-form fit (paper 000 Fig. 1E).

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
from typing import Any

import scipy.optimize
import torch
from torch.func import jvp

from sntkit.dynamics.normal_forms import NORMAL_FORMS, NormalForm
from sntkit.models.cell import rollout
from sntkit.ntk.state_ntk import StateNTK


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
        # torch.func.jvp is typed as returning a 2- or 3-tuple (no overload on has_aux)
        _, tangent = jvp(states, (theta0 + s * d,), (d,))  # type: ignore[misc]
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
        """Return the fit as a JSON-ready dict (the predicted curve as a list)."""
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
    s, L, nf = _check_fit_args(s_values, landscape, form, sign)
    y = L.log()
    ss_tot = float(((y - y.mean()) ** 2).sum())
    span = float((s.max() - s.min()) / 2) or 1.0
    a_abs = torch.logspace(-2, 0.5, 40, dtype=torch.float64) * g_span / span
    a_values = {1: a_abs, -1: -a_abs, 0: torch.cat([a_abs, -a_abs])}[sign]
    s0_values = (
        torch.linspace(float(s.min()), float(s.max()), 21, dtype=torch.float64)
        if fit_offset
        else torch.zeros(1, dtype=torch.float64)
    )
    g_grid = torch.linspace(nf.g_star - g_span, nf.g_star + g_span, 801, dtype=torch.float64)
    ssr0, a0, s00, r, h0 = _grid_search(
        nf, s, y, a_values, s0_values, g_grid, h0_ranges, T, batch, seed
    )

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
    params = list(opt.x) if opt.fun <= ssr0 else x0
    fit = _summarize_fit(L, y, model(params), params, fit_offset)
    n_fitted = 2 + int(fit_offset) + int(len(h0_ranges) > 1)
    return LandscapeFit(form=form, h0_range=float(r), num_fitted_parameters=n_fitted, **fit)


def _check_fit_args(
    s_values: torch.Tensor, landscape: torch.Tensor, form: str, sign: int
) -> tuple[torch.Tensor, torch.Tensor, NormalForm]:
    """``s`` and ``L`` as float64 vectors and the normal form, or ``ValueError`` naming the fix."""
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
    return s, L, NORMAL_FORMS[form]


def _grid_search(
    nf: NormalForm,
    s: torch.Tensor,
    y: torch.Tensor,
    a_values: torch.Tensor,
    s0_values: torch.Tensor,
    g_grid: torch.Tensor,
    h0_ranges: Sequence[float],
    T: int,
    batch: int,
    seed: int,
) -> tuple[float, float, float, float, torch.Tensor]:
    """Best ``(ssr, a, s0, r, h0)`` on the grid, the curve tabulated on ``g_grid`` per ``r``."""
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
    return (*best, draws[best[3]])


def _summarize_fit(
    L: torch.Tensor,
    y: torch.Tensor,
    log_curve: torch.Tensor,
    params: Sequence[float],
    fit_offset: bool,
) -> dict[str, Any]:
    """Return the fitted scale ``c`` (mean log residual), both ``R²`` and the predicted curve."""
    ss_tot = float(((y - y.mean()) ** 2).sum())
    log_c = float((y - log_curve).mean())
    pred_log = log_c + log_curve
    ss_res = float((y - pred_log).square().sum())
    pred = pred_log.exp()
    lin_tot = float((L - L.mean()).square().sum())
    return {
        "a": float(params[0]),
        "s0": float(params[1]) if fit_offset else 0.0,
        "c": math.exp(log_c),
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        "r2_linear": 1 - float((L - pred).square().sum()) / lin_tot if lin_tot > 0 else 0.0,
        "predicted": pred,
    }


def _h0(nf: NormalForm, r: float, batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(batch, nf.dim, generator=gen, dtype=torch.float64) - 1) * r


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``fp(xp)`` at ``x`` (``xp`` increasing)."""
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    w = (x - x0) / (x1 - x0)
    return fp[idx - 1] * (1 - w) + fp[idx] * w
