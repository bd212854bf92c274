"""Shampoo (Gupta, Koren & Singer 2018): a Kronecker-factored preconditioner per tensor.

For a parameter of order ``k`` (a matrix has ``k = 2``) with gradient ``G``, Shampoo keeps one
statistic per mode ``i`` and applies one inverse root per mode. Two variants (``variant=``):

* ``"textbook"`` (default; the paper's Alg. 2): ``L_i = ε I + Σ_t G_(i) G_(i)^T`` (``G_(i)``:
  ``G`` matricized along mode ``i``; optionally an exponential average with ``beta2``) and

      θ ← θ − η · G ×_1 L_1^{−1/(2k)} ×_2 … ×_k L_k^{−1/(2k)},

  i.e. ``L^{−1/4} G R^{−1/4}`` for a matrix and ``(εI + Σ g gᵀ)^{−1/2} g`` for a vector.
* ``"torch_optimizer"``: the rule of ``torch_optimizer.Shampoo`` (v0.3), which paper 004's
  authors ran for Fig. 4 (their ``examples/train.py``). The exponent is ``−1/k`` — ``L^{−1/2}
  G R^{−1/2}`` for a matrix, a full inverse ``(εI + Σ g gᵀ)^{−1} g`` for a vector — and the modes
  are processed in order, each statistic accumulating the gradient *already preconditioned* along
  the earlier modes: with ``G^{(0)} = G``,

      L_i ← L_i + G^{(i)}_(i) G^{(i)T}_(i),   G^{(i+1)} = G^{(i)} ×_i L_i^{−1/k},

  and the step is ``−η G^{(k)}``. For a matrix: ``L += G Gᵀ``, ``R += (L^{−1/2}G)ᵀ(L^{−1/2}G)``,
  step ``L^{−1/2} G R^{−1/2}``. With ``momentum = weight_decay = 0`` (the package's defaults and
  the authors' setting) the update equals the package's; sntkit's momentum and weight decay are
  its own (heavy-ball on the update; decay added to a copy of the gradient, never in place).

Inverse roots are recomputed every ``update_freq`` steps (the first step included) by a float64
symmetric eigendecomposition with eigenvalues clamped at ``ε``; if it fails the previous roots are
kept (never NaN). Modes larger than ``max_precond_dim`` are not preconditioned (identity root).
Optional SGD grafting rescales the preconditioned step to the gradient's norm; optional
heavy-ball momentum. A 0-d parameter is treated as a vector of length 1.

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


VARIANTS = ("textbook", "torch_optimizer")


class Shampoo(torch.optim.Optimizer):
    """Shampoo for tensors of any order (see module docstring).

    Parameters
    ----------
    params, lr
        As for any ``torch.optim.Optimizer``.
    eps
        Initial statistic ``ε I`` and eigenvalue floor of the inverse roots.
    update_freq
        Recompute the inverse roots every this many steps (the first step included).
    momentum, weight_decay
        Heavy-ball momentum on the (grafted) update; L2 decay added to a copy of the gradient.
    beta2
        ``None``: statistics are sums (the paper); otherwise exponential averages.
    graft
        ``"sgd"``: rescale the preconditioned step to the gradient's Frobenius norm.
    max_precond_dim
        Modes larger than this are left unpreconditioned.
    variant
        ``"textbook"`` (exponent ``−1/(2k)``, raw-gradient statistics) or ``"torch_optimizer"``
        (exponent ``−1/k``, sequential statistics: the update of ``torch_optimizer.Shampoo``).
    """

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
        variant: str = "textbook",
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
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        defaults = {
            "lr": lr,
            "eps": eps,
            "update_freq": update_freq,
            "momentum": momentum,
            "beta2": beta2,
            "weight_decay": weight_decay,
            "graft": graft,
            "max_precond_dim": max_precond_dim,
            "variant": variant,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Take one Shampoo step on every parameter with a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, group)
        return loss

    def _update(self, p: torch.Tensor, G: torch.Tensor, group: dict) -> None:
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
        state["step"] += 1
        refresh = (state["step"] - 1) % group["update_freq"] == 0
        # textbook: every statistic sees the raw gradient, exponent 1/(2k);
        # torch_optimizer: mode i sees the gradient preconditioned along modes < i, exponent 1/k
        sequential = group["variant"] == "torch_optimizer"
        p_root = k if sequential else 2 * k
        update = Gt
        for mode, L in enumerate(state["stats"]):
            if L is None:
                continue
            src = update if sequential else Gt
            Gm = torch.movedim(src, mode, 0).reshape(src.shape[mode], -1)
            outer = Gm @ Gm.T
            if group["beta2"] is None:
                L.add_(outer)
            else:
                L.mul_(group["beta2"]).add_(outer, alpha=1 - group["beta2"])
            if refresh:
                try:
                    root = inverse_root(L, p_root, eps)
                except RuntimeError:
                    root = None  # keep the previous root
                if root is not None and bool(torch.isfinite(root).all()):
                    state["roots"][mode] = root
            update = mode_product(update, state["roots"][mode], mode)
        if group["graft"] == "sgd":
            update = update * (Gt.norm() / update.norm().clamp_min(1e-30))
        update = update.reshape(G.shape)
        if group["momentum"]:
            buf = state["buf"]
            buf.mul_(group["momentum"]).add_(update)
            update = buf
        p.add_(update, alpha=-group["lr"])
