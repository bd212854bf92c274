"""Normal forms of codimension-one bifurcations of maps and their rank-one sNTK (paper 000 §3).

Each normal form is a map ``h_{t+1} = f(h_t, g)`` with its bifurcation at ``g* = 1`` (Fig. 2):

==================  ==============================  ====================================
form                map                             fixed points / cycles (stability)
==================  ==============================  ====================================
stability flip      ``g h``                         0 (stable iff |g| < 1)
pitchfork           ``g h − h³``                    0; ±√(g−1) for g > 1 (stable 1<g<2)
subcritical p.f.    ``g h + h³``                    0; ±√(1−g) for g < 1 (unstable)
saddle-node         ``h + (g − 1) − h²``            ±√(g−1) for g > 1 (+ stable); none
                                                    for g < 1 (orbits escape to −∞)
transcritical       ``g h − h²``                    0 (stable |g|<1) and g−1 (stable 1<g<3)
period doubling     ``−g h + h³``                   0 (stable |g|<1); stable 2-cycle ±√(g−1)
Neimark–Sacker      ``z ↦ g e^{iω} z − |z|² z``     0 (stable |g|<1); invariant circle
                    ``= e^{iω} (g − |z|²) z``       |z| = √(g−1)
                    (planar, ω = 1 rad)
==================  ==============================  ====================================

The parameter ``g`` is the only "weight", so the state-space NTK restricted to it is the rank-one
``sNTK_g = (D_g h)(D_g h)^T`` on the states ``h_1..h_T`` of a batch of initial conditions, and
``‖sNTK_g‖_2 = ‖D_g h‖²`` (its only nonzero eigenvalue). ``D_g h`` is computed by forward-mode
autodiff in ``g``, vectorized over the batch.

Closed form (stability flip): ``h_t = g^t h_0`` so ``D_g h_t = t g^{t−1} h_0`` and

    ‖sNTK_g‖_2 = ‖h_0‖² Σ_{s=0}^{T−1} (s+1)² g^{2s},

the paper's ``Σ_{t=0}^{T−1}(t+1)² g^{2t}`` up to the factor ``‖h_0‖²``. At ``g = 1`` the sum is
``T(T+1)(2T+1)/6 ≈ T³/3`` — the paper's "T³/3 for |g| < 1" holds as ``g → 1⁻`` (for fixed
``|g| < 1`` and ``T → ∞`` it tends to ``(1+g²)/(1−g²)³``). For ``|g| > 1`` the last terms dominate:
``≈ T² g^{2T} / (g² − 1)`` (the paper writes ``1 − g²``, a sign slip), i.e. ``O(g^{2T})``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import jacfwd, vmap

#: trajectories beyond this magnitude count as escaped (the sNTK is reported as inf)
ESCAPE = 1e6


@dataclass(frozen=True)
class NormalForm:
    """A one-parameter map with a codimension-one bifurcation at ``g_star``."""

    name: str
    kind: str
    dim: int
    _step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    _fixed: Callable[[float], list[tuple[list[float], bool]]]
    g_star: float = 1.0
    description: str = ""

    def step(self, h: torch.Tensor, g: torch.Tensor | float) -> torch.Tensor:
        """One step ``f(h, g)``; ``h`` is ``(..., dim)``."""
        return self._step(h, torch.as_tensor(g, dtype=h.dtype, device=h.device))

    def fixed_points(self, g: float) -> list[tuple[list[float], bool]]:
        """Analytic fixed points (or the 2-cycle / circle radius, see table) with stability."""
        return self._fixed(float(g))

    def trajectory(self, g: torch.Tensor | float, h0: torch.Tensor, T: int) -> torch.Tensor:
        """States ``h_1..h_T`` of shape ``(B, T, dim)`` from ``h0`` ``(B, dim)``."""
        h, out = h0, []
        for _ in range(T):
            h = self.step(h, g)
            out.append(h)
        return torch.stack(out, 1)

    def dg_states(self, g: float, h0: torch.Tensor, T: int) -> torch.Tensor:
        """``D_g h`` of shape ``(B, T, dim)`` by forward-mode autodiff, batched over ``h0``."""
        g_t = torch.tensor(float(g), dtype=h0.dtype, device=h0.device)

        def one(h: torch.Tensor) -> torch.Tensor:
            return jacfwd(lambda gg: self.trajectory(gg, h[None], T)[0])(g_t)

        return vmap(one)(h0)

    def sntk_g(self, g: float, h0: torch.Tensor, T: int) -> tuple[torch.Tensor, float]:
        """``(D_g h, ‖sNTK_g‖_2 = ‖D_g h‖²)``; the norm is ``inf`` if an orbit escapes."""
        with torch.no_grad():
            states = self.trajectory(g, h0, T)
        if not bool(torch.isfinite(states).all()) or float(states.abs().max()) > ESCAPE:
            return torch.full((*h0.shape[:1], T, self.dim), math.inf, dtype=h0.dtype), math.inf
        v = self.dg_states(g, h0, T)
        return v, float(v.square().sum())


def stability_flip_closed_form(g: float, h0: torch.Tensor, T: int) -> float:
    """``‖h_0‖² Σ_{s=0}^{T−1} (s+1)² g^{2s}`` — the exact ``‖sNTK_g‖_2`` of ``h' = g h``."""
    s = torch.arange(T, dtype=torch.float64)
    return float(h0.double().square().sum() * ((s + 1) ** 2 * float(g) ** (2 * s)).sum())


def _cubic(sign: float):
    def fixed(g: float) -> list[tuple[list[float], bool]]:
        out = [([0.0], abs(g) < 1)]
        r2 = (g - 1) if sign < 0 else (1 - g)
        if r2 > 0:
            r = math.sqrt(r2)
            d = 3 - 2 * g  # f'(±r) for both signs of the cubic term
            out += [([r], abs(d) < 1), ([-r], abs(d) < 1)]
        return out

    return fixed


