"""Detection and classification on scripted parameter paths through each bifurcation type."""

import itertools
import math

import pytest
import torch

from sntkit.dynamics import BifurcationMonitor, locate
from sntkit.models import RNN, FunctionalCell

DT = torch.float64
ZERO2 = torch.zeros(2, dtype=DT)
B_FOLD = 2 * math.tanh(math.acosh(math.sqrt(2))) - math.acosh(math.sqrt(2))  # fold of 2 tanh h + b


def _p(W, b=ZERO2):
    return {"W": torch.as_tensor(W, dtype=DT), "b": torch.as_tensor(b, dtype=DT)}


def _rot(g, w=1.0):
    return g * torch.tensor([[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]], dtype=DT)


CELL = RNN(2, 0, form="post", dtype=DT)
TRANSCRITICAL = FunctionalCell(
    lambda p, h, x: torch.stack([p["g"] * h[..., 0] - h[..., 0] ** 2, 0.5 * h[..., 1]], -1),
    {"g": torch.tensor(0.8, dtype=DT)},
    n_state=2,
)

PATHS = {
    # (cell, θ0, θ1, expected kind, analytic s of the crossing)
    "pitchfork": (
        CELL,
        _p(torch.diag(torch.tensor([0.8, 0.5]))),
        _p(torch.diag(torch.tensor([1.3, 0.5]))),
        "pitchfork",
        0.4,
    ),
    "saddle-node": (
        CELL,
        _p(torch.diag(torch.tensor([2.0, 0.5])), [0.8, 0.0]),
        _p(torch.diag(torch.tensor([2.0, 0.5])), [0.3, 0.0]),
        "saddle-node",
        (0.8 - B_FOLD) / 0.5,
    ),
    "transcritical": (
        TRANSCRITICAL,
        {"g": torch.tensor(0.8, dtype=DT)},
        {"g": torch.tensor(1.3, dtype=DT)},
        "transcritical",
        0.4,
    ),
    "period-doubling": (
        CELL,
        _p(torch.diag(torch.tensor([-0.8, 0.5]))),
        _p(torch.diag(torch.tensor([-1.3, 0.5]))),
        "period doubling",
        0.4,
    ),
    "neimark-sacker": (CELL, _p(_rot(0.8)), _p(_rot(1.3)), "Neimark–Sacker", 0.4),
    "imperfect-pitchfork": (
        CELL,
        _p(torch.diag(torch.tensor([0.8, 0.5])), [0.005, 0.0]),
        _p(torch.diag(torch.tensor([1.5, 0.5])), [0.005, 0.0]),
        "pitchfork (imperfect)",
        None,
    ),
}


@pytest.mark.parametrize("name", list(PATHS))
def test_scripted_paths_report_exactly_that_kind(name):
    cell, p0, p1, kind, s_true = PATHS[name]
    events = locate(cell, p0, p1, tol=1e-4)
    assert [e.kind for e in events] == [kind]
    if s_true is not None:
        assert abs(events[0].s - s_true) <= 1e-3
    lo, hi = events[0].s_bracket
    assert lo <= events[0].s <= hi
    # one bisection bracket (tol), or two joined around the degenerate point (<= 12 tol)
    assert hi - lo <= 12 * 1e-4


def test_no_event_without_bifurcation():
    assert (
        locate(
            CELL, _p(torch.diag(torch.tensor([0.3, 0.5]))), _p(torch.diag(torch.tensor([0.9, 0.2])))
        )
        == []
    )


def test_critical_eigenvalue_is_recorded():
    cell, p0, p1, _, _ = PATHS["neimark-sacker"]
    (ev,) = locate(cell, p0, p1, tol=1e-4)
    lam = complex(*ev.critical_eigenvalue)
    assert abs(abs(lam) - 1) < 1e-3 and abs(math.atan2(lam.imag, lam.real)) == pytest.approx(
        1.0, abs=1e-6
    )


