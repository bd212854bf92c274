"""BifurcationMonitor: NaN checks, recurrent weights of torch modules; fixed points on NaN."""

import math

import pytest
import torch
from torch import nn

from sntkit.dynamics import BifurcationMonitor, find_fixed_points
from sntkit.models import RNN


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


def test_find_fixed_points_on_nan_weights_raises():
    model = RNN(3, 0, form="post", dtype=torch.float64)
    with torch.no_grad():
        model.W[1, 2] = math.nan
    with pytest.raises(ValueError, match=r"params\['W'\] has NaN"):
        find_fixed_points(model, inits=8)


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
