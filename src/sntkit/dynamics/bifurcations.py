"""Locating and classifying bifurcations of fixed points along a parameter path (paper 000 §2–3).

Between two parameter points ``θ_0`` and ``θ_1`` (e.g. consecutive checks during training) the
straight path ``θ(s) = θ_0 + s (θ_1 − θ_0)``, ``s ∈ [0, 1]``, is examined through the *signature*
of the fixed-point set: the number of fixed points and, per point (of a map, eigenvalues ``λ``
of ``J = D_h F``),

* the sign of the fold test function ``det(J − I) = Π(λ − 1)``, i.e. ``(−1)^{#real λ < 1}``:
  it changes when a real eigenvalue crosses ``+1`` (saddle-node, pitchfork, transcritical);
* the sign of the flip test function ``det(J + I)``, ``(−1)^{#real λ < −1}``: a real eigenvalue
  crossing ``−1`` (period doubling);
* the number of eigenvalues outside the unit circle: it changes by two, with both signs above
  unchanged, when a complex pair crosses ``|λ| = 1`` (Neimark–Sacker).

Complex pairs colliding into real pairs (or splitting) change none of these, so they are not
mistaken for bifurcations. Signs are computed from eigenvalue counts, which is exact where the
determinants would be rounding-dominated. Points at two parameter values are matched by the
greedy nearest pairs on distance of locations plus (as a tie-breaker) of their leading
eigenvalues (:func:`match_points`).

**Localization.** Where the signatures at the two ends differ, the interval is bisected (every
sub-interval whose ends differ is split) down to width ``tol`` in ``s``; each fixed-point solve is
seeded with every point found so far on the path, so a point the finder happened to miss at one
parameter value does not pose as a bifurcation. Events whose signatures agree at the two ends
(e.g. a pair created and destroyed again between two checks) are not seen.

**Classification** from the two sides of a bracket (``dn`` = change in the number of points):

* ``|dn| = 2`` and a continuing point's real eigenvalue crosses ``+1``: **pitchfork** when the
  new (or vanishing) pair is symmetric about that point — ``‖(a + b)/2 − c‖ <= symmetry_tol ·
  ‖a − b‖/2`` — else **pitchfork (imperfect)**;
* ``|dn| = 2`` with no continuing crossing: **saddle-node** (fold; the critical point is the
  member of the pair whose real eigenvalue is nearest ``+1``), unless it is the fold of a
  symmetry-broken pitchfork: a continuing point ``c`` (the nearest one) has a real eigenvalue
  ``λ_c`` with ``|λ_c − 1| <= imperfect_tol`` *and* the fold point lies along ``c``'s critical
  eigenvector ``v_c`` (``|cos∠(h_fold − c, v_c)| >= align_tol``) — the geometry of the
  unfolding ``h' = g h − h³ + b``, where the pair is born on the far side of a continued branch
  whose multiplier ``1 − O(b^{2/3})`` is itself near ``+1`` — then **pitchfork (imperfect)**;
* ``dn = 0`` and two matched points cross ``+1`` together: **transcritical** (exchange of
  stability); only one: **stability flip** (a real eigenvalue through ``+1`` with no branch
  found, as in the linear ``h' = g h`` or when the new branch lies beyond the finder's reach);
* ``dn = 0`` and a real eigenvalue crosses ``−1``: **period doubling**;
* ``dn = 0`` and a complex pair crosses ``|λ| = 1``: **Neimark–Sacker**;
* anything else: **unclassified** (e.g. several events within one bracket).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from sntkit.dynamics.fixed_points import FixedPoints, solve_fixed_points
from sntkit.dynamics.tolerances import IMAG_TOL
from sntkit.models.cell import Cell

Params = dict[str, torch.Tensor]
Finder = Callable[[Cell, Params, "torch.Tensor | None", "torch.Tensor | None"], FixedPoints]

#: weight of the leading-eigenvalue distance in the matching cost (locations weigh 1)
EIG_WEIGHT = 1e-3


@dataclass(frozen=True)
class Signature:
    """Counts that change at codimension-one bifurcations of fixed points (module docstring)."""

    points: FixedPoints
    fold_sign: torch.Tensor  # (n,) sign det(J − I)
    flip_sign: torch.Tensor  # (n,) sign det(J + I)
    outside: torch.Tensor  # (n,) #{|λ| > 1}

    @classmethod
    def of(cls, points: FixedPoints, imag_tol: float = IMAG_TOL) -> Signature:
        """Return the signature of ``points`` (eigenvalues within ``imag_tol`` count as real)."""
        ev = points.eigvals
        real = ev.imag.abs() <= imag_tol
        below_one = (real & (ev.real < 1)).sum(1)
        below_minus_one = (real & (ev.real < -1)).sum(1)
        return cls(
            points,
            1 - 2 * (below_one % 2),
            1 - 2 * (below_minus_one % 2),
            (ev.abs() > 1).sum(1),
        )

    def __len__(self) -> int:
        return len(self.points)

    @property
    def degenerate(self) -> bool:
        """Some eigenvalue lies within the points' ``margin`` of the unit circle.

        The signs above are then ambiguous (the parameters sit on the bifurcation itself, e.g.
        ``λ = 1`` exactly), so such a parameter point is a poor end of a bracket.
        """
        m = self.points.margin
        return bool(((self.points.eigvals.abs() - 1).abs() <= m).any()) if len(self) else False

    def key(self, i: int) -> tuple[int, int, int]:
        """Return point ``i``'s ``(fold sign, flip sign, #|λ| > 1)``."""
        return self._keys[i]

    @functools.cached_property
    def _keys(self) -> list[tuple[int, int, int]]:
        # one conversion of each tensor instead of three scalar reads per point and comparison
        cols = (self.fold_sign.tolist(), self.flip_sign.tolist(), self.outside.tolist())
        return list(zip(*cols, strict=True))

    def differs(self, other: Signature) -> bool:
        """Return a different number of points, or a matched pair whose counts differ.

        Points are matched, not compared as a multiset: in a transcritical bifurcation two
        points exchange their stability and the multiset of counts stays the same.
        """
        if len(self) != len(other):
            return True
        return any(self.key(i) != other.key(j) for i, j in match_points(self.points, other.points))


