"""Location and classification on scripted parameter paths through each bifurcation type, and
no false events."""

import json
import math

import pytest
import scipy.optimize
import torch

from sntkit.dynamics import Signature, find_fixed_points, locate, scan
from sntkit.models import RNN, FunctionalCell

DT = torch.float64
ZERO2 = torch.zeros(2, dtype=DT)
# the fold of h' = 2 tanh(h) + b: 2 sech²(h) = 1 at h = −acosh(√2), b = h − 2 tanh(h)
B_FOLD = 2 * math.tanh(math.acosh(math.sqrt(2))) - math.acosh(math.sqrt(2))


def _p(W, b=ZERO2):
    return {"W": torch.as_tensor(W, dtype=DT), "b": torch.as_tensor(b, dtype=DT)}


def _diag(a, b=0.5):
    return torch.diag(torch.tensor([a, b], dtype=DT))


def _rot(g, w=1.0):
    return g * torch.tensor([[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]], dtype=DT)


def _scalar_cell(f):
    """A FunctionalCell with unit 0 carrying ``f(h, g)`` and unit 1 contracting (×0.5)."""
    return FunctionalCell(
        lambda p, h, x: torch.stack([f(h[..., 0], p["g"]), 0.5 * h[..., 1]], -1),
        {"g": torch.tensor(0.8, dtype=DT)},
        n_state=2,
    )


def _imperfect_fold_s(b=0.005, g0=0.8, g1=1.5):
    """s of the fold of h = g tanh(h) + b (g sech²h = 1) on g(s) = g0 + s (g1 − g0)."""

    def eqs(v):
        h, g = v
        return [g * math.tanh(h) + b - h, g / math.cosh(h) ** 2 - 1]

    _, g = scipy.optimize.fsolve(eqs, [-0.2, 1.05], xtol=1e-12)
    return (g - g0) / (g1 - g0)


CELL = RNN(2, 0, form="post", dtype=DT)
G = {"g": torch.tensor(0.8, dtype=DT)}, {"g": torch.tensor(1.3, dtype=DT)}
PATHS = {
    # (cell, θ0, θ1, kind, analytic s of the crossing)
    "pitchfork": (CELL, _p(_diag(0.8)), _p(_diag(1.3)), "pitchfork", 0.4),
    "pitchfork-reversed": (CELL, _p(_diag(1.3)), _p(_diag(0.8)), "pitchfork", 0.6),
    "subcritical-pitchfork": (
        _scalar_cell(lambda h, g: g * h + h**3), *G, "pitchfork", 0.4,
    ),
    "saddle-node": (
        CELL, _p(_diag(2.0), [0.8, 0.0]), _p(_diag(2.0), [0.3, 0.0]), "saddle-node",
        (0.8 - B_FOLD) / 0.5,
    ),
    "transcritical": (_scalar_cell(lambda h, g: g * h - h**2), *G, "transcritical", 0.4),
    "period-doubling": (CELL, _p(_diag(-0.8)), _p(_diag(-1.3)), "period doubling", 0.4),
    "neimark-sacker": (CELL, _p(_rot(0.8)), _p(_rot(1.3)), "Neimark–Sacker", 0.4),
    "imperfect-pitchfork": (
        CELL, _p(_diag(0.8), [0.005, 0.0]), _p(_diag(1.5), [0.005, 0.0]),
        "pitchfork (imperfect)", _imperfect_fold_s(),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(PATHS))
def test_scripted_paths_report_exactly_that_kind_at_the_analytic_crossing(name):
    cell, p0, p1, kind, s_true = PATHS[name]
    events = locate(cell, p0, p1, tol=1e-4)
    assert [e.kind for e in events] == [kind]
    ev = events[0]
    assert abs(ev.s - s_true) <= 1e-3
    lo, hi = ev.s_bracket
    assert lo <= s_true <= hi or abs(ev.s - s_true) <= 1e-4
    assert hi - lo <= 12e-4  # one bisection bracket, or two joined around the degenerate point
    record = json.loads(json.dumps(ev.to_dict()))
    assert record["kind"] == kind and len(record["critical_point"]) == 2
    lam = complex(*ev.critical_eigenvalue)
    target = {"period doubling": -1.0}.get(kind, 1.0)
    if kind == "Neimark–Sacker":
        assert abs(abs(lam) - 1) < 1e-3 and abs(math.atan2(lam.imag, lam.real)) == pytest.approx(1)
    else:
        assert abs(lam - target) < 0.05


def test_pitchfork_structure_is_recorded():
    (ev,) = locate(*PATHS["pitchfork"][:3], tol=1e-4)
    assert ev.before["num_fixed_points"] == 1 and ev.after["num_fixed_points"] == 3
    assert ev.after["num_stable"] == 2 and ev.extra["new_pair_stable"] is True
    assert ev.extra["asymmetry"] < 1e-6 and max(abs(v) for v in ev.critical_point) < 1e-10
    (sub,) = locate(*PATHS["subcritical-pitchfork"][:3], tol=1e-4)
    assert sub.before["num_fixed_points"] == 3 and sub.extra["new_pair_stable"] is False


def test_no_false_events_without_a_bifurcation():
    assert locate(CELL, _p(_diag(0.3)), _p(_diag(0.9, 0.2))) == []
    # complex pairs colliding on the real axis (inside and outside the unit circle) and a
    # stable node turning into a stable focus are not bifurcations
    linear = FunctionalCell(lambda p, h, x: h @ p["A"].T, {"A": torch.eye(2, dtype=DT)}, n_state=2)
    for a in (0.5, 1.5):
        A0 = torch.tensor([[a, 0.2], [0.1, a]], dtype=DT)  # a ± √0.02: real
        A1 = torch.tensor([[a, 0.2], [-0.1, a]], dtype=DT)  # a ± i√0.02: complex
        scanned = scan(linear, {"A": A0}, {"A": A1})
        assert scanned.events == [] and len(scanned.start) == len(scanned.end) == 1


def test_signature_ignores_collisions_and_sees_crossings():
    def sig(W):
        cell = RNN(2, 0, form="post", dtype=DT)
        with torch.no_grad():
            cell.W.copy_(W)
            cell.b.zero_()
        return Signature.of(find_fixed_points(cell, inits=8))

    inside_real = sig(torch.tensor([[0.5, 0.2], [0.1, 0.5]], dtype=DT))
    inside_complex = sig(torch.tensor([[0.5, 0.2], [-0.1, 0.5]], dtype=DT))
    assert not inside_real.differs(inside_complex)
    assert sig(_rot(0.9)).differs(sig(_rot(1.1)))
    assert sig(_diag(-0.9)).differs(sig(_diag(-1.1)))
    assert sig(_diag(0.5)).degenerate is False and sig(_diag(1.0)).degenerate is True
