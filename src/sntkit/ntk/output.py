"""The NTK on a model's outputs: readout of the global state (paper 004 §3, eq. 8).

A readout ``y_t = g(φ(h_t); θ_r)`` maps each state to an output (``φ`` picks the features the
readout sees: the top layer's hidden state for a torch RNN/GRU/LSTM, the state itself for an
sntkit cell). On the whole trajectory, with ``C = ∂g/∂φ · ∂φ/∂h`` (block-diagonal over
``(b, t)``) and ``R = ∂y/∂θ_r``, the Jacobian of the outputs ``(B, T, n_out)`` with respect to
all trained parameters ``(θ, θ_r)`` is ``J_y = [C J, R]`` and the output NTK is ::

    NTK_y = J_y J_y^* = C NTK_S C^* + R R^*,

the second term (the readout-parameter kernel) present only when readout parameters are
trained. ``J_y`` is matrix-free: ``J`` from :class:`~sntkit.ntk.state_ntk.StateNTK`, ``C`` and
``R`` by ``torch.func.jvp``/``vjp`` of the readout at all ``B·T`` states at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call, jvp, vjp, vmap

from sntkit.models.cell import Cell
from sntkit.models.torch_adapter import TorchRecurrent
from sntkit.ntk.core import WeightSites
from sntkit.ntk.parameters import ParameterSpace
from sntkit.ntk.views import STATE_AXES, GlobalStateViews
from sntkit.operators import FunctionOperator, Gram, Operator

if TYPE_CHECKING:
    from sntkit.ntk.state_ntk import StateNTK

ReadoutSpec = nn.Module | Callable[[torch.Tensor], torch.Tensor]


class Readout:
    """A readout ``g(features; θ_r)`` with detached parameter copies (the module is untouched).

    ``prefix`` is the readout's qualified name + ``"."`` in the user's model, used for the
    names of its parameters; ``trained`` the (local) names of its trained parameters.
    """

    def __init__(
        self,
        readout: ReadoutSpec,
        features: slice,
        prefix: str,
        trained: list[str] | None,
        dtype: torch.dtype,
    ) -> None:
        if not callable(readout):
            raise TypeError(
                "readout must be an nn.Module (e.g. nn.Linear) or a function of the states, got "
                f"{type(readout).__name__}"
            )
        self.module = readout if isinstance(readout, nn.Module) else None
        self.fn = readout
        self.features = features
        self.prefix = prefix
        params = {}
        if self.module is not None:
            params = {n: p.detach().clone().to(dtype) for n, p in self.module.named_parameters()}
        names = list(params) if trained is None else trained
        self.params = params
        self.space = ParameterSpace(params, names) if names else None

    def apply(self, theta: torch.Tensor | None, feats: torch.Tensor) -> torch.Tensor:
        """Return outputs for the flat trained readout parameters ``theta`` (frozen ones stored)."""
        if self.module is None:
            return self.fn(feats)
        if theta is None:
            params = self.params
        elif self.space is None:
            raise ValueError("theta given for a readout without trained parameters; pass None")
        else:
            params = self.space.merged(theta)
        return functional_call(self.module, params, (feats,))


_NO_CORE = (
    "the Kronecker core form is defined for the state NTK; use ntk.alignment(error, "
    "method='core') on the state NTK, or method='jacobian' here"
)


class OutputNTK(GlobalStateViews):
    """NTK on outputs ``(B, T, n_out)`` (see module docstring); views as for the state NTK.

    ``jacobian`` maps ``(P + P_r,)`` — the trained recurrent parameters, then the trained
    readout parameters (:attr:`trainable` lists their qualified names) — to outputs;
    ``operator`` is ``NTK_y`` (a :class:`~sntkit.operators.Gram`, so spectra run on the cheap
    side) and ``fisher`` its dual on parameters. Axis names ``("batch", "time", "unit")``, the
    last being the output channel.
    """

    def __init__(self, state: StateNTK, readout: Readout) -> None:
        self.state = state
        self.readout = readout
        self.max_probes = state.max_probes
        feats = state.states[..., readout.features]
        theta_r = None if readout.space is None else readout.space.vector()
        with torch.no_grad():
            out = readout.apply(theta_r, feats)
        if out.ndim != 3 or out.shape[:2] != feats.shape[:2]:
            raise ValueError(
                f"the readout must map features (B, T, n) to outputs (B, T, n_out), got shape "
                f"{tuple(out.shape)} from features {tuple(feats.shape)}"
            )
        self._states = out
        self._feats, self._theta_r = feats, theta_r

    @property
    def states(self) -> torch.Tensor:
        """The model's outputs ``(B, T, n_out)`` along the trajectory (the views' states)."""
        return self._states

    @property
    def outputs(self) -> torch.Tensor:
        """The model's outputs ``(B, T, n_out)`` along the trajectory."""
        return self._states

    @property
    def state_shape(self) -> tuple[int, int, int]:
        """Return ``(B, T, n_out)``."""
        B, T, n = self.states.shape
        return B, T, n

    @property
    def num_readout_params(self) -> int:
        """Return ``P_r``, the trained readout parameters (0 without any)."""
        return 0 if self.readout.space is None else self.readout.space.size

    @property
    def num_params(self) -> int:
        """Return ``P + P_r``, the parameters of ``jacobian``'s input."""
        return self.state.num_params + self.num_readout_params

    @property
    def trainable(self) -> tuple[str, ...]:
        """Qualified names of the trained parameters, in the order of ``jacobian``'s input."""
        cell = tuple(self.state.param_prefix + n for n in self.state.trainable)
        ro = () if self.readout.space is None else self.readout.space.names
        return cell + tuple(self.readout.prefix + n for n in ro)

    @functools.cached_property
    def _pullback(self) -> Callable:
        if self._theta_r is None:
            return vjp(lambda f: self.readout.apply(None, f), self._feats)[1]
        return vjp(self.readout.apply, self._theta_r, self._feats)[1]

    def _fwd(self, V: torch.Tensor) -> torch.Tensor:
        P = self.state.num_params
        dfeat = self.state.jacobian.matmat(V[:, :P])[..., self.readout.features]
        if self._theta_r is None:
            f = functools.partial(self.readout.apply, None)
            return vmap(lambda d: jvp(f, (self._feats,), (d,))[1])(dfeat)
        return vmap(lambda v, d: jvp(self.readout.apply, (self._theta_r, self._feats), (v, d))[1])(
            V[:, P:], dfeat
        )

    def _adj(self, E: torch.Tensor) -> torch.Tensor:
        g = self._pullback
        grads = vmap(g)(E)
        dfeat, dtheta_r = grads[-1], (grads[0] if self._theta_r is not None else None)
        dstate = E.new_zeros(E.shape[0], *self.state.state_shape)
        dstate[..., self.readout.features] = dfeat
        out = self.state.jacobian.rmatmat(dstate)
        return out if dtheta_r is None else torch.cat([out, dtheta_r], dim=1)

    @functools.cached_property
    def jacobian(self) -> Operator:
        """``J_y = [C J, R]``: trained parameters ``(P + P_r,)`` -> outputs ``(B, T, n_out)``."""
        return FunctionOperator(
            self._fwd,
            self._adj,
            (self.num_params,),
            self.state_shape,
            dtype=self.states.dtype,
            device=self.states.device,
            batched=True,
            names_out=STATE_AXES,
            name="J_y",
        )

    @functools.cached_property
    def operator(self) -> Gram:
        """``NTK_y = J_y J_y^* = C NTK_S C^* + R R^*`` on ``(B, T, n_out)``."""
        return Gram(self.jacobian)

    @property
    def fisher(self) -> Gram:
        """``J_y^* J_y`` on ``(P + P_r,)`` (same nonzero spectrum as ``NTK_y``)."""
        return self.operator.dual

    @property
    def P_core(self) -> Operator:
        """Not defined on outputs: raises ``ValueError`` naming the state NTK's form."""
        raise ValueError(_NO_CORE)

    @property
    def sites(self) -> WeightSites:
        """Not defined on outputs: raises ``ValueError`` naming the state NTK's form."""
        raise ValueError(_NO_CORE)

    def __repr__(self) -> str:
        B, T, n = self.state_shape
        return (
            f"OutputNTK(B={B}, T={T}, n_out={n}, P={self.state.num_params}, "
            f"P_readout={self.num_readout_params})"
        )


def feature_slice(cell: Cell) -> slice:
    """Return the units of the state a readout sees (the top layer's ``h`` for torch modules)."""
    if isinstance(cell, TorchRecurrent):
        return slice((cell.num_layers - 1) * cell.n_hidden, cell.num_layers * cell.n_hidden)
    return slice(None)
