"""Bifurcation-aware switching of the natural-gradient preconditioner."""

import pytest
import torch

from sntkit.models import RNN
from sntkit.optim import StateSpaceNaturalGradient
from sntkit.tracking import BifurcationAwarePolicy


def _pre():
    model = RNN(3, 0, form="post", dtype=torch.float64)
    return StateSpaceNaturalGradient(model, h0=torch.zeros(2, 3, dtype=torch.float64), steps=3)


def test_on_at_collapse_off_after_the_event():
    pre = _pre()
    policy = BifurcationAwarePolicy(pre, stable_rank_below=1.5, test_below=0.05, max_on=100)
    assert not pre.enabled
    policy.log({"step": 0, "stable_rank": 3.0, "fold_test": 0.5, "num_events": 0})
    assert not pre.enabled
    policy.log({"step": 50, "stable_rank": 1.2, "fold_test": 0.5, "num_events": 0})
    assert pre.enabled and pre.refresh_due()
    policy.log({"step": 100, "stable_rank": 1.1, "num_events": 1})  # event, still collapsed
    assert pre.enabled
    policy.log({"step": 150, "stable_rank": 2.5, "fold_test": 0.4, "num_events": 0})
    assert not pre.enabled
    assert [s[:2] for s in policy.switches] == [(50, "on"), (150, "off")]
    policy.log({"step": 200, "stable_rank": 2.5, "flip_test": -0.01, "num_events": 0})
    assert pre.enabled and "test function" in policy.switches[-1][2]


def test_false_alarm_times_out_and_warning_rows_are_ignored():
    pre = _pre()
    policy = BifurcationAwarePolicy(pre, stable_rank_below=None, test_below=0.1, max_on=100)
    policy.log({"step": 0, "warning": "non-finite loss"})
    assert not pre.enabled
    policy.log({"step": 0, "fold_test": 0.01, "num_events": 0})
    policy.log({"step": 50, "fold_test": 0.01, "num_events": 0})
    assert pre.enabled
    policy.log({"step": 100, "fold_test": 0.01, "num_events": 0})
    assert not pre.enabled and "no event" in policy.switches[-1][2]
    state = policy.state_dict()
    other = BifurcationAwarePolicy(_pre(), test_below=0.1)
    other.load_state_dict(state)
    assert other.switches == policy.switches and not other.preconditioner.enabled


def test_errors():
    with pytest.raises(TypeError, match="preconditioner"):
        BifurcationAwarePolicy(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1))
    with pytest.raises(ValueError, match="stable_rank_below"):
        BifurcationAwarePolicy(_pre(), stable_rank_below=None, test_below=None)
    with pytest.raises(ValueError, match="test_below"):
        BifurcationAwarePolicy(_pre(), test_below=-1.0)
