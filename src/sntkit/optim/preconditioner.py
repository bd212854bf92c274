"""Low-rank state-space natural gradient as a gradient preconditioner (paper 000, App. C.1).

Near a bifurcation the state-space Fisher ``F = J^* J`` (``J = ∂ states / ∂ θ``; same nonzero
spectrum as the sNTK ``J J^*``) is dominated by a few hugely amplified modes. With its top ``r``
eigenpairs ``(λ_i, u_i)`` (``U`` of shape ``(r, P)``, orthonormal rows) and damping ``ρ``, the
preconditioned gradient is (Sherman–Morrison–Woodbury)::

    g̃ = ρ (U^T Λ U + ρ I)^{-1} g = g − U^T diag(λ_i / (λ_i + ρ)) U g

so a mode with ``λ_i ≫ ρ`` is scaled by ``ρ / (λ_i + ρ)`` and the orthogonal complement is left
as it is. :class:`StateSpaceNaturalGradient` writes ``g̃`` into the parameters' ``.grad`` in
place, so *any* ``torch.optim`` optimizer (SGD, momentum, Adam, AdamW) then applies it — the
pattern of kfac-pytorch::

    precond = StateSpaceNaturalGradient(model, model.parameters(), h0=h0, inputs=x)
    loss.backward(); precond.step(); optimizer.step()

Parameters given to the preconditioner that are not parameters of the recurrent ``model`` (a
readout, an embedding) are passed through unchanged: ``F`` is the Fisher of the states only.

Eigenpairs: the first refresh (a *cold start*, also after :meth:`~StateSpaceNaturalGradient.
load_state_dict` of an empty state or a change of ``P``) starts from the block Krylov
:func:`sntkit.linalg.eigsh` pairs, accurate to relative residual ``cold_start_tol``, instead of
a random subspace. Every refresh (every ``update_every`` steps) then runs ``power_iters``
warm-started subspace (block power) iterations with Rayleigh–Ritz on the previous basis:
``Y = F U``, the Ritz pairs of ``U Y^T`` precondition the step and ``orth(Y)`` is kept for the
next refresh (``r`` Fisher probes per iteration). In between, the last pairs are reused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from sntkit.linalg import eigsh
from sntkit.models.resolve import resolve_model
from sntkit.ntk.state_ntk import StateNTK, state_ntk

Schedule = float | int | Callable[[int], float]


def schedule_value(h: Schedule, step: int) -> float:
    """Return a hyperparameter that is a number or a callable of the step number."""
    return float(h(step)) if callable(h) else float(h)


def split_params(params: Any) -> tuple[list[torch.Tensor], list[str] | None]:
    """Tensors (and names, when given as pairs) of ``model.parameters()``, param groups or pairs.

    Accepts a module, an iterable of tensors, of ``(name, tensor)`` pairs, or of param-group
    dicts (``{"params": ...}``) as ``torch.optim`` does.
    """
    if isinstance(params, nn.Module):
        named = list(params.named_parameters())
        return [p for _, p in named], [n for n, _ in named]
    if isinstance(params, torch.Tensor) or not isinstance(params, Iterable):
        raise TypeError(
            "params must be an iterable of tensors, (name, tensor) pairs or param-group dicts "
            f"(e.g. model.parameters()), got {type(params).__name__}"
        )
    items = list(params)
    if not items:
        raise ValueError("params is empty; pass model.parameters() or param groups")
    tensors: list[torch.Tensor] = []
    names: list[str] = []
    for item in items:
        if isinstance(item, dict):
            if "params" not in item:
                raise ValueError("a param group dict needs a 'params' entry")
            group = item["params"]
            sub, sub_names = split_params([group] if isinstance(group, torch.Tensor) else group)
            tensors += sub
            names += sub_names or []
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            names.append(item[0])
            tensors.append(item[1])
        elif isinstance(item, torch.Tensor):
            tensors.append(item)
        else:
            raise TypeError(
                "params entries must be tensors, (name, tensor) pairs or param-group dicts, got "
                f"{type(item).__name__}"
            )
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("every parameter must be a torch.Tensor")
    return tensors, (names if len(names) == len(tensors) else None)


class StateSpaceNaturalGradient:
    """Rank-``r`` state-space natural-gradient preconditioner of ``.grad`` (module docstring).

    Parameters
    ----------
    model:
        The model whose state-space Fisher is used: an sntkit cell, a ``torch.nn.RNN``/``GRU``/
        ``LSTM``, or a wrapper holding one (anything :func:`sntkit.ntk.state_ntk` accepts; the
        parameters of its recurrent module are preconditioned). It is never modified. ``None``
        when ``params`` carries names and ``ntk_factory`` is given.
    params:
        What the optimizer trains: ``model.parameters()``, param groups or ``(name, tensor)``
        pairs (default: ``model.parameters()``). Those that are parameters of ``model`` are
        preconditioned, the others passed through; parameters of ``model`` not listed here are
        held fixed in the Fisher.
    h0, inputs, steps:
        The batch the Fisher is taken on (``h0`` ``(B, N)``, default zeros; ``inputs``
        ``(B, T, n_in)`` or ``steps=T`` for autonomous models); :meth:`step` may pass a new batch.
    ntk_factory:
        Instead of ``h0``: a callable returning the :class:`~sntkit.ntk.StateNTK` at the current
        parameters, trained names equal to the preconditioned names.
    rank:
        Number ``r`` of Fisher modes preconditioned.
    damping:
        ``ρ`` (number or callable of the step), in units of ``F`` (``‖J u‖²`` for a unit ``u``).
    update_every:
        Refresh the eigenpairs every this many steps (int or callable of the step).
    power_iters:
        Warm-started block power iterations per refresh.
    cold_start_tol:
        Relative residual of the cold-start :func:`~sntkit.linalg.eigsh`.
    cold_start:
        ``"eigsh"`` (default) or ``"random"``: a seeded random orthonormal start, as before the
        block-Krylov cold start (its first ``update_every`` steps use poor pairs; kept to
        compare with earlier runs).
    path:
        ``state_ntk`` path of the Fisher products (default ``"auto"``: with the closed-form
        kernels a rank-1 refresh every 10 steps costs 1.34× an SGD step on the paper-000 task,
        against 1.61× on ``"unrolled"``; see benchmarks/RESULTS.md).
    seed:
        Seed of the cold start.
    """

    def __init__(
        self,
        model: nn.Module | None,
        params: Any = None,
        *,
        h0: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
        steps: int | None = None,
        ntk_factory: Callable[[], StateNTK] | None = None,
        rank: int = 1,
        damping: Schedule = 1.0,
        update_every: Schedule = 10,
        power_iters: int = 1,
        cold_start_tol: float = 1e-2,
        cold_start: str = "eigsh",
        path: str = "auto",
        seed: int = 0,
    ) -> None:
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(
                f"model must be the recurrent torch module (or None), got {type(model).__name__}"
            )
        pre, tensors = _preconditioned(model, params)
        if ntk_factory is None and (model is None or (inputs is None and steps is None)):
            raise ValueError(
                "give the Fisher batch (inputs, or steps=T for an autonomous model; h0 defaults "
                "to zeros) or ntk_factory"
            )
        if ntk_factory is not None and not callable(ntk_factory):
            raise TypeError("ntk_factory must be a callable returning the current StateNTK")
        _check_settings(rank, power_iters, cold_start, cold_start_tol, damping, update_every)
        self.model = model
        self.names = [n for n, _ in pre]
        self.params = [p for _, p in pre]
        pre_ids = {id(p) for p in self.params}
        #: parameters passed through unpreconditioned (e.g. a readout)
        self.passthrough = [p for p in tensors if id(p) not in pre_ids]
        self.h0, self.inputs, self.steps = h0, inputs, steps
        self.ntk_factory = ntk_factory
        self.rank = rank
        self.damping = damping
        self.update_every = update_every
        self.power_iters = power_iters
        self.cold_start_tol = cold_start_tol
        self.cold_start = cold_start
        self.path = path
        self.seed = seed
        #: when False, :meth:`step` leaves ``.grad`` alone and refreshes nothing
        self.enabled = True
        self.step_count = 0
        self.updates = 0
        self.matvecs = 0  # Fisher probes spent on refreshes
        self.basis: torch.Tensor | None = None  # (r, P) orthonormal warm start
        self.eigvals: torch.Tensor | None = None  # (r,) Ritz values
        self.eigvecs: torch.Tensor | None = None  # (r, P) Ritz vectors
        self.order: list[str] | None = None  # the NTK's flattening order
        self._stale = True
        if ntk_factory is None:
            self.current_ntk()  # shape errors of h0/inputs now, not at the first step

    # ------------------------------------------------------------------ Fisher modes
    def current_ntk(
        self, h0: torch.Tensor | None = None, inputs: torch.Tensor | None = None
    ) -> StateNTK:
        """Return the sNTK at the current parameters on the given batch (or the stored one)."""
        if self.ntk_factory is not None and h0 is None:
            return self.ntk_factory()
        if self.model is None:
            raise ValueError(
                "current_ntk(h0, inputs) builds the NTK from model, but this preconditioner was "
                "given only ntk_factory; pass model=... as well, or call it without h0"
            )
        if h0 is not None:
            self.h0, self.inputs = h0, inputs
        return state_ntk(
            self.model, self.h0, self.inputs, self.steps, trainable=self.names, path=self.path
        )

    def refresh(self, ntk: StateNTK) -> None:
        """Update the top-``r`` pairs of ``F = J^* J`` of ``ntk`` (cold or warm start)."""
        F = ntk.fisher
        names = [ntk.param_prefix + n for n in ntk.trainable]  # the model's qualified names
        if sorted(names) != sorted(self.names):
            raise ValueError(
                f"the NTK trains {list(names)} but the preconditioner holds {self.names}; build "
                "the NTK with trainable=<the preconditioned parameter names>"
            )
        P = ntk.num_params
        r = min(self.rank, P)
        U = self.basis
        if (U is None or U.shape != (r, P)) and self.cold_start == "random":
            g = torch.Generator().manual_seed(self.seed)
            U = torch.linalg.qr(torch.randn(P, r, generator=g, dtype=F.dtype)).Q.T
        elif U is None or U.shape != (r, P):
            # a random subspace needs tens of power iterations to find the amplified modes;
            # block Krylov gets them to cold_start_tol in a few block products
            _, U, info = eigsh(F, r, tol=self.cold_start_tol, seed=self.seed, return_info=True)
            self.matvecs += info.num_matvecs
        U = U.to(dtype=F.dtype, device=F.device)
        for _ in range(self.power_iters):
            Y = F.matmat(U)  # (r, P)
            self.matvecs += r
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
        self._stale = False

    def precondition(self, g: torch.Tensor, damping: float) -> torch.Tensor:
        """``g − U^T diag(λ/(λ+ρ)) U g`` for a flat gradient in :attr:`order` (``g`` if none)."""
        if self.eigvecs is None or self.eigvals is None:
            return g
        U = self.eigvecs.to(dtype=g.dtype, device=g.device)
        lam = self.eigvals.to(dtype=g.dtype, device=g.device)
        return g - U.T @ ((lam / (lam + damping)) * (U @ g))

    def refresh_due(self) -> bool:
        """Whether the next :meth:`step` refreshes the eigenpairs."""
        every = max(1, round(schedule_value(self.update_every, self.step_count)))
        return self._stale or self.step_count % every == 0

    def invalidate(self) -> None:
        """Force a refresh at the next :meth:`step` (e.g. when a policy switches it back on)."""
        self._stale = True

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, h0: torch.Tensor | None = None, inputs: torch.Tensor | None = None) -> None:
        """Rewrite the preconditioned parameters' ``.grad`` in place (after ``backward``).

        ``h0``/``inputs``: the current batch for a Fisher refresh (default: the stored batch).
        Does nothing while :attr:`enabled` is False (the step counter still advances).
        """
        if self.enabled:
            grads = {
                n: p.grad
                for n, p in zip(self.names, self.params, strict=True)
                if p.grad is not None
            }
            missing = [n for n in self.names if n not in grads]
            if missing:
                raise ValueError(
                    f"parameters {missing} have no gradient; call loss.backward() before "
                    "preconditioner.step()"
                )
            if self.refresh_due():
                with torch.enable_grad():
                    self.refresh(self.current_ntk(h0, inputs))
            order = self.order or self.names
            g = torch.cat([grads[n].reshape(-1) for n in order])
            d = self.precondition(g, schedule_value(self.damping, self.step_count))
            offset = 0
            for n in order:
                grad = grads[n]
                grad.copy_(d[offset : offset + grad.numel()].reshape(grad.shape))
                offset += grad.numel()
        self.step_count += 1

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers and names only (loads with ``torch.load(weights_only=True)``)."""
        return {
            "step_count": self.step_count,
            "updates": self.updates,
            "matvecs": self.matvecs,
            "enabled": self.enabled,
            "stale": self._stale,
            "basis": self.basis,
            "eigvals": self.eigvals,
            "eigvecs": self.eigvecs,
            "order": self.order,
            "names": list(self.names),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a preconditioner of the same parameters."""
        names = state.get("names")
        if names is not None and sorted(names) != sorted(self.names):
            raise ValueError(
                f"state_dict preconditions {names} but this preconditioner holds {self.names}"
            )
        self.step_count = int(state.get("step_count", 0))
        self.updates = int(state.get("updates", 0))
        self.matvecs = int(state.get("matvecs", 0))
        self.enabled = bool(state.get("enabled", True))
        self.basis = state.get("basis")
        self.eigvals = state.get("eigvals")
        self.eigvecs = state.get("eigvecs")
        self.order = state.get("order")
        self._stale = bool(state.get("stale", self.eigvecs is None))


def _preconditioned(
    model: nn.Module | None, params: Any
) -> tuple[list[tuple[str, torch.Tensor]], list[torch.Tensor]]:
    """Return the ``(name, tensor)`` pairs the Fisher sees, and all of ``params``."""
    if params is None:
        if model is None:
            raise ValueError("give model, params, or both")
        params = model.parameters()
    tensors, names = split_params(params)
    if model is not None:
        # the state-space Fisher sees the recurrent module's parameters only; a wrapper's
        # readout (or anything else) is passed through, under the wrapper's own names
        prefix = resolve_model(model).prefix
        owned = {id(p): n for n, p in model.named_parameters() if n.startswith(prefix)}
        pre = [(owned[id(p)], p) for p in tensors if id(p) in owned]
        if not pre:
            raise ValueError(
                "none of params belongs to model; pass the recurrent module as model and "
                "its parameters (or model.parameters() of a wrapper holding it) as params"
            )
    elif names is None:
        raise ValueError(
            "without model, params must be (name, tensor) pairs, e.g. "
            "model.named_parameters(), matching the NTK's trainable names"
        )
    else:
        pre = list(zip(names, tensors, strict=True))
    return pre, tensors


def _check_settings(
    rank: int,
    power_iters: int,
    cold_start: str,
    cold_start_tol: float,
    damping: Schedule,
    update_every: Schedule,
) -> None:
    """``ValueError`` naming the argument for a rank, cold start or schedule out of range."""
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    if not isinstance(power_iters, int) or power_iters < 1:
        raise ValueError(f"power_iters must be a positive int, got {power_iters!r}")
    if cold_start not in ("eigsh", "random"):
        raise ValueError(f"cold_start must be 'eigsh' or 'random', got {cold_start!r}")
    if not 0 < cold_start_tol < 1:
        raise ValueError(f"cold_start_tol must be in (0, 1), got {cold_start_tol}")
    for h, name in ((damping, "damping"), (update_every, "update_every")):
        if not callable(h) and float(h) <= 0:
            raise ValueError(f"{name} must be positive, got {h}")
