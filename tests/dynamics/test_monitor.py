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
