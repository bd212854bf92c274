"""Vanilla RNN cells in the two forms the papers use.

* ``form="pre"`` (paper 004 eq. 21): ``h_{t+1} = φ(W h_t + W_in x_{t+1} + b)``.
* ``form="post"`` (paper 000 App. B, paper 004 eq. 17): ``h_{t+1} = W φ(h_t) + W_in x_{t+1} + b``,
  the form in which fixed points are placed exactly (``W φ(x̄) = x̄``).

Optional leak ``α ∈ (0, 1]``: ``h_{t+1} = (1 − α) h_t + α · (the update above)``.

Weight sites (paper 004 App. A.5.1): one pre-activation group ``"a"`` of size N fed by
``W`` on ``h`` (pre form) or ``φ(h)`` (post form), ``W_in`` on ``x`` and ``b`` on the constant 1,
so ``K_core = V V^T ⊗ I_N`` with ``V = cat(H_-, X, 1)`` restricted to the trained parameters.
``∂f/∂δ`` is ``α · diag(φ'(z))`` in the pre form and ``α · I`` in the post form: that is how the
activation derivative enters ``P_core``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sntkit.models.activations import Activation, derivative, get_activation
from sntkit.models.cell import Cell, StepJacobian
from sntkit.models.init import init_parameters_
from sntkit.models.sites import Params, SiteUse


class RNN(Cell):
    """Vanilla RNN cell with parameters ``W`` (N, N), ``W_in`` (N, n_in) and ``b`` (N,).

    Parameters
    ----------
    n_hidden:
        Number of units N.
    n_input:
        Input size; 0 (default) for an autonomous RNN (no ``W_in``).
    activation:
        ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"softplus"``, ``"identity"`` or a callable.
    form:
        ``"pre"`` or ``"post"`` (see module docstring).
    bias:
        Whether ``b`` exists.
    leak:
        ``None`` (no leak) or ``α ∈ (0, 1]``.
    gain, generator:
        Initialization: Xavier-normal ``W`` and ``W_in`` scaled by ``gain`` (``W`` has standard
        deviation ``gain/√N``), zero ``b``. Re-initialize with :meth:`reset_parameters`.
    """

    def __init__(
        self,
        n_hidden: int,
        n_input: int = 0,
        *,
        activation: str | Activation = "tanh",
        form: str = "pre",
        bias: bool = True,
        leak: float | None = None,
        gain: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        if n_hidden < 1:
            raise ValueError(f"n_hidden must be >= 1, got {n_hidden}")
        if n_input < 0:
            raise ValueError(f"n_input must be >= 0, got {n_input}")
        if form not in ("pre", "post"):
            raise ValueError(f"form must be 'pre' or 'post', got {form!r}")
        if leak is not None and not 0.0 < leak <= 1.0:
            raise ValueError(f"leak must be in (0, 1], got {leak}")
        self.n_state = n_hidden
        self.n_input = n_input
        self.form = form
        self.leak = leak
        self.activation_name = activation if isinstance(activation, str) else "custom"
        self.phi = get_activation(activation)
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        self.W = nn.Parameter(torch.empty(n_hidden, n_hidden, **kw))
        if n_input:
            self.W_in = nn.Parameter(torch.empty(n_hidden, n_input, **kw))
        if bias:
            self.b = nn.Parameter(torch.empty(n_hidden, **kw))
        uses = [SiteUse("W", "h" if form == "pre" else "phi_h", "a")]
        if n_input:
            uses.append(SiteUse("W_in", "x", "a"))
        if bias:
            uses.append(SiteUse("b", "one", "a"))
        self.site_uses = tuple(uses)
        if form == "post":
            self.offset_scale = 1.0 if leak is None else leak
        self.reset_parameters(gain=gain, generator=generator)

    @classmethod
    def from_weights(
        cls, W: torch.Tensor, b: torch.Tensor | None = None, *, form: str = "post"
    ) -> RNN:
        """Return an autonomous RNN (no input) with recurrent weights ``W`` (N, N) and bias ``b``.

        ``b`` is zeros when ``None``; the cell has the dtype and the device of ``W``.
        """
        if W.ndim != 2 or W.shape[0] != W.shape[1]:
            raise ValueError(f"W must be a square (N, N) matrix, got shape {tuple(W.shape)}")
        if b is not None and b.shape != W.shape[:1]:
            raise ValueError(f"b must have shape ({W.shape[0]},), got {tuple(b.shape)}")
        cell = cls(W.shape[0], 0, form=form, dtype=W.dtype, device=W.device)
        with torch.no_grad():
            cell.W.copy_(W)
            cell.b.copy_(torch.zeros_like(W[0]) if b is None else b)
        return cell

    def reset_parameters(self, gain: float = 1.0, generator: torch.Generator | None = None) -> None:
        """Xavier-normal weights times ``gain`` and zero bias."""
        init_parameters_(self, self.n_state, gain=gain, generator=generator)

    def group_sizes(self) -> dict[str, int]:
        """Return the one pre-activation group ``a`` (N)."""
        return {"a": self.n_state}

    def step_lifted(
        self,
        params: Params,
        h: torch.Tensor,
        x: torch.Tensor | None,
        offsets: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the step with ``pre[g] += offsets[g]`` and the weight sites."""
        sites = self.base_sites(h, x)
        if self.form == "pre":
            sites["h"] = h
        else:
            sites["phi_h"] = self.phi(h)
        a = self.preactivation(params, sites, "a", offsets)
        new = self.phi(a) if self.form == "pre" else a
        if self.leak is not None:
            new = (1.0 - self.leak) * h + self.leak * new
        return new, sites

    def step_jacobian(
        self, params: Params, h: torch.Tensor, x: torch.Tensor | None
    ) -> StepJacobian | None:
        """Return ``A = (1 − α) I + α W diag(φ'(h))`` (post), ``(1 − α) I + diag(α φ'(z)) W`` (pre).

        ``∂f/∂δ`` is ``α I`` (post) or ``diag(α φ'(z))`` (pre); ``φ'`` by
        :func:`~sntkit.models.activations.derivative`, so custom activations need none.
        ``None`` for a subclass that changes the step (its Jacobian is no longer this one).
        """
        if type(self).step_lifted is not RNN.step_lifted or type(self).step is not Cell.step:
            return None
        alpha = 1.0 if self.leak is None else self.leak
        c = 1.0 - alpha
        W = params["W"]
        if self.form == "post":
            dphi = derivative(self.phi, h)
            return StepJacobian(alpha * W if alpha != 1.0 else W, None, dphi, c, alpha)
        z = self.preactivation(params, {**self.base_sites(h, x), "h": h}, "a", None)
        left = derivative(self.phi, z)
        if alpha != 1.0:
            left = alpha * left
        return StepJacobian(W, left, None, c, left)

    def extra_repr(self) -> str:
        """Return the sizes and options shown by ``repr``."""
        return (
            f"n_hidden={self.n_state}, n_input={self.n_input}, form={self.form!r}, "
            f"activation={self.activation_name!r}, leak={self.leak}"
        )
