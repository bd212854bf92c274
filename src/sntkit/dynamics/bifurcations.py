"""Locating and classifying bifurcations along a parameter path (paper 000 §2–3).

Between two parameter points ``θ_0`` and ``θ_1`` (e.g. consecutive checks during training) the
path ``θ(s) = θ_0 + s (θ_1 − θ_0)`` is examined through the *signature* of the fixed-point set:
the number of fixed points and, for each, the signs of the test functions ``det(J − I)`` (a real
eigenvalue crossing ``+1``: fold, pitchfork, transcritical) and ``det(J + I)`` (crossing ``−1``:
period doubling), and the number of eigenvalues outside the unit circle (which changes by two
when a complex pair crosses it: Neimark–Sacker). Complex pairs colliding into real pairs (or the
reverse) change none of these, so they are not mistaken for bifurcations. Bisection on ``s``
brackets the change to ``tol``, and the two sides of the bracket classify it:

* two points more (fewer) and a continuing point whose real eigenvalue crosses ``+1``:
  **pitchfork** (the new pair straddles the continuing point; with it symmetric within
  ``symmetry_tol`` the pitchfork is exact, otherwise **pitchfork (imperfect)**);
* two points more (fewer) with no such crossing: **saddle-node** — unless a continuing point
  has a real eigenvalue within ``imperfect_tol`` of ``+1`` at the event, which is how the
  symmetry-broken (``b ≠ 0``) pitchfork unfolds: **pitchfork (imperfect)**;
* the same number of points and a real eigenvalue crossing ``+1``: **transcritical**;
* a real eigenvalue crossing ``−1``: **period doubling**;
* a complex pair crossing ``|λ| = 1``: **Neimark–Sacker**;
* anything else (e.g. the finder missed a point on one side): **unclassified**.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from sntkit.dynamics.fixed_points import FixedPoints, find_fixed_points
from sntkit.models.cell import Cell

Params = dict[str, torch.Tensor]


@dataclass
class Signature:
    """Counts that change at codimension-one bifurcations of fixed points."""

    points: FixedPoints
    # per point: sign of det(J − I), sign of det(J + I), number of |λ| > 1
    det_minus: list[int] = field(default_factory=list)
    det_plus: list[int] = field(default_factory=list)
    outside: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, points: FixedPoints, imag_tol: float = 1e-8) -> Signature:
        sig = cls(points)
        for ev in points.eigvals:
            real = ev.imag.abs() <= imag_tol
            # complex pairs contribute |λ ∓ 1|² > 0, so only real eigenvalues set the signs
            sig.det_minus.append(1 - 2 * (int((real & (ev.real < 1)).sum()) % 2))
            sig.det_plus.append(1 - 2 * (int((real & (ev.real < -1)).sum()) % 2))
            sig.outside.append(int((ev.abs() > 1).sum()))
        return sig

    def counts(self, i: int) -> tuple[int, int, int]:
        return self.det_minus[i], self.det_plus[i], self.outside[i]

    def differs(self, other: Signature) -> bool:
        """A different number of points, or a matched point whose eigenvalue counts changed.

        Points are matched by location, not compared as a multiset: in a transcritical
        bifurcation two points exchange their stability and the multiset stays the same.
        """
        if len(self.points) != len(other.points):
            return True
        return any(self.counts(i) != other.counts(j) for i, j in _match(self.points, other.points))


@dataclass
class Bifurcation:
    """A located bifurcation: ``kind`` at ``s`` between two parameter points."""

    kind: str
    s: float
    s_bracket: tuple[float, float]
    critical_eigenvalue: tuple[float, float]
    critical_point: list[float]
    before: dict
    after: dict
    step: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kind": self.kind,
            "s": self.s,
            "s_bracket": list(self.s_bracket),
            "critical_eigenvalue": list(self.critical_eigenvalue),
            "critical_point": self.critical_point,
            "before": self.before,
            "after": self.after,
            **self.extra,
        }


def interpolate(p0: Mapping[str, torch.Tensor], p1: Mapping[str, torch.Tensor], s: float) -> Params:
    """``θ(s) = θ_0 + s (θ_1 − θ_0)``."""
    return {k: p0[k] + s * (p1[k] - p0[k]) for k in p0}


def locate(
    cell: Cell,
    p0: Mapping[str, torch.Tensor],
    p1: Mapping[str, torch.Tensor],
    *,
    x: torch.Tensor | None = None,
    tol: float = 1e-3,
    finder: Callable[..., FixedPoints] | None = None,
    symmetry_tol: float = 0.05,
    warm: torch.Tensor | None = None,
) -> list[Bifurcation]:
    """All signature changes on ``θ(s)``, ``s ∈ [0, 1]``, bracketed to ``tol`` and classified.

    ``finder(cell, params, x, warm)`` returns the fixed points at ``params`` (default:
    :func:`find_fixed_points` warm-started from ``warm`` plus a few random states); every
    evaluation is seeded with all points found so far on the path (and ``warm``).
    """
    find = finder or _default_finder
    cache: dict[float, Signature] = {}
    known = [] if warm is None else [warm]

    def sig(s: float, _: torch.Tensor | None = None) -> Signature:
        # every evaluation starts from all points seen so far on the path, so a point the
        # finder happened to miss at one parameter value is not mistaken for a bifurcation
        if s not in cache:
            seeds = torch.cat(known) if known else None
            cache[s] = Signature.of(find(cell, interpolate(p0, p1, s), x, seeds))
            if len(cache[s].points):
                known.append(cache[s].points.locations)
        return cache[s]

    # settle the end points first: recompute each with the other's points as seeds
    for _ in range(2):
        for end in (0.0, 1.0):
            cache.pop(end, None)
            sig(end)

    brackets: list[tuple[float, float]] = []
    _bisect(sig, 0.0, 1.0, tol, brackets)
    # Samples landing in the tiny degenerate zone around the bifurcation itself (where the two
    # colliding points are one, e.g. exactly at a transcritical) split one event into two
    # brackets around an unchanged middle stretch: join them and classify from the outer ends.
    merged: list[tuple[float, float]] = []
    for lo, hi in brackets:
        if (
            merged
            and lo - merged[-1][1] <= 10 * tol
            and not cache[merged[-1][1]].differs(cache[lo])
        ):
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    events = []
    for lo, hi in merged:
        if cache[lo].differs(cache[hi]):
            events.append(classify_change(cache[lo], cache[hi], lo, hi, symmetry_tol))
    return events


def _bisect(sig, lo: float, hi: float, tol: float, brackets: list) -> None:
    """Find every sub-interval of width <= tol over which the signature changes."""
    a, b = sig(lo), sig(hi)
    if not a.differs(b):
        return
    if hi - lo <= tol:
        brackets.append((lo, hi))
        return
    mid = 0.5 * (lo + hi)
    sig(mid)
    _bisect(sig, lo, mid, tol, brackets)
    _bisect(sig, mid, hi, tol, brackets)


def _default_finder(
    cell: Cell, params: Params, x: torch.Tensor | None, warm: torch.Tensor | None
) -> FixedPoints:
    N = cell.n_state
    g = torch.Generator().manual_seed(0)
    extra = 2.0 * torch.randn(32, N, generator=g, dtype=torch.float64)
    inits = (
        extra
        if warm is None or warm.numel() == 0
        else torch.cat(
            [warm + 1e-3 * torch.randn(warm.shape, generator=g, dtype=torch.float64), extra]
        )
    )
    return find_fixed_points(cell, x, inits, params=params, opt_steps=200)


def _match(a: FixedPoints, b: FixedPoints) -> list[tuple[int, int]]:
    """Greedy nearest-neighbour pairs between the two point sets."""
    if len(a) == 0 or len(b) == 0:
        return []
    d = torch.cdist(a.locations, b.locations)
    pairs, used_a, used_b = [], set(), set()
    for flat in torch.argsort(d.reshape(-1)).tolist():
        i, j = divmod(flat, d.shape[1])
        if i in used_a or j in used_b:
            continue
        pairs.append((i, j))
        used_a.add(i)
        used_b.add(j)
    return pairs


def _crossing(ev: torch.Tensor, target: str) -> complex:
    if target == "+1":
        dist = (ev - 1).abs() + 1e3 * (ev.imag.abs() > 1e-8)
    elif target == "-1":
        dist = (ev + 1).abs() + 1e3 * (ev.imag.abs() > 1e-8)
    else:
        dist = (ev.abs() - 1).abs() + 1e3 * (ev.imag.abs() <= 1e-8)
    return complex(ev[int(dist.argmin())])


def classify_change(
    before: Signature,
    after: Signature,
    lo: float,
    hi: float,
    symmetry_tol: float = 0.05,
    imperfect_tol: float = 0.3,
) -> Bifurcation:
    """Classify the change between two bracketing signatures (see module docstring)."""
    A, B = before.points, after.points
    dn = len(B) - len(A)
    pairs = _match(A, B)
    crossed: dict[str, tuple[int, int] | None] = {"+1": None, "-1": None, "circle": None}
    for i, j in pairs:
        flips = before.det_minus[i] != after.det_minus[j] or before.det_plus[i] != after.det_plus[j]
        for key, cnt_a, cnt_b in (
            ("+1", before.det_minus[i], after.det_minus[j]),
            ("-1", before.det_plus[i], after.det_plus[j]),
            ("circle", before.outside[i], after.outside[j]),
        ):
            # a change of the count outside the circle is a Neimark–Sacker crossing only when no
            # real eigenvalue crossed ±1 at the same point
            if cnt_a != cnt_b and crossed[key] is None and not (key == "circle" and flips):
                crossed[key] = (i, j)
    kind, lam, point = "unclassified", complex("nan"), None
    larger = B if dn > 0 else A
    matched = {j for _, j in pairs} if dn > 0 else {i for i, _ in pairs}
    new = [k for k in range(len(larger)) if k not in matched]
    if abs(dn) == 2 and len(new) == 2:
        a, b = larger.locations[new[0]], larger.locations[new[1]]
        if crossed["+1"] is not None:
            i, j = crossed["+1"]
            point = B.locations[j]
            half = max(float((a - b).norm()) / 2, 1e-12)
            asym = float((0.5 * (a + b) - point).norm()) / half
            kind = "pitchfork" if asym <= symmetry_tol else "pitchfork (imperfect)"
            lam = _crossing(B.eigvals[j], "+1")
        else:
            # the critical point is the member of the newborn (or dying) pair whose eigenvalue
            # is nearest +1 (the pair coincides at the fold)
            lams = [_crossing(larger.eigvals[k], "+1") for k in new]
            k = min(range(2), key=lambda m: abs(lams[m] - 1))
            kind, point, lam = "saddle-node", larger.locations[new[k]], lams[k]
            near = [
                float((_crossing(B.eigvals[j], "+1") - 1).real)
                for _, j in pairs
                if B.eigvals.shape[0]
            ]
            if near and max(near) >= -imperfect_tol:
                kind = "pitchfork (imperfect)"
    elif dn == 0:
        for key, name in (
            ("+1", "transcritical"),
            ("-1", "period doubling"),
            ("circle", "Neimark–Sacker"),
        ):
            if crossed[key] is not None:
                _, j = crossed[key]
                kind, point = name, B.locations[j]
                lam = _crossing(B.eigvals[j], key)
                break
    return Bifurcation(
        kind=kind,
        s=0.5 * (lo + hi),
        s_bracket=(lo, hi),
        critical_eigenvalue=(lam.real, lam.imag),
        critical_point=[] if point is None else point.tolist(),
        before=_summary(before),
        after=_summary(after),
    )


def _summary(sig: Signature) -> dict:
    return {
        "num_fixed_points": len(sig.points),
        "num_stable": sig.points.num_stable,
        "labels": list(sig.points.labels),
        "locations": sig.points.locations.tolist(),
    }
