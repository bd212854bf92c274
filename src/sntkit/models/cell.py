"""The recurrent-cell interface every sntkit analysis runs on.

A cell is the one-step map ``h_t = f(h_{t-1}, x_t; θ)`` of paper 004 eq. 3, written as a *pure*
function of an explicit parameter dict so that :mod:`torch.func` (``vmap``, ``jvp``, ``vjp``,
``jacrev``) can differentiate and batch it. Cells are also ``torch.nn.Module``s holding their
own ``nn.Parameter``s, so users train them with any optimizer; analysis code never touches
those parameters — it works on detached copies (:func:`detached_params`).

Weight-based cells (paper 004 §4, Theorem 1, App. A.3.1) additionally describe how trained
weights enter the step: every weight block multiplies a *weight-site* variable (``h``, ``x``,
``tanh(h)``, a constant 1 for biases, an intermediate activation, ...) and the products are summed
into *pre-activation groups* ``pre_g = Σ W[rows] · site``. The cell exposes this through
:attr:`Cell.site_uses` and :meth:`Cell.step_lifted`, which runs the step with offsets ``δ_g``
added to each group's pre-activation and also returns the sites. By the chain rule
``D_θ f · δθ = Σ_g (∂f/∂δ_g) (δW_g · site_g)``, which is exactly the lifted factorization
``NTK_S = P_core (⊕_g V_g V_g^T ⊗ I_{n_g}) P_core^*`` with ``P_core = P · ∂f/∂δ``; it stays
exact for nested sites (a site computed from other trained weights, as in stacked layers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from sntkit.models.sites import Params, SiteUse, preactivation


@dataclass(frozen=True)
class StepJacobian:
    """Closed form of a step's Jacobians at a batch of pairs ``(h, x)`` of shape ``(..., N)``.

    ``A = ∂f/∂h = c·I + diag(left) · M · diag(right)`` and, for a cell with one pre-activation
    group, ``∂f/∂δ = diag(offset)`` (a tensor ``(..., N)``) or ``offset · I`` (a float).
    ``left``/``right`` are ``(..., N)`` or ``None`` (no scaling); ``matrix`` ``M`` is ``(N, N)``.
    Applying ``A`` to ``k`` probes is then one ``(·k, N) × (N, N)`` GEMM and elementwise scalings,
    with no per-pair ``N × N`` matrix and no autograd.
    """

    matrix: torch.Tensor
    left: torch.Tensor | None
    right: torch.Tensor | None
    identity: float
    offset: torch.Tensor | float

    def dense(self, batch_shape: tuple[int, ...]) -> torch.Tensor:
        """Return ``A`` as explicit matrices ``(*batch_shape, N, N)`` (small batches only)."""
        N = self.matrix.shape[-1]
        A = self.matrix.expand(*batch_shape, N, N)
        if self.left is not None:
            A = self.left[..., :, None] * A
        if self.right is not None:
            A = A * self.right[..., None, :]
        if self.identity:
            A = A + self.identity * torch.eye(N, dtype=A.dtype, device=A.device)
        return A.contiguous()


class Cell(nn.Module):
    """Base class of recurrent cells ``h_t = f(h_{t-1}, x_t; θ)`` on states of size ``n_state``.

    Subclasses implement :meth:`step`. Weight-based cells also set :attr:`site_uses` and
    implement :meth:`step_lifted` and :meth:`group_sizes` (see the module docstring).
    """

    #: number of state variables N (an LSTM stores (h, c) concatenated: N = 2 * hidden)
    n_state: int
    #: input size; 0 means an autonomous cell (inputs are ``None``)
    n_input: int
    #: weight-site structure; ``None`` for cells that are not weight-based
    site_uses: tuple[SiteUse, ...] | None = None
    #: ``c`` when the step depends on its single pre-activation group as ``c · pre + (terms
    #: free of pre)``, i.e. ``∂f/∂δ = c I`` (lets the NTK skip that Jacobian); else ``None``
    offset_scale: float | None = None

    def step(self, params: Params, h: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        """One step: ``h`` of shape ``(..., n_state)``, ``x`` ``(..., n_input)`` or ``None``."""
        if self.site_uses is None:
            raise NotImplementedError(f"{type(self).__name__} must implement step")
        return self.step_lifted(params, h, x)[0]

    def step_jacobian(
        self, params: Params, h: torch.Tensor, x: torch.Tensor | None
    ) -> StepJacobian | None:
        """Return the closed-form :class:`StepJacobian` at pairs ``(h, x)``, or ``None`` (autograd).

        Cells whose ``∂f/∂h`` has the diagonal-matrix-diagonal form override this; the NTK
        kernels then skip per-step autograd (:mod:`sntkit.ntk.propagator`).
        """
        return None

    # ------------------------------------------------------------------ weight sites
    def step_lifted(
        self,
        params: Params,
        h: torch.Tensor,
        x: torch.Tensor | None,
        offsets: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the step with ``pre[g] += offsets[g]``, and the weight sites ``{site: (..., m)}``.

        With ``offsets=None`` the first output equals :meth:`step`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not describe its weight sites")

    def group_sizes(self) -> dict[str, int]:
        """Size ``n_g`` of each pre-activation group."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its weight sites")

    def base_sites(self, h: torch.Tensor, x: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Return the constant site ``"one"`` and, for cells with inputs, the input site ``"x"``."""
        sites = {"one": h.new_ones((*h.shape[:-1], 1))}
        if self.n_input:
            if x is None:
                raise ValueError(f"this {type(self).__name__} has inputs (n_input > 0): pass x")
            sites["x"] = x
        return sites

    def preactivation(
        self,
        params: Params,
        sites: Mapping[str, torch.Tensor],
        group: str,
        offsets: Mapping[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        """``pre_g = Σ_{uses in g} site @ param[rows]^T (+ offsets[g])`` from :attr:`site_uses`."""
        assert self.site_uses is not None
        return preactivation(self.site_uses, params, sites, group, offsets)

    # ------------------------------------------------------------------ convenience
    def params(self) -> dict[str, torch.Tensor]:
        """Return the cell's own parameters by name (live tensors; see :func:`detached_params`)."""
        return dict(self.named_parameters())

    def forward(
        self,
        h0: torch.Tensor,
        x: torch.Tensor | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Unroll from ``h0`` (B, N) over inputs ``x`` (B, T, n_in) or ``steps``: (B, T, N)."""
        return rollout(self, self.params(), h0, x, steps)


def detached_params(cell: Cell, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Copy of a cell's parameters, detached from autograd (analysis never mutates a model)."""
    out = {}
    for name, p in cell.named_parameters():
        q = p.detach().clone()
        out[name] = q if dtype is None else q.to(dtype)
    return out


def rollout(
    cell: Cell,
    params: Params,
    h0: torch.Tensor,
    x: torch.Tensor | None = None,
    steps: int | None = None,
) -> torch.Tensor:
    """States ``h_1..h_T`` of shape ``(B, T, N)`` from ``h_0`` (B, N) (``h_0`` not included)."""
    T = _num_steps(x, steps)
    h = h0
    out = []
    for t in range(T):
        h = cell.step(params, h, None if x is None else x[:, t])
        out.append(h)
    return torch.stack(out, 1)


def _num_steps(x: torch.Tensor | None, steps: int | None) -> int:
    if x is None:
        if steps is None:
            raise ValueError("an autonomous rollout needs steps=T (no inputs x were given)")
        return int(steps)
    if steps is not None and steps != x.shape[1]:
        raise ValueError(
            f"steps={steps} disagrees with the inputs' time axis x.shape[1]={x.shape[1]}"
        )
    return x.shape[1]
