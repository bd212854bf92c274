"""The optimizers the reproductions compare, built in one place from their settings.

* ``"sgd"``: ``torch.optim.SGD(lr=config["lr"])`` (no momentum, as in the papers);
* ``"natural_gradient"`` (or ``"natural_gradient_rankR"``): :class:`~sntkit.optim.
  LowRankNaturalGradient` of rank ``config["rank"]`` (or ``R``) with ``lr``, ``damping``,
  ``update_every`` and ``seed`` from ``config``, on the Fisher of ``ntk_factory()``;
* ``"shampoo"``: :class:`~sntkit.optim.Shampoo` with ``lr=config["shampoo_lr"]``, eps 1e-4, in
  the variant ``config["shampoo"]``: ``"torch_optimizer"`` (−1/order, statistics every step, no
  grafting: the package at its defaults, as the authors ran it) or ``"textbook"`` (−1/(2·order),
  preconditioners every 10 steps, SGD grafting).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from sntkit.ntk import StateNTK
from sntkit.optim import LowRankNaturalGradient, Shampoo

_NATURAL_GRADIENT = re.compile(r"^natural_gradient(?:_rank(\d+))?$")


def make_optimizer(
    kind: str,
    model: nn.Module,
    config: Mapping[str, Any],
    ntk_factory: Callable[[], StateNTK] | None = None,
) -> torch.optim.Optimizer:
    """Return the optimizer ``kind`` for ``model`` from the experiment's settings (see module)."""
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config["lr"])
    if kind == "shampoo":
        if config["shampoo"] == "torch_optimizer":
            return Shampoo(
                model.parameters(), lr=config["shampoo_lr"], eps=1e-4, variant="torch_optimizer"
            )
        return Shampoo(
            model.parameters(), lr=config["shampoo_lr"], eps=1e-4, update_freq=10, graft="sgd"
        )
    match = _NATURAL_GRADIENT.match(kind)
    if match:
        if ntk_factory is None:
            raise ValueError(f"{kind} needs ntk_factory, the model's StateNTK on the batch")
        return LowRankNaturalGradient(
            model,
            ntk_factory,
            rank=int(match[1]) if match[1] else config["rank"],
            lr=config["lr"],
            damping=config["damping"],
            update_every=config["update_every"],
            seed=config["seed"],
        )
    raise ValueError(
        f"unknown optimizer {kind!r}: choose 'sgd', 'shampoo', 'natural_gradient' or "
        "'natural_gradient_rankR'"
    )
