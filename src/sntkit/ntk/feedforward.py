"""Global-state NTK of a feedforward weight-based model (paper 004 §5.4, App. A.5.3).

For a model whose global state ``h(θ) ∈ R^{B×T×N}`` is an explicit function of the parameters
(e.g. :class:`sntkit.models.transformer.AttentionMLP`, state ``cat(A, H_1, …, Y)``), the
implicit constraint ``F(h, θ) = h − g(h, θ)`` is triangular over layers and
``NTK_S = J J^*`` with ``J = D_θ h`` applied by ``torch.func`` JVPs/VJPs (vmapped over probes).
With the model's weight sites, Theorem 1 holds in lifted form exactly as for recurrent cells:
``NTK_S = P_core (⊕_g V_g V_g^T ⊗ I_{n_g}) P_core^*``, ``P_core = ∂h/∂(pre-activation offsets)``.

A model passed here provides ``named_parameters()``, ``site_uses``, ``group_sizes()`` and
``state_lifted(params, x, offsets) -> (state, sites)``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from sntkit.models.torch_transformer import as_feedforward
from sntkit.ntk import core as _core
from sntkit.ntk.parameters import ParameterSpace, Trainable
from sntkit.ntk.views import STATE_AXES, GlobalStateViews
from sntkit.operators import Jacobian, Operator
from sntkit.operators.validation import check_tensor


class FeedforwardNTK(GlobalStateViews):
    """``NTK_S`` of a feedforward weight-based model at one parameter point and input batch."""

    def __init__(self, model: Any, space: ParameterSpace, inputs: torch.Tensor) -> None:
        self.model, self.space, self.inputs = model, space, inputs
        with torch.no_grad():
            states, sites = model.state_lifted(space.params, inputs)
        if not bool(torch.isfinite(states).all()):
            raise ValueError("the model's global state contains NaN/inf for these inputs")
        self._states = states
        self._sites = sites

    @property
    def states(self) -> torch.Tensor:
        """The global state ``(B, T, N)`` at the inputs."""
        return self._states

    @property
    def state_shape(self) -> tuple[int, int, int]:
        """Return ``(B, T, N)``."""
        B, T, N = self.states.shape
        return B, T, N

    @property
    def num_params(self) -> int:
        """Return ``P``, the number of trained scalar parameters."""
        return self.space.size

    @property
    def trainable(self) -> tuple[str, ...]:
        """Return the names of the trained parameters, in the order of ``θ``."""
        return self.space.names

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Return detached copies of all model parameters."""
        return self.space.params

    @functools.cached_property
    def jacobian(self) -> Operator:
        """``J = D_θ h``: trained parameters ``(P,)`` -> global state ``(B, T, N)``."""
        model, space, x = self.model, self.space, self.inputs

        def h(theta: torch.Tensor) -> torch.Tensor:
            return model.state_lifted(space.merged(theta), x)[0]

        return Jacobian(h, space.vector(), names_out=STATE_AXES, name="J")

    @functools.cached_property
    def operator(self) -> Operator:
        """``NTK_S = J J^*`` on ``(B, T, N)``."""
        return self.jacobian.gram()

    @functools.cached_property
    def fisher(self) -> Operator:
        """``F = J^* J`` on ``(P,)``."""
        return self.jacobian.T @ self.jacobian

    @functools.cached_property
    def sites(self) -> _core.WeightSites:
        """Weight sites per pre-activation group, e.g. ``X, X, X, A, H_1, …``."""
        return _core.collect_weight_sites(
            self.model.site_uses,
            self.model.group_sizes(),
            self._sites,
            self.params,
            self.trainable,
            type(self.model).__name__,
        )

    @property
    def weight_sites(self) -> torch.Tensor:
        """``V`` (B·T, m): e.g. ``cat(X, X, X, A, H_1, …, 1, …)`` for the trained weights."""
        V = self.sites.joint
        return V.reshape(-1, V.shape[-1])

    @functools.cached_property
    def core(self) -> Operator:
        """The Gram ``V V^T`` on ``(B, T)``."""
        return _core.gram_operator(self.sites.joint)

    @functools.cached_property
    def core_kernel(self) -> Operator:
        """``K_core = ⊕_g V_g V_g^T ⊗ I_{n_g}`` on the lifted space ``(B, T, Σ n_g)``."""
        return _core.kronecker_core(self.sites)

    @functools.cached_property
    def P_core(self) -> Operator:
        """``∂h/∂δ``: lifted ``(B, T, Σ n_g)`` -> state, with ``NTK_S = P_core K_core P_core^*``."""
        groups = list(self.sites.groups)
        sizes = [self.sites.sizes[g] for g in groups]
        B, T, _ = self.state_shape
        model, params, x = self.model, self.params, self.inputs

        def h(offsets: torch.Tensor) -> torch.Tensor:
            parts = dict(zip(groups, offsets.split(sizes, dim=-1), strict=True))
            return model.state_lifted(params, x, parts)[0]

        zeros = self.states.new_zeros(B, T, sum(sizes))
        return Jacobian(h, zeros, names_out=STATE_AXES, name="P_core")

    def __repr__(self) -> str:
        B, T, N = self.state_shape
        return (
            f"FeedforwardNTK({type(self.model).__name__}, B={B}, T={T}, N={N}, P={self.num_params})"
        )


def feedforward_ntk(
    model: Any,
    inputs: torch.Tensor,
    trainable: Trainable = None,
    *,
    dtype: torch.dtype | None = None,
) -> FeedforwardNTK:
    """Global-state NTK of a feedforward weight-based model (e.g. ``AttentionMLP``) on ``inputs``.

    ``model``: an ``AttentionMLP``, a ``torch.nn.MultiheadAttention`` (self-attention) or
    ``torch.nn.TransformerEncoderLayer`` (adapted by :mod:`sntkit.models.torch_transformer`,
    dropout off), or a model with ``state_lifted``. ``inputs`` is ``(B, T, n_in)`` (batch
    first, whatever the module's ``batch_first``); ``trainable`` selects parameters as for
    :func:`state_ntk`; ``dtype`` (default ``inputs.dtype``) is the compute dtype of the
    detached parameter copies. The model is never modified.
    """
    model = as_feedforward(model)
    if not hasattr(model, "state_lifted"):
        raise TypeError(
            f"{type(model).__name__} has no state_lifted(params, x, offsets); feedforward_ntk "
            "supports sntkit.models.AttentionMLP, torch.nn.MultiheadAttention, "
            "torch.nn.TransformerEncoderLayer and models written in that form"
        )
    check_tensor(inputs, name="inputs", where="feedforward_ntk")
    if inputs.ndim != 3:
        raise ValueError(f"inputs must be (B, T, n_in), got shape {tuple(inputs.shape)}")
    dtype = dtype or inputs.dtype
    params = {n: p.detach().clone().to(dtype) for n, p in model.named_parameters()}
    for n, p in params.items():
        if p.device != inputs.device:
            raise ValueError(f"parameter {n!r} is on {p.device} but inputs are on {inputs.device}")
    return FeedforwardNTK(model, ParameterSpace(params, trainable), inputs.to(dtype))
