"""Normal forms of codimension-one bifurcations of maps and their rank-one sNTK (paper 000 §3).

The data of paper 000 Fig. 2 come from :func:`figure2_data`.

Each normal form is a map ``h_{t+1} = f(h_t, g)`` with its bifurcation at ``g* = 1``:

====================  ================================  ==========================================
form                  map                               fixed points (multiplier) / invariant sets
====================  ================================  ==========================================
stability flip        ``g h``                           0 (``g``)
pitchfork             ``g h − h³``                      0 (``g``); ``±√(g−1)`` for g > 1 (``3−2g``)
subcritical pitchf.   ``g h + h³``                      0 (``g``); ``±√(1−g)`` for g < 1 (``3−2g``)
saddle-node           ``h + (g − 1) − h²``              ``±√(g−1)`` for g ≥ 1 (``1 ∓ 2√(g−1)``);
                                                        none for g < 1 (orbits run off to −∞)
transcritical         ``g h − h²``                      0 (``g``) and ``g − 1`` (``2 − g``)
period doubling       ``−g h + h³``                     0 (``−g``), ``±√(1+g)`` (``3 + 2g``);
                                                        2-cycle ``±√(g−1)`` for g > 1, multiplier
                                                        of ``f∘f``: ``(2g − 3)²``
Neimark–Sacker        ``z ↦ e^{iω} (g − |z|²) z``       0 (``g e^{±iω}``); invariant circle
                      (planar, ω = 1 rad)               ``|z| = √(g−1)`` for g > 1 (radial ``3−2g``)
====================  ================================  ==========================================

All are supercritical except the subcritical pitchfork. The period-doubling form uses ``+h³`` so
that the 2-cycle born at ``g* = 1`` is stable (``−g h − h³`` would be the subcritical flip). For
Neimark–Sacker the cubic coefficient is ``d = −e^{iω}`` (the map ``g e^{iω} z − e^{iω}|z|² z``)
rather than ``d = −1``: then ``|z'| = |g − |z|²| |z|`` depends on ``|z|`` only, the radius obeys the
pitchfork map ``r ↦ (g − r²) r`` and the invariant circle is exact; the first Lyapunov coefficient
``Re(e^{−iω} d) = −1 < 0`` is that of ``d = −1`` rounded by a rotation, so both are supercritical.

**Rank-one sNTK.** ``g`` is the only parameter, so the state-space NTK restricted to it is
``sNTK_g = (D_g h)(D_g h)^T`` on the states ``h_1..h_T`` (all ``B`` initial conditions, all
coordinates): a rank-one operator whose only nonzero eigenvalue is ``‖D_g h‖²``, hence
``‖sNTK_g‖_2 = ‖D_g h‖²``. ``D_g h`` is one forward-mode derivative in the scalar ``g``
(``torch.func.jacfwd``) of the whole batched trajectory; grids of ``g`` are vmapped.

**Closed form (stability flip).** ``h_t = g^t h_0`` gives ``D_g h_t = t g^{t−1} h_0`` for the states
``t = 1..T``, so

    ‖sNTK_g‖_2 = ‖h_0‖² Σ_{t=1}^{T} t² g^{2(t−1)} = ‖h_0‖² Σ_{t=0}^{T−1} (t+1)² g^{2t},

the paper's sum (§3, indexed from 0) times ``‖h_0‖² = Σ_b h_{0,b}²``. Asymptotics, with
``S_T(g) = Σ_{t=0}^{T−1} (t+1)² g^{2t}``:

* at ``g = 1``: ``S_T = T(T+1)(2T+1)/6 ≈ T³/3``; by continuity ``S_T → T³/3`` as ``g → 1⁻``
  (more precisely while ``T(1 − g²) ≪ 1``). This is what the paper's "``T³/3`` for ``|g| < 1``"
  means: for a *fixed* ``|g| < 1`` and ``T → ∞`` the sum converges, to ``(1 + g²)/(1 − g²)³``;
* for ``|g| > 1``: ``S_T ≈ T² g^{2T} / (g² − 1) = O(T² g^{2T})`` (the paper's ``1 − g²`` is a sign
  slip; the sum is positive).

Orbits that leave ``|h| <= ESCAPE`` (saddle-node below ``g*``, the negative side of the
transcritical form, the subcritical pitchfork) make the sNTK unbounded; such curves are reported
as ``inf`` there, and :func:`figure2_data` also gives the sum over the bounded orbits only.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.func import jacfwd, jvp, vmap

#: trajectories beyond this magnitude count as escaped (their sNTK is unbounded)
ESCAPE = 1e6
#: rotation angle of the Neimark–Sacker form
OMEGA = 1.0


@dataclass(frozen=True)
class Branch:
    """A fixed point or invariant set of a normal form at one ``g`` (analytic).

    ``kind`` is ``"fixed point"``, ``"2-cycle"`` (``location`` is one point of the cycle,
    ``multipliers`` those of ``f∘f``) or ``"invariant circle"`` (``location`` ``(r, 0)``,
    ``multipliers`` the radial one). ``stable``: every ``|multiplier| < 1``.
    """

    location: tuple[float, ...]
    multipliers: tuple[complex, ...]
    kind: str = "fixed point"

    @property
    def stable(self) -> bool:
        """Return whether every multiplier has ``|m| < 1``."""
        return all(abs(m) < 1 for m in self.multipliers)


Analytic = Callable[[float], list[Branch]]


@dataclass(frozen=True)
class NormalForm:
    """A one-parameter map ``h_{t+1} = f(h_t, g)`` with a codimension-one bifurcation at ``g*``."""

    name: str
    kind: str
    dim: int
    _step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(repr=False)
    _fixed: Analytic = field(repr=False)
    _invariant: Analytic = field(repr=False, default=lambda g: [])
    g_star: float = 1.0
    description: str = ""

    def step(self, h: torch.Tensor, g: torch.Tensor | float) -> torch.Tensor:
        """One step ``f(h, g)`` for ``h`` of shape ``(..., dim)`` and a scalar ``g``."""
        return self._step(h, torch.as_tensor(g, dtype=h.dtype, device=h.device))

    def fixed_points(self, g: float) -> list[Branch]:
        """Return the analytic fixed points at ``g`` with their multipliers and stability."""
        return self._fixed(float(g))

    def invariant_sets(self, g: float) -> list[Branch]:
        """Other invariant sets born at ``g*``: the 2-cycle (period doubling), the circle (NS)."""
        return self._invariant(float(g))

    def trajectory(self, g: torch.Tensor | float, h0: torch.Tensor, T: int) -> torch.Tensor:
        """States ``h_1..h_T`` of shape ``(B, T, dim)`` from ``h0`` ``(B, dim)``."""
        h, out = h0, []
        for _ in range(T):
            h = self.step(h, g)
            out.append(h)
        return torch.stack(out, 1)

    def dg_states(self, g: float, h0: torch.Tensor, T: int) -> torch.Tensor:
        """``D_g h`` ``(B, T, dim)``: one forward-mode derivative in ``g`` for the whole batch."""
        _check_h0(h0, self.dim)
        g_t = torch.tensor(float(g), dtype=h0.dtype, device=h0.device)
        return jacfwd(lambda gg: self.trajectory(gg, h0, T))(g_t)

    def sntk_g(self, g: float, h0: torch.Tensor, T: int) -> tuple[torch.Tensor, float]:
        """``(D_g h, ‖sNTK_g‖_2)`` with ``‖sNTK_g‖_2 = ‖D_g h‖²`` (rank one; module docstring).

        The norm is ``inf`` when an orbit escapes ``|h| <= ESCAPE``.
        """
        norms, _, _ = self.sntk_g_curve(torch.tensor([float(g)], dtype=h0.dtype), h0, T)
        return self.dg_states(g, h0, T), float(norms[0])

    def sntk_g_curve(
        self, g_values: torch.Tensor, h0: torch.Tensor, T: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``‖sNTK_g‖_2`` on a grid ``g_values`` ``(G,)``, vectorized over ``g`` and the batch.

        Returns ``norm`` (G,) (``inf`` where any orbit escapes), ``norm_bounded`` (G,) (the sum
        over the orbits that stay bounded) and ``escaped`` (G, B) (bool).
        """
        _check_h0(h0, self.dim)
        g_values = torch.as_tensor(g_values, dtype=h0.dtype, device=h0.device).reshape(-1)

        def one(gg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # torch.func.jvp is typed as returning a 2- or 3-tuple (no overload on has_aux)
            out = jvp(lambda a: self.trajectory(a, h0, T), (gg,), (torch.ones_like(gg),))
            return out  # type: ignore[return-value]

        states, tangents = vmap(one)(g_values)  # (G, B, T, dim) each
        escaped = ~(torch.isfinite(states) & (states.abs() <= ESCAPE)).all(-1).all(-1)
        per_orbit = tangents.square().sum((-1, -2))  # (G, B)
        bounded = torch.where(escaped, torch.zeros_like(per_orbit), per_orbit).sum(1)
        norm = torch.where(escaped.any(1), torch.full_like(bounded, math.inf), bounded)
        return norm, bounded, escaped


def _check_h0(h0: torch.Tensor, dim: int) -> None:
    if not isinstance(h0, torch.Tensor) or h0.ndim != 2 or h0.shape[1] != dim:
        raise ValueError(
            f"h0 must be a batch of initial conditions of shape (B, {dim}), got "
            f"{getattr(h0, 'shape', type(h0).__name__)}"
        )


def stability_flip_closed_form(g: float, h0: torch.Tensor, T: int) -> float:
    """``‖h_0‖² Σ_{t=0}^{T−1} (t+1)² g^{2t}``: the exact ``‖sNTK_g‖_2`` of ``h' = g h`` (module)."""
    t = torch.arange(T, dtype=torch.float64)
    return float(h0.double().square().sum() * ((t + 1) ** 2 * float(g) ** (2 * t)).sum())


# ---------------------------------------------------------------------- analytic branches
def _fp(x: float, *mult: complex) -> Branch:
    return Branch((x,), tuple(mult))


def _flip_fixed(g: float) -> list[Branch]:
    return [_fp(0.0, g)]


def _cubic_fixed(sign: float) -> Analytic:
    """``g h + sign·h³``: 0 and ``±√((1 − g)/sign)`` where real, multiplier ``3 − 2g``."""

    def fixed(g: float) -> list[Branch]:
        out = [_fp(0.0, g)]
        r2 = (1 - g) / sign
        if r2 > 0:
            r = math.sqrt(r2)
            out += [_fp(r, 3 - 2 * g), _fp(-r, 3 - 2 * g)]
        return out

    return fixed


def _saddle_node_fixed(g: float) -> list[Branch]:
    if g < 1:
        return []
    r = math.sqrt(g - 1)
    return [_fp(r, 1 - 2 * r), _fp(-r, 1 + 2 * r)] if r > 0 else [_fp(0.0, 1.0)]


def _transcritical_fixed(g: float) -> list[Branch]:
    return [_fp(0.0, g), _fp(g - 1, 2 - g)] if g != 1 else [_fp(0.0, 1.0)]


def _period_doubling_fixed(g: float) -> list[Branch]:
    r = math.sqrt(1 + g) if g > -1 else 0.0
    return [_fp(0.0, -g)] + ([_fp(r, 3 + 2 * g), _fp(-r, 3 + 2 * g)] if r > 0 else [])


def _period_doubling_cycle(g: float) -> list[Branch]:
    if g <= 1:
        return []
    r = math.sqrt(g - 1)
    return [Branch((r,), ((2 * g - 3) ** 2,), "2-cycle")]


def _ns_step(h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c, s = math.cos(OMEGA), math.sin(OMEGA)
    x, y = h[..., 0], h[..., 1]
    amp = g - (x * x + y * y)
    return torch.stack([amp * (c * x - s * y), amp * (s * x + c * y)], -1)


def _ns_fixed(g: float) -> list[Branch]:
    lam = g * cmath.exp(1j * OMEGA)
    return [Branch((0.0, 0.0), (lam, lam.conjugate()))]


def _ns_circle(g: float) -> list[Branch]:
    if g <= 1:
        return []
    return [Branch((math.sqrt(g - 1), 0.0), (3 - 2 * g,), "invariant circle")]


NORMAL_FORMS: dict[str, NormalForm] = {
    nf.name: nf
    for nf in [
        NormalForm("stability_flip", "stability flip", 1, lambda h, g: g * h, _flip_fixed,
                   description="h' = g h"),
        NormalForm("pitchfork", "pitchfork", 1, lambda h, g: g * h - h**3, _cubic_fixed(-1.0),
                   description="h' = g h − h³"),
        NormalForm("subcritical_pitchfork", "subcritical pitchfork", 1,
                   lambda h, g: g * h + h**3, _cubic_fixed(1.0), description="h' = g h + h³"),
        NormalForm("saddle_node", "saddle-node", 1, lambda h, g: h + (g - 1) - h**2,
                   _saddle_node_fixed, description="h' = h + (g − 1) − h²"),
        NormalForm("transcritical", "transcritical", 1, lambda h, g: g * h - h**2,
                   _transcritical_fixed, description="h' = g h − h²"),
        NormalForm("period_doubling", "period doubling", 1, lambda h, g: -g * h + h**3,
                   _period_doubling_fixed, _period_doubling_cycle, description="h' = −g h + h³"),
        NormalForm("neimark_sacker", "Neimark–Sacker", 2, _ns_step, _ns_fixed, _ns_circle,
                   description="z' = e^{iω}(g − |z|²) z, ω = 1"),
    ]
}  # fmt: skip
