"""Shampoo (Gupta, Koren & Singer 2018): a Kronecker-factored preconditioner per tensor.

For a parameter of order ``k`` (a matrix has ``k = 2``) with gradient ``G``, Shampoo keeps one
statistic per mode ``i``, ``L_i = ε I + Σ_t G_(i) G_(i)^T`` (``G_(i)``: ``G`` matricized along mode
``i``; optionally an exponential average with ``beta2``), and updates

    θ ← θ − η · G ×_1 L_1^{−1/(2k)} ×_2 … ×_k L_k^{−1/(2k)},

i.e. ``L^{−1/4} G R^{−1/4}`` for a matrix. The exponent ``−1/(2k)`` is the paper's (Alg. 2);
some implementations use ``−1/4`` for every order, which is wrong beyond matrices. Inverse
roots are recomputed every ``update_freq`` steps by a float64 symmetric eigendecomposition with
eigenvalues clamped at ``ε``; if it fails the previous roots are kept (never NaN). Modes larger
than ``max_precond_dim`` are not preconditioned (identity root). Optional SGD grafting rescales
the preconditioned step to the gradient's norm; optional heavy-ball momentum.

sntkit ships this small reference implementation instead of an adapter (see docs/shampoo.md):
it is exact, short and tested against a dense computation, and it adds no dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


def inverse_root(L: torch.Tensor, p: float, eps: float) -> torch.Tensor:
    """``L^{-1/p}`` of a symmetric PSD matrix (float64 ``eigh``, eigenvalues clamped at ``eps``)."""
    evals, evecs = torch.linalg.eigh(L.double())
    root = (evecs * evals.clamp_min(eps).pow(-1.0 / p)) @ evecs.T
    return root.to(L.dtype)


def mode_product(G: torch.Tensor, M: torch.Tensor, mode: int) -> torch.Tensor:
    """``G ×_mode M``: apply ``M`` (``d × d``) to mode ``mode`` of ``G``."""
    return torch.movedim(torch.tensordot(M, G, dims=([1], [mode])), 0, mode)


class Shampoo(torch.optim.Optimizer):
    """Shampoo for tensors of any order (see module docstring)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        *,
        eps: float = 1e-4,
        update_freq: int = 1,
        momentum: float = 0.0,
        beta2: float | None = None,
        weight_decay: float = 0.0,
        graft: str = "none",
        max_precond_dim: int = 2048,
    ) -> None:
        if lr <= 0 or eps <= 0:
            raise ValueError(f"lr and eps must be positive, got lr={lr}, eps={eps}")
        if update_freq < 1:
            raise ValueError(f"update_freq must be >= 1, got {update_freq}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if beta2 is not None and not 0 < beta2 < 1:
            raise ValueError(f"beta2 must be in (0, 1) or None, got {beta2}")
        if graft not in ("none", "sgd"):
            raise ValueError(f"graft must be 'none' or 'sgd', got {graft!r}")
        defaults = {
            "lr": lr,
            "eps": eps,
            "update_freq": update_freq,
            "momentum": momentum,
            "beta2": beta2,
            "weight_decay": weight_decay,
            "graft": graft,
            "max_precond_dim": max_precond_dim,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict) -> None:
        G = p.grad
        if group["weight_decay"]:
            G = G + group["weight_decay"] * p
        state = self.state[p]
        eps, k = group["eps"], max(G.ndim, 1)
        if not state:
            state["step"] = 0
            dims = G.shape if G.ndim else (1,)
            state["stats"] = [
                eps * torch.eye(d, dtype=G.dtype, device=G.device)
                if d <= group["max_precond_dim"]
                else None
                for d in dims
            ]
            state["roots"] = [
                None if s is None else torch.eye(s.shape[0], dtype=G.dtype, device=G.device)
                for s in state["stats"]
            ]
            if group["momentum"]:
                state["buf"] = torch.zeros_like(G)
        Gt = G.reshape(1) if G.ndim == 0 else G
        for mode, L in enumerate(state["stats"]):
            if L is None:
                continue
            Gm = torch.movedim(Gt, mode, 0).reshape(Gt.shape[mode], -1)
            outer = Gm @ Gm.T
            if group["beta2"] is None:
                L.add_(outer)
            else:
                L.mul_(group["beta2"]).add_(outer, alpha=1 - group["beta2"])
        state["step"] += 1
        if (state["step"] - 1) % group["update_freq"] == 0:
            for mode, L in enumerate(state["stats"]):
                if L is None:
                    continue
                try:
                    root = inverse_root(L, 2 * k, eps)
                except RuntimeError:
                    continue  # keep the previous root
                if bool(torch.isfinite(root).all()):
                    state["roots"][mode] = root
        update = Gt
        for mode, root in enumerate(state["roots"]):
            if root is not None:
                update = mode_product(update, root, mode)
        if group["graft"] == "sgd":
            update = update * (Gt.norm() / update.norm().clamp_min(1e-30))
        update = update.reshape(G.shape)
        if group["momentum"]:
            buf = state["buf"]
            buf.mul_(group["momentum"]).add_(update)
            update = buf
        p.add_(update, alpha=-group["lr"])
