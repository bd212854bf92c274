"""The reproductions' optimizers, built from their settings in one place."""

import pytest
import torch

from sntkit.experiments.optimizers import make_optimizer
from sntkit.models import RNN
from sntkit.ntk import state_ntk
from sntkit.optim import LowRankNaturalGradient, Shampoo

CONFIG = {"lr": 0.1, "shampoo_lr": 0.02, "shampoo": "torch_optimizer", "rank": 1,
          "damping": 5.0, "update_every": 3, "seed": 0}  # fmt: skip


def _model():
    return RNN(3, 0, form="post", dtype=torch.float64)


def test_each_kind_gets_its_settings():
    model = _model()
    sgd = make_optimizer("sgd", model, CONFIG)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["lr"] == 0.1
    assert sgd.defaults["momentum"] == 0
    h0 = torch.ones(2, 3, dtype=torch.float64)

    def factory():
        return state_ntk(model, h0, steps=4, path="unrolled")

    ng = make_optimizer("natural_gradient", model, CONFIG, factory)
    assert isinstance(ng, LowRankNaturalGradient) and ng.preconditioner.rank == 1
    assert make_optimizer("natural_gradient_rank2", model, CONFIG, factory).preconditioner.rank == 2
    authors = make_optimizer("shampoo", model, CONFIG)
    assert isinstance(authors, Shampoo) and authors.defaults["lr"] == 0.02
    assert authors.defaults["variant"] == "torch_optimizer"
    textbook = make_optimizer("shampoo", model, CONFIG | {"shampoo": "textbook"})
    assert textbook.defaults["variant"] == "textbook" and textbook.defaults["graft"] == "sgd"


def test_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        make_optimizer("adam", _model(), CONFIG)
    with pytest.raises(ValueError, match="needs ntk_factory"):
        make_optimizer("natural_gradient", _model(), CONFIG)