def test_monitor_records_rows_and_events_and_resumes():
    gains = torch.linspace(0.8, 1.3, 11, dtype=DT)

    def extra(p):
        return {"w00": float(p["W"][0, 0])}

    mon = BifurcationMonitor(CELL, every=1, tol=1e-3, extra_metrics=extra)
    rows, events = [], []
    for step, g in enumerate(gains):
        row, ev = mon.check(
            step, _p(torch.diag(torch.stack([g, torch.tensor(0.5, dtype=DT)]))), loss=float(g)
        )
        rows.append(row)
        events += ev
    assert [e.kind for e in events] == ["pitchfork"]
    assert events[0].step in (4, 5)  # g = 1 at check 4 exactly: the event sits at s≈0 or 1
    assert rows[0]["num_fixed_points"] == 1 and rows[-1]["num_fixed_points"] == 3
    assert rows[-1]["num_stable"] == 2 and rows[-1]["w00"] == pytest.approx(1.3)
    assert rows[0]["spectral_radius"] == pytest.approx(0.8)
    # a monitor restored from state_dict continues identically
    state = mon.state_dict()
    fresh = BifurcationMonitor(CELL, every=1, extra_metrics=extra)
    fresh.load_state_dict(state)
    nxt = _p(torch.diag(torch.tensor([0.9, 0.5])))
    r1, e1 = mon.check(11, nxt)
    r2, e2 = fresh.check(11, nxt)
    assert r1 == r2 and [e.kind for e in e1] == [e.kind for e in e2] == ["pitchfork"]


def test_channel_dominance_tends_to_one_at_an_embedded_pitchfork():
    """Paper 000 §3: near g* the rank-one bifurcation channel dominates the sNTK."""
    from sntkit.dynamics import (
        channel_decomposition,
        find_fixed_points,
        fit_normal_form,
        local_landscape,
    )
    from sntkit.ntk import state_ntk

    N = 6
    g = torch.Generator().manual_seed(0)
    W_rest = 0.3 * torch.randn(N, N, generator=g, dtype=DT) / math.sqrt(N)
    h0 = (torch.rand(32, N, generator=g, dtype=DT) - 0.5) * 0.2
    ratios = []
    for gain in (0.5, 0.7, 0.85, 0.95, 0.99):
        cell = RNN(N, 0, form="post", dtype=DT)
        with torch.no_grad():
            W = W_rest.clone()
            W[0, :], W[:, 0] = 0, 0
            W[0, 0] = gain
            cell.W.copy_(W)
            cell.b.zero_()
        ntk = state_ntk(cell, h0, steps=25, trainable=["W"])
        origin = find_fixed_points(cell, inits=4).locations[0]
        dec = channel_decomposition(ntk, origin, 1.0)
        assert dec.critical_eigenvalue.real == pytest.approx(gain, abs=1e-10)
        ratios.append(dec.dominance_ratio)
    assert all(b > a for a, b in itertools.pairwise(ratios)) and ratios[-1] > 0.99
    assert dec.fisher_cosine > 0.99
    # the landscape along e_g is fitted by the pitchfork normal form
    s = torch.linspace(-0.3, 0.3, 13, dtype=DT)
    fit = fit_normal_form(s, local_landscape(ntk, dec.e_g, s), "pitchfork", T=25)
    assert fit.r2 > 0.9


def test_eigenvalue_gradient_matches_finite_differences():
    from sntkit.dynamics import eigenvalue_gradient, find_fixed_points
    from sntkit.ntk import state_ntk

    g = torch.Generator().manual_seed(3)
    cell = RNN(4, 0, form="post", dtype=DT, generator=g, gain=1.4)
    with torch.no_grad():
        cell.b.normal_(0, 0.3, generator=g)
    ntk = state_ntk(cell, torch.zeros(2, 4, dtype=DT), steps=3)
    fps = find_fixed_points(cell, inits=64, scale=2.0)
    point, target = fps.locations[0], complex(fps.eigvals[0, 0])
    grad, lam = eigenvalue_gradient(ntk, point, target)
    theta = ntk.space.vector()
    d = torch.randn(theta.shape, generator=g, dtype=DT)
    eps = 1e-6

    def lam_at(t):
        params = ntk.space.merged(t)
        fp = find_fixed_points(cell, inits=point[None], params=params, opt_steps=0)
        ev = fp.eigvals[0]
        c = ev[int((ev - lam).abs().argmin())]
        return float(c.abs()) if abs(lam.imag) > 1e-10 else float(c.real)

    fd = (lam_at(theta + eps * d) - lam_at(theta - eps * d)) / (2 * eps)
    assert abs(float(grad @ d) - fd) <= 1e-5 * max(1.0, abs(fd))
