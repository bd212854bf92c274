"""Low-rank state-space natural gradient as one optimizer (paper 000, App. C.1).

:class:`LowRankNaturalGradient` is plain SGD on the gradient preconditioned by
:class:`~sntkit.optim.preconditioner.StateSpaceNaturalGradient` (see there for the math)::

    θ ← θ − η · [ g − U^T diag(λ_i / (λ_i + ρ)) U g ]

i.e. ``θ ← θ − η ρ (U^T Λ U + ρ I)^{-1} g``. To combine the preconditioner with momentum,
Adam or AdamW, use it directly in front of that optimizer instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sntkit.ntk.state_ntk import StateNTK
from sntkit.optim.preconditioner import (
    Schedule,
    StateSpaceNaturalGradient,
    schedule_value,
    split_params,
)


class LowRankNaturalGradient(torch.optim.SGD):
    """Rank-``r`` state-space natural gradient: the preconditioner followed by SGD.

    Parameters
    ----------
    params:
        A module (its ``named_parameters()``), ``(name, tensor)`` pairs (names must match the
        NTK's trainable names), or param groups of such pairs. Parameters added later with
        ``add_param_group`` are trained by plain SGD (they are not in the Fisher).
    ntk_factory:
        Returns the :class:`~sntkit.ntk.StateNTK` of the model at its *current* parameters on
        the current batch (e.g. ``lambda: state_ntk(model, h0, steps=T, trainable=names)``);
        called only at Fisher refreshes.
    rank, damping, update_every, power_iters, seed:
        As in :class:`~sntkit.optim.preconditioner.StateSpaceNaturalGradient`.
    lr:
        Step size ``η`` (a number or a callable of the step; the value of the current step is
        what ``param_groups`` and ``state_dict`` hold).
    """

    def __init__(
        self,
        params: nn.Module | Any,
        ntk_factory: Callable[[], StateNTK],
        *,
        rank: int = 1,
        lr: Schedule = 1e-3,
        damping: Schedule = 1.0,
        update_every: Schedule = 1,
        power_iters: int = 1,
        seed: int = 0,
    ) -> None:
        if not callable(lr) and float(lr) <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        tensors, names = split_params(params)
        if names is None:
            raise ValueError(
                "params must be a module or (name, tensor) pairs, e.g. model.named_parameters()"
            )
        self.preconditioner = StateSpaceNaturalGradient(
            None,
            list(zip(names, tensors, strict=True)),
            ntk_factory=ntk_factory,
            rank=rank,
            damping=damping,
            update_every=update_every,
            power_iters=power_iters,
            seed=seed,
        )
        self.lr_schedule = lr
        super().__init__(tensors, lr=schedule_value(lr, 0))

    @property
    def names(self) -> list[str]:
        """Return the names of the preconditioned parameters."""
        return self.preconditioner.names

    @property
    def step_count(self) -> int:
        """Return the number of steps taken."""
        return self.preconditioner.step_count

    @property
    def eigvals(self) -> torch.Tensor | None:
        """``(r,)`` Fisher eigenvalues of the last refresh."""
        return self.preconditioner.eigvals

    @property
    def eigvecs(self) -> torch.Tensor | None:
        """``(r, P)`` Fisher eigenvectors of the last refresh."""
        return self.preconditioner.eigvecs

    def refresh(self, ntk: StateNTK) -> None:
        """One Fisher refresh on ``ntk`` (see the preconditioner)."""
        self.preconditioner.refresh(ntk)

    def precondition(self, g: torch.Tensor, damping: float) -> torch.Tensor:
        """Return the preconditioned flat gradient (see the preconditioner)."""
        return self.preconditioner.precondition(g, damping)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Precondition ``.grad`` and take one SGD step (``closure`` as in torch.optim)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lr = schedule_value(self.lr_schedule, self.preconditioner.step_count)
        self.preconditioner.step()
        for group in self.param_groups:
            group["lr"] = lr
        super().step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Return torch.optim's state plus the preconditioner's."""
        out = super().state_dict()
        out["lowrank"] = self.preconditioner.state_dict()
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the preconditioner included)."""
        extra = state_dict.get("lowrank", {})
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "lowrank"})
        self.preconditioner.load_state_dict(extra)
