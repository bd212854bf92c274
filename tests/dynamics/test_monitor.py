"""BifurcationMonitor: rows, events, adaptive interval and resume along a training path, NaN
checks, recurrent weights of torch modules."""

import json
import math

import pytest
import torch
from torch import nn

from sntkit.dynamics import BifurcationMonitor, locate
from sntkit.models import RNN

DT = torch.float64
CELL = RNN(2, 0, form="post", dtype=DT)


def test_nan_parameters_give_a_warning_row_and_keep_the_previous_check():
    model = RNN(3, 0, form="post", dtype=torch.float64)
    monitor = BifurcationMonitor(model, every=1, num_inits=8)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    monitor.check(0, params, loss=1.0)
    prev = monitor.prev
    params["W"][0, 0] = math.nan
    with pytest.warns(RuntimeWarning, match="non-finite parameters"):
        row, events = monitor.check(1, params, loss=1.0)
    assert events == [] and "num_fixed_points" not in row and monitor.prev is prev


def test_torch_rnn_spectral_radius_from_weight_hh():
    torch.manual_seed(0)
    rnn = nn.RNN(2, 4, batch_first=True)
    monitor = BifurcationMonitor(rnn, every=1, num_inits=8)
    row, _ = monitor.check(0, dict(rnn.named_parameters()))
    W = rnn.weight_hh_l0.detach().double()
    assert row["spectral_radius"] == pytest.approx(float(torch.linalg.eigvals(W).abs().max()))


def test_missing_recurrent_weight_warns_instead_of_skipping_silently():
    model = RNN(3, 0, form="post", dtype=torch.float64)
    monitor = BifurcationMonitor(model, every=1, num_inits=8, recurrent_weight="weight_hh_l0")
    with pytest.warns(RuntimeWarning, match="recurrent_weight"):
        row, _ = monitor.check(0, dict(model.named_parameters()))
    assert "spectral_radius" not in row


def _gain_params(g):
    """``W = diag(g, 0.5)``, ``b = 0``: a pitchfork of the origin at ``g = 1``."""
    W = torch.diag(torch.stack([torch.as_tensor(g, dtype=DT), torch.tensor(0.5, dtype=DT)]))
    return {"W": W, "b": torch.zeros(2, dtype=DT)}


def test_monitor_records_rows_events_tracks_and_resumes():
    gains = torch.linspace(0.8, 1.3, 11, dtype=DT)

    def extra(p):
        return {"w00": float(p["W"][0, 0])}

    mon = BifurcationMonitor(CELL, every=1, tol=1e-3, extra_metrics=extra)
    rows, events = [], []
    for step, g in enumerate(gains):
        row, ev = mon.check(step, _gain_params(g), loss=float(g))
        rows.append(row)
        events += ev
    # the check at step 4 sits exactly on g* = 1 (λ = 1): it is not used as a bracket end, so
    # the event is located between checks 3 and 5 and reported once
    assert [e.kind for e in events] == ["pitchfork"]
    ev = events[0]
    assert (ev.extra["check_before"], ev.extra["check_after"]) == (3, 5) and ev.step == 4
    assert abs(ev.s - 0.5) <= 1e-3
    assert rows[0]["num_fixed_points"] == 1 and rows[-1]["num_fixed_points"] == 3
    assert rows[-1]["num_stable"] == 2 and rows[-1]["num_unstable"] == 1
    assert rows[4]["num_marginal"] == 1 and rows[-1]["w00"] == pytest.approx(1.3)
    assert rows[0]["spectral_radius"] == pytest.approx(0.8) and rows[0]["loss"] == 0.8
    # the critical eigenvalue is the origin's gain; det(J − I) = (g − 1)(0.5 − 1) changes sign
    for row, g in zip(rows, gains.tolist(), strict=True):
        if g < 1:
            assert row["critical_eig_real"] == pytest.approx(g)
            assert row["fold_test"] == pytest.approx((g - 1) * (0.5 - 1))
    assert all(r["fold_test"] > 0 for r in rows[:4])
    # the origin keeps its track id through the bifurcation; the new pair gets new ids
    ids = [{p["id"] for p in h["points"]} for h in mon.history]
    assert ids[0] == {0} and ids[-1] >= {0} and len(ids[-1]) == 3
    json.dumps(mon.history, allow_nan=False)
    # a monitor restored from state_dict continues identically
    fresh = BifurcationMonitor(CELL, every=1, extra_metrics=extra)
    fresh.load_state_dict(mon.state_dict())
    nxt = _gain_params(0.9)
    r1, e1 = mon.check(11, nxt)
    r2, e2 = fresh.check(11, nxt)
    assert r1 == r2 and [e.kind for e in e1] == [e.kind for e in e2] == ["pitchfork"]