def _saddle_node_fixed(g: float) -> list[tuple[list[float], bool]]:
    if g < 1:
        return []
    r = math.sqrt(g - 1)
    return [([r], abs(1 - 2 * r) < 1), ([-r], False)]


def _transcritical_fixed(g: float) -> list[tuple[list[float], bool]]:
    return [([0.0], abs(g) < 1), ([g - 1], abs(2 - g) < 1)]


def _flip_fixed(g: float) -> list[tuple[list[float], bool]]:
    out = [([0.0], abs(g) < 1)]
    if g > 1:  # the period-2 orbit ±√(g−1): multiplier (f'(r))² = (3(g−1) − g)²
        r = math.sqrt(g - 1)
        mult = (3 * (g - 1) - g) ** 2
        out += [([r], mult < 1), ([-r], mult < 1)]
    return out


OMEGA = 1.0


def _ns_step(h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c, s = math.cos(OMEGA), math.sin(OMEGA)
    x, y = h[..., 0], h[..., 1]
    amp = g - (x * x + y * y)
    return torch.stack([amp * (c * x - s * y), amp * (s * x + c * y)], -1)


def _ns_fixed(g: float) -> list[tuple[list[float], bool]]:
    out = [([0.0, 0.0], abs(g) < 1)]
    if g > 1:
        out.append(([math.sqrt(g - 1), 0.0], True))  # radius of the attracting invariant circle
    return out


NORMAL_FORMS: dict[str, NormalForm] = {
    nf.name: nf
    for nf in [
        NormalForm(
            "stability_flip",
            "stability flip",
            1,
            lambda h, g: g * h,
            lambda g: [([0.0], abs(g) < 1)],
            description="h' = g h",
        ),
        NormalForm(
            "pitchfork",
            "pitchfork",
            1,
            lambda h, g: g * h - h**3,
            _cubic(-1.0),
            description="h' = g h − h³",
        ),
        NormalForm(
            "subcritical_pitchfork",
            "subcritical pitchfork",
            1,
            lambda h, g: g * h + h**3,
            _cubic(1.0),
            description="h' = g h + h³",
        ),
        NormalForm(
            "saddle_node",
            "saddle-node",
            1,
            lambda h, g: h + (g - 1) - h**2,
            _saddle_node_fixed,
            description="h' = h + (g − 1) − h²",
        ),
        NormalForm(
            "transcritical",
            "transcritical",
            1,
            lambda h, g: g * h - h**2,
            _transcritical_fixed,
            description="h' = g h − h²",
        ),
        NormalForm(
            "period_doubling",
            "period doubling",
            1,
            lambda h, g: -g * h + h**3,
            _flip_fixed,
            description="h' = −g h + h³",
        ),
        NormalForm(
            "neimark_sacker",
            "Neimark–Sacker",
            2,
            _ns_step,
            _ns_fixed,
            description="z' = g e^{iω} z − |z|² z",
        ),
    ]
}


def figure2_data(
    forms: list[str] | None = None,
    *,
    g_values: torch.Tensor | None = None,
    ranges: tuple[float, ...] = (0.05, 0.1),
    T: int = 30,
    batch: int = 256,
    seed: int = 0,
) -> dict[str, dict]:
    """``‖sNTK_g‖_2`` over ``g`` for each form and initial-condition range (paper 000 Fig. 2).

    Initial conditions are ``h_0 ~ U[−a, a]^dim`` for each ``a`` in ``ranges`` (one fixed draw
    per ``a``, seed ``seed``). Per form and ``a``: ``norm`` over the grid ``g`` (``inf`` where an
    orbit escapes, as the saddle-node, transcritical and subcritical forms do on one side of
    ``g*``), ``value_at_gstar``, the ``g_peak`` and ``peak`` over the finite part of the curve,
    ``peak_over_gstar`` (``nan`` when the value at ``g*`` is infinite) and ``monotone_past_gstar``
    (the finite curve never decreases for ``g > g*``, the stability flip's signature).
    """
    forms = forms or list(NORMAL_FORMS)
    g_values = torch.linspace(0.5, 1.5, 101, dtype=torch.float64) if g_values is None else g_values
    out: dict[str, dict] = {}
    for name in forms:
        nf = NORMAL_FORMS[name]
        entry: dict = {"g": g_values.tolist(), "description": nf.description, "ranges": {}}
        for a in ranges:
            gen = torch.Generator().manual_seed(seed)
            h0 = (2 * torch.rand(batch, nf.dim, generator=gen, dtype=torch.float64) - 1) * a
            norms = torch.tensor(
                [nf.sntk_g(float(g), h0, T)[1] for g in g_values], dtype=torch.float64
            )
            at_star = nf.sntk_g(nf.g_star, h0, T)[1]
            finite = torch.isfinite(norms)
            masked = torch.where(finite, norms, torch.full_like(norms, -math.inf))
            i = int(masked.argmax())
            past = norms[(g_values > nf.g_star) & finite]
            entry["ranges"][str(a)] = {
                "norm": norms.tolist(),
                "value_at_gstar": at_star,
                "g_peak": float(g_values[i]) if bool(finite.any()) else math.nan,
                "peak": float(norms[i]) if bool(finite.any()) else math.nan,
                "peak_over_gstar": float(norms[i]) / at_star
                if math.isfinite(at_star)
                else math.nan,
                "monotone_past_gstar": bool((past[1:] >= past[:-1]).all())
                if past.numel() > 1
                else None,
                "escaped_fraction_of_grid": float((~finite).double().mean()),
            }
        out[name] = entry
    return out