def match_points(a: FixedPoints, b: FixedPoints) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of two point sets (``min(len(a), len(b))`` pairs).

    Cost: ``‖x_a − x_b‖ + EIG_WEIGHT · ‖Λ_a − Λ_b‖`` with ``Λ`` the (up to) four leading
    eigenvalues by modulus (a tie-breaker). Pairs are taken cheapest first. Greedy rather than a
    minimum-total assignment on purpose: a point that persists (cost ~0) is matched to itself even
    when another point moves through it, as in a transcritical exchange of stability, where the
    minimum total cost can pair the two points crosswise and hide the exchange.
    """
    if len(a) == 0 or len(b) == 0:
        return []
    k = min(4, a.dim)
    cost = torch.cdist(a.locations, b.locations)
    ea, eb = a.eigvals[:, :k], b.eigvals[:, :k]
    cost = cost + EIG_WEIGHT * (ea[:, None, :] - eb[None, :, :]).abs().square().sum(-1).sqrt()
    pairs: list[tuple[int, int]] = []
    used_a, used_b = set(), set()
    for flat in torch.argsort(cost.reshape(-1), stable=True).tolist():
        i, j = divmod(flat, cost.shape[1])
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
            if len(pairs) == min(cost.shape):
                break
    return pairs


@dataclass
class Bifurcation:
    """A located bifurcation: ``kind`` at ``s`` in ``s_bracket`` of the path ``θ(s)``.

    ``critical_eigenvalue`` is ``(Re λ_c, Im λ_c)``, ``critical_point`` the fixed point that
    carries it; ``before``/``after`` summarize the fixed points at the bracket's ends
    (locations, stability labels, counts). ``step`` is the training step (set by the monitor).
    """

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
        """Return a JSON-serializable record (plain floats, ints, strings and lists)."""
        return {
            "step": self.step,
            "kind": self.kind,
            "s": float(self.s),
            "s_bracket": [float(v) for v in self.s_bracket],
            "critical_eigenvalue": [float(v) for v in self.critical_eigenvalue],
            "critical_point": [float(v) for v in self.critical_point],
            "before": self.before,
            "after": self.after,
            **self.extra,
        }


@dataclass
class PathScan:
    """The result of :func:`scan`: events and the fixed points at both ends of the path."""

    events: list[Bifurcation]
    start: Signature
    end: Signature
    samples: dict[float, Signature]


def interpolate(p0: Mapping[str, torch.Tensor], p1: Mapping[str, torch.Tensor], s: float) -> Params:
    """``θ(s) = θ_0 + s (θ_1 − θ_0)`` for every parameter of ``p0``."""
    missing = [k for k in p0 if k not in p1]
    if missing:
        raise ValueError(f"p1 is missing parameters {missing} of p0")
    return {k: p0[k] + s * (p1[k].to(p0[k]) - p0[k]) for k in p0}


def default_finder(
    num_random: int = 16, scale: float = 1.0, seed: int = 0, **kwargs: Any
) -> Finder:
    """Return a finder for :func:`scan`: given seeds plus ``num_random`` ``N(0, scale²)`` states.

    The seeds are points known at nearby ``s``: ``known=`` of :func:`solve_fixed_points`, so
    midpoints are taken only of pairs with a point none of them led to.
    """

    def find(cell: Cell, params: Params, x: torch.Tensor | None, seeds: torch.Tensor | None):
        g = torch.Generator().manual_seed(seed)
        rand = scale * torch.randn(num_random, cell.n_state, generator=g, dtype=torch.float64)
        known = None if seeds is None or seeds.numel() == 0 else seeds
        return solve_fixed_points(cell, params, x, rand, known=known, **kwargs)

    return find


def scan(
    cell: Cell,
    p0: Mapping[str, torch.Tensor],
    p1: Mapping[str, torch.Tensor],
    *,
    x: torch.Tensor | None = None,
    tol: float = 1e-3,
    finder: Finder | None = None,
    warm: torch.Tensor | None = None,
    symmetry_tol: float = 0.05,
    imperfect_tol: float = 0.3,
    align_tol: float = 0.9,
) -> PathScan:
    """Locate (to ``tol`` in ``s``) and classify every signature change on ``θ(s)``.

    ``finder(cell, params, x, seeds)`` returns the fixed points at ``params`` (default:
    :func:`default_finder`); ``warm`` ``(k, N)`` are extra seeds (e.g. known points).
    """
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    find = finder or default_finder()
    p0 = {k: v.detach().to(torch.float64) for k, v in p0.items()}
    p1 = {k: v.detach().to(torch.float64) for k, v in p1.items()}
    cache: dict[float, Signature] = {}
    known: list[torch.Tensor] = [] if warm is None else [warm.detach().to(torch.float64).cpu()]

    def seeds() -> torch.Tensor | None:
        if not known:
            return None
        # near-duplicates add nothing but cost: keep one seed per 1e-6 cell
        allp = torch.cat(known)
        return torch.unique(torch.round(allp * 1e6) / 1e6, dim=0)

    def sig(s: float) -> Signature:
        if s not in cache:
            cache[s] = Signature.of(find(cell, interpolate(p0, p1, s), x, seeds()))
            if len(cache[s]):
                known.append(cache[s].points.locations.cpu())
        return cache[s]

    # settle the ends first: re-solve each with the other's points as seeds
    sig(0.0), sig(1.0)
    for end in (0.0, 1.0):
        del cache[end]
        sig(end)

    brackets: list[tuple[float, float]] = []
    _bisect(sig, 0.0, 1.0, tol, brackets)
    merged = _join_brackets(brackets, cache, tol)
    events = [
        classify_change(cache[lo], cache[hi], lo, hi, symmetry_tol, imperfect_tol, align_tol)
        for lo, hi in merged
        if cache[lo].differs(cache[hi])
    ]
    return PathScan(events, cache[0.0], cache[1.0], dict(sorted(cache.items())))


def _join_brackets(
    brackets: list[tuple[float, float]], cache: Mapping[float, Signature], tol: float
) -> list[tuple[float, float]]:
    """Brackets with an unchanged stretch of at most ``10 tol`` between them joined.

    Samples landing in the tiny degenerate zone at the bifurcation itself (where the two
    colliding points are one, e.g. exactly at a transcritical) split one event into two
    brackets around an unchanged stretch: joined, the event is classified from the outer ends.
    """
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
    return merged


def locate(
    cell: Cell,
    p0: Mapping[str, torch.Tensor],
    p1: Mapping[str, torch.Tensor],
    **kwargs: Any,
) -> list[Bifurcation]:
    """Return the bifurcations on ``θ(s) = θ_0 + s (θ_1 − θ_0)`` (arguments: :func:`scan`)."""
    return scan(cell, p0, p1, **kwargs).events


def _bisect(sig: Callable[[float], Signature], lo: float, hi: float, tol: float, out: list) -> None:
    """Append every sub-interval of width <= tol over which the signature changes."""
    if not sig(lo).differs(sig(hi)):
        return
    if hi - lo <= tol:
        out.append((lo, hi))
        return
    mid = 0.5 * (lo + hi)
    _bisect(sig, lo, mid, tol, out)
    _bisect(sig, mid, hi, tol, out)


def _nearest(ev: torch.Tensor, target: str) -> complex:
    """Return the eigenvalue of ``ev`` (N,) nearest the ``target`` crossing.

    That is ``+1``/``−1`` among real eigenvalues, or ``|λ| = 1`` among complex ones (falling
    back to all eigenvalues when there is no such kind).
    """
    real = ev.imag.abs() <= IMAG_TOL
    if target == "+1":
        dist, pool = (ev - 1).abs(), real
    elif target == "-1":
        dist, pool = (ev + 1).abs(), real
    else:
        dist, pool = (ev.abs() - 1).abs(), ~real
    if bool(pool.any()):
        dist = torch.where(pool, dist, torch.full_like(dist, torch.inf))
    return complex(ev[int(dist.argmin())])


def _closer(a: complex, b: complex, target: complex) -> complex:
    return a if abs(a - target) <= abs(b - target) else b


#: what a classifier finds: the kind, the critical eigenvalue, where, and kind-specific details
_Found = tuple[str, complex, "torch.Tensor | None", dict[str, Any]]


@dataclass(frozen=True)
class _Change:
    """Two signatures and how their fixed points match (the input of every classifier)."""

    before: Signature
    after: Signature
    pairs: list[tuple[int, int]]

    @property
    def grow(self) -> bool:
        return len(self.after.points) > len(self.before.points)

    @property
    def larger(self) -> FixedPoints:
        return self.after.points if self.grow else self.before.points

    def continued(self) -> list[int]:
        """Return indices in the larger set of the points that exist on both sides."""
        return [j if self.grow else i for i, j in self.pairs]

    def new(self) -> list[int]:
        """Return indices in the larger set of the points without a partner."""
        matched = set(self.continued())
        return [k for k in range(len(self.larger)) if k not in matched]

    def changed(self, sign: str) -> list[tuple[int, int]]:
        """Return matched pairs whose ``fold_sign``/``flip_sign``/``outside`` differs."""
        a, b = getattr(self.before, sign), getattr(self.after, sign)
        return [(i, j) for i, j in self.pairs if int(a[i]) != int(b[j])]

    def nearest(self, i: int, j: int, target: str, aim: complex) -> tuple[complex, torch.Tensor]:
        """Return the eigenvalue of pair ``(i, j)`` nearer ``aim`` (:func:`_nearest`), its point."""
        A, B = self.before.points, self.after.points
        la, lb = _nearest(A.eigvals[i], target), _nearest(B.eigvals[j], target)
        if target == "circle":
            return (la, A.locations[i]) if abs(abs(la) - 1) <= abs(abs(lb) - 1) else (
                lb, B.locations[j])  # fmt: skip
        return (la, A.locations[i]) if _closer(la, lb, aim) == la else (lb, B.locations[j])


def _two_new_points(
    c: _Change, symmetry_tol: float, imperfect_tol: float, align_tol: float
) -> _Found:
    """Classify a change where two points appear or vanish.

    A pitchfork when a continued point also changes its fold sign (imperfect when the new pair
    is not centred on it), else a saddle-node — or an imperfect pitchfork when the nearest
    continued point has an eigenvalue near +1 whose eigenvector points at the new pair.
    """
    larger, new = c.larger, c.new()
    a, b = larger.locations[new[0]], larger.locations[new[1]]
    fold = c.changed("fold_sign")
    if fold:
        i, j = fold[0]
        lam, point = c.nearest(i, j, "+1", 1)
        centre = larger.locations[j if c.grow else i]
        half = max(float((a - b).norm()) / 2, 1e-300)
        asym = float((0.5 * (a + b) - centre).norm()) / half
        kind = "pitchfork" if asym <= symmetry_tol else "pitchfork (imperfect)"
        return (
            kind,
            lam,
            point,
            {"asymmetry": asym, "new_pair_stable": bool(larger.stable[new].all())},
        )
    lams = [_nearest(larger.eigvals[k], "+1") for k in new]
    m = 0 if abs(lams[0] - 1) <= abs(lams[1] - 1) else 1
    kind, point, lam, extra = "saddle-node", larger.locations[new[m]], lams[m], {}
    cont = c.continued()
    if cont:
        d = (larger.locations[cont] - point).norm(dim=1)
        k_pt = cont[int(d.argmin())]
        ev = larger.eigvals[k_pt]
        real = ev.imag.abs() <= IMAG_TOL
        dist = torch.where(real, (ev - 1).abs(), torch.full_like(ev.real, torch.inf))
        k = int(dist.argmin())
        v = larger.right[k_pt][:, k].real
        offset = point - larger.locations[k_pt]
        cos = float((offset @ v).abs() / (offset.norm() * v.norm()).clamp_min(1e-300))
        if float(dist[k]) <= imperfect_tol and cos >= align_tol:
            kind = "pitchfork (imperfect)"
        extra = {"continued_eigenvalue": float(ev[k].real), "alignment": cos}
    return kind, lam, point, extra


def _same_count(c: _Change) -> _Found | None:
    """Classify a change where no point appears.

    A fold-sign change is a stability flip (transcritical when two points exchange it), a
    flip-sign change period doubling, a circle crossing Neimark–Sacker.
    """
    fold, flip = c.changed("fold_sign"), c.changed("flip_sign")
    if fold:
        lam, point = min((c.nearest(i, j, "+1", 1) for i, j in fold), key=lambda t: abs(t[0] - 1))
        return ("transcritical" if len(fold) >= 2 else "stability flip"), lam, point, {}
    if flip:
        lam, point = c.nearest(*flip[0], "-1", -1)
        return "period doubling", lam, point, {}
    circle = [p for p in c.changed("outside") if p not in fold + flip]
    if circle:
        lam, point = c.nearest(*circle[0], "circle", 1)
        return "Neimark–Sacker", lam, point, {}
    return None


def classify_change(
    before: Signature,
    after: Signature,
    lo: float,
    hi: float,
    symmetry_tol: float = 0.05,
    imperfect_tol: float = 0.3,
    align_tol: float = 0.9,
) -> Bifurcation:
    """Classify the change between the signatures at ``s = lo`` and ``s = hi`` (module rules)."""
    change = _Change(before, after, match_points(before.points, after.points))
    dn = len(after.points) - len(before.points)
    found: _Found | None = None
    if abs(dn) == 2 and len(change.new()) == 2:
        found = _two_new_points(change, symmetry_tol, imperfect_tol, align_tol)
    elif dn == 0:
        found = _same_count(change)
    kind, lam, point, extra = found or ("unclassified", complex("nan"), None, {})
    return Bifurcation(
        kind=kind,
        s=0.5 * (lo + hi),
        s_bracket=(lo, hi),
        critical_eigenvalue=(lam.real, lam.imag),
        critical_point=[] if point is None else point.tolist(),
        before=summary(before.points),
        after=summary(after.points),
        extra=extra,
    )


def summary(points: FixedPoints) -> dict[str, Any]:
    """JSON-friendly counts, labels and locations of a fixed-point set."""
    return {
        "num_fixed_points": len(points),
        "num_stable": points.num_stable,
        "num_unstable": points.num_unstable,
        "labels": list(points.labels),
        "locations": points.locations.tolist(),
        "spectral_radius": points.spectral_radius().tolist(),
    }
