"""Low-rank state-space natural gradient (paper 000, App. C.1).

Near a bifurcation the state-space NTK ``J J^*`` — and hence the state-space Fisher
``F = J^* J`` (same nonzero spectrum; ``J = ∂ states / ∂ θ``) — is dominated by a few hugely
amplified modes. This optimizer estimates the top ``r`` eigenpairs ``(λ_i, u_i)`` of ``F``
matrix-free and shrinks the gradient along them::

    θ ← θ − η · ρ (U Λ U^T + ρ I)^{-1} g
      = θ − η · [ g − U diag(λ_i / (λ_i + ρ)) U^T g ]          (Sherman–Morrison–Woodbury)

so a mode with ``λ_i ≫ ρ`` is scaled by ``ρ / (λ_i + ρ)`` (a natural-gradient step there) while
the orthogonal complement receives the plain SGD step ``−η g``. The damping ``ρ`` sets where
shrinking begins, in the units of ``F`` (``‖J u‖²`` for a unit parameter direction ``u``).

The eigenpairs come from warm-started subspace (block power) iteration with Rayleigh–Ritz: at an
update, ``Y = F U`` for the previous orthonormal ``U`` (``r`` Fisher probes in one block), the
Ritz pairs of ``U^T Y`` precondition this step and ``orth(Y)`` is kept for the next one. An
update costs ``power_iters`` block matvecs; in between (``update_every``) the last pairs are
reused. Any hyperparameter may be a callable of the step number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from sntkit.ntk.state_ntk import StateNTK

Schedule = float | int | Callable[[int], float]


def _value(h: Schedule, step: int) -> float:
    return float(h(step)) if callable(h) else float(h)


class LowRankNaturalGradient(torch.optim.Optimizer):
    """Rank-``r`` state-space natural gradient on top of SGD (see module docstring).

    Parameters
    ----------
    params:
        The trained parameters as ``(name, tensor)`` pairs, or a module (its
        ``named_parameters()``); names must match the NTK's trainable names.
    ntk_factory:
        Returns the :class:`~sntkit.ntk.StateNTK` of the model at its *current* parameters on
        the current batch (e.g. ``lambda: state_ntk(model, h0, steps=T, trainable=names)``);
        called only at Fisher updates.
    rank:
        Number ``r`` of Fisher modes preconditioned.
    lr, damping:
        Step size ``η`` and damping ``ρ`` (floats or callables of the step).
    update_every:
        Refresh the eigenpairs every this many steps (int or callable).
    power_iters:
        Block power iterations per refresh (warm-started, so 1 usually suffices).
    seed:
        Seed of the initial random subspace.
    """

    def __init__(
        self,
        params: nn.Module | Iterable[tuple[str, torch.Tensor]],
        ntk_factory: Callable[[], StateNTK],
        *,
        rank: int = 1,
        lr: Schedule = 1e-3,
        damping: Schedule = 1.0,
        update_every: Schedule = 1,
        power_iters: int = 1,
        seed: int = 0,
    ) -> None:
        named = list(params.named_parameters() if isinstance(params, nn.Module) else params)
        if not named or not all(isinstance(n, str) for n, _ in named):
            raise ValueError(
                "params must be a module or (name, tensor) pairs, e.g. model.named_parameters()"
            )
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        if power_iters < 1:
            raise ValueError(f"power_iters must be >= 1, got {power_iters}")
        if not callable(ntk_factory):
            raise TypeError("ntk_factory must be a callable returning the current StateNTK")
        for h, name in ((lr, "lr"), (damping, "damping"), (update_every, "update_every")):
            if not callable(h) and float(h) <= 0:
                raise ValueError(f"{name} must be positive, got {h}")
        defaults = {"lr": lr, "damping": damping}
        super().__init__([{"params": [p for _, p in named]}], defaults)
        self.names = [n for n, _ in named]
        self.ntk_factory = ntk_factory
        self.rank = rank
        self.update_every = update_every
        self.power_iters = power_iters
        self.seed = seed
        self.step_count = 0
        self.basis: torch.Tensor | None = None  # (r, P) orthonormal warm start
        self.eigvals: torch.Tensor | None = None  # (r,) Ritz values
        self.eigvecs: torch.Tensor | None = None  # (r, P) Ritz vectors
        self.order: list[str] | None = None  # the NTK's flattening order of the parameters
        self.updates = 0

    # ------------------------------------------------------------------ Fisher modes
    def refresh(self, ntk: StateNTK) -> None:
        """Advance the warm-started subspace iteration on ``F = J^* J`` of ``ntk``."""
        F = ntk.fisher
        names = ntk.trainable
        if sorted(names) != sorted(self.names):
            raise ValueError(
                f"the NTK trains {list(names)} but the optimizer holds {self.names}; build the "
                "NTK with trainable=<the optimizer's parameter names>"
            )
        P = ntk.num_params
        r = min(self.rank, P)
        U = self.basis
        if U is None or U.shape != (r, P) or U.dtype != F.dtype or U.device != F.device:
            g = torch.Generator().manual_seed(self.seed)
            U = torch.linalg.qr(torch.randn(P, r, generator=g, dtype=F.dtype)).Q.T.to(F.device)
        for _ in range(self.power_iters):
            Y = F.matmat(U)  # (r, P)
            H = U @ Y.T
            theta, S = torch.linalg.eigh((H + H.T) / 2)
            order = theta.argsort(descending=True)
            theta, S = theta[order], S[:, order]
            self.eigvals = theta.clamp_min(0)
            self.eigvecs = S.T @ U
            U = torch.linalg.qr((S.T @ Y).T).Q.T
        self.basis = U
        self.order = list(names)
        self.updates += 1

    def precondition(self, g: torch.Tensor, damping: float) -> torch.Tensor:
        """``ρ (U Λ U^T + ρ I)^{-1} g`` for a flat gradient (``g`` itself before any refresh)."""
        if self.eigvecs is None or self.eigvals is None:
            return g
        U, lam = self.eigvecs.to(g.dtype), self.eigvals.to(g.dtype)
        return g - U.T @ ((lam / (lam + damping)) * (U @ g))

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = group["params"]
        if any(p.grad is None for p in params):
            raise ValueError("every parameter needs a gradient before step(): call loss.backward()")
        step = self.step_count
        every = max(1, round(_value(self.update_every, step)))
        if step % every == 0:
            self.refresh(self.ntk_factory())
        by_name = dict(zip(self.names, params, strict=True))
        order = self.order or self.names
        g = torch.cat([by_name[n].grad.reshape(-1) for n in order])
        d = self.precondition(g, _value(group["damping"], step))
        lr = _value(group["lr"], step)
        offset = 0
        for n in order:
            p = by_name[n]
            k = p.numel()
            p.add_(d[offset : offset + k].reshape(p.shape), alpha=-lr)
            offset += k
        self.step_count += 1
        return loss

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["lowrank"] = {
            "step_count": self.step_count,
            "updates": self.updates,
            "basis": self.basis,
            "eigvals": self.eigvals,
            "eigvecs": self.eigvecs,
            "order": self.order,
        }
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        extra = state_dict.get("lowrank", {})
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "lowrank"})
        self.step_count = int(extra.get("step_count", 0))
        self.updates = int(extra.get("updates", 0))
        self.basis = extra.get("basis")
        self.eigvals = extra.get("eigvals")
        self.eigvecs = extra.get("eigvecs")
        self.order = extra.get("order")