def test_monitor_adapts_the_check_interval_after_an_event():
    mon = BifurcationMonitor(CELL, every=10, fine_every=2, fine_window=6)
    assert [s for s in range(25) if mon.due(s)] == [0, 10, 20]
    mon.check(0, _gain_params(0.9))
    _, events = mon.check(10, _gain_params(1.1))
    assert [e.kind for e in events] == ["pitchfork"] and mon.last_event_step == 10
    assert [s for s in range(10, 31) if mon.due(s)] == [10, 12, 14, 16, 20, 30]
    with pytest.raises(ValueError, match="every"):
        BifurcationMonitor(CELL, every=0)
    with pytest.raises(ValueError, match="tol"):
        locate(CELL, _gain_params(0.9), _gain_params(1.1), tol=0)


def _fold_path(step: int) -> dict[str, torch.Tensor]:
    """h' = 2 tanh(h) + b on unit 0 (unit 1 contracting), b = 0.8 − 0.05 step: a saddle-node
    pair is born at h ≈ −0.88, far from the one point there is before, at step ≈ 5.34."""
    W = torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    b = torch.tensor([0.8 - 0.05 * step, 0.0], dtype=torch.float64)
    return {"W": W, "b": b}


def _run(monitor, steps=range(11)):
    rows, events = [], []
    for step in steps:
        row, ev = monitor.check(step, _fold_path(step))
        rows.append(row)
        events += ev
    return rows, events


def test_following_known_points_between_full_searches_locates_the_same_event():
    cell = RNN(2, 0, form="post", dtype=torch.float64)
    b_fold = 2 * math.tanh(math.acosh(math.sqrt(2))) - math.acosh(math.sqrt(2))
    truth = (0.8 - b_fold) / 0.05
    every_check = _run(BifurcationMonitor(cell, every=1, num_inits=16, init_scale=1.5))
    sparse = BifurcationMonitor(cell, every=1, num_inits=16, init_scale=1.5, explore_every=4)
    rows, events = _run(sparse)
    # checks 0, 4, 8 search fully; between them the known points (and h = 0, which every
    # search adds) are followed, and the first followed set that differs from the last full
    # search's (step 6: Newton from 0 lands on the new pair) triggers a full search at once
    full = [r["full_search"] for r in rows]
    assert full == [True, False, False, False, True, False, True, False, True, False, False]
    assert [r["num_fixed_points"] for r in rows] == [r["num_fixed_points"] for r in every_check[0]]
    # the event is bracketed by the last two checks and located as every-check tracking
    # locates it
    assert [e.kind for e in events] == [e.kind for e in every_check[1]] == ["saddle-node"]
    ev = events[0]
    assert (ev.extra["check_before"], ev.extra["check_after"]) == (5, 6)
    assert ev.step == every_check[1][0].step == round(truth)
    assert abs(ev.s + 5 - truth) < 1e-3
    # resume continues the same schedule
    fresh = BifurcationMonitor(cell, every=1, num_inits=16, init_scale=1.5, explore_every=4)
    fresh.load_state_dict(sparse.state_dict())
    assert fresh.check(11, _fold_path(11))[0] == sparse.check(11, _fold_path(11))[0]


def test_a_followed_set_that_changes_triggers_a_full_search():
    cell = RNN(2, 0, form="post", dtype=torch.float64)
    mon = BifurcationMonitor(cell, every=1, num_inits=16, explore_every=100)
    diag = torch.diag
    mon.check(0, {"W": diag(torch.tensor([0.8, 0.5], dtype=torch.float64)), "b": torch.zeros(2)})
    # no event, no eigenvectors: they are computed only where a normal form needs them
    assert "_eigenvectors" not in mon.prev[2].points.__dict__
    # the origin turns unstable (pitchfork): the followed origin's signature changes
    row, events = mon.check(
        1, {"W": diag(torch.tensor([1.3, 0.5], dtype=torch.float64)), "b": torch.zeros(2)}
    )
    assert row["full_search"] and [e.kind for e in events] == ["pitchfork"]
    assert row["num_fixed_points"] == 3


@pytest.mark.parametrize(("value", "exc"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_explore_every_is_a_positive_int(value, exc):
    with pytest.raises(exc, match="explore_every"):
        BifurcationMonitor(RNN(2, 0), explore_every=value)


def test_a_trajectory_function_is_called_only_by_full_searches():
    cell = RNN(2, 0, form="post", dtype=torch.float64)
    calls = []

    def states():
        calls.append(1)
        return torch.zeros(1, 3, 2, dtype=torch.float64)

    mon = BifurcationMonitor(cell, every=1, num_inits=8, explore_every=3)
    rows = [mon.check(s, _fold_path(0), trajectory=states)[0] for s in range(7)]
    assert [r["full_search"] for r in rows] == [True, False, False, True, False, False, True]
    assert len(calls) == 3
