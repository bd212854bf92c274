"""The global-state NTK of a recurrent model, ``NTK_S = P K P^*`` (paper 004 §3, Cor. 1).

For ``h_t = f(h_{t-1}, x_t; θ)`` unrolled from ``h_0`` over ``T`` steps on a batch of ``B``
sequences, the global state is ``h ∈ S = R^{B×T×N}`` (states ``h_1..h_T``) and

* ``D_θ f``: ``R^P -> S``, the one-step parameter Jacobian at every pair ``(h_{t-1}, x_t)``,
  applied time-parallel (one batched step for all ``B·T`` pairs, no recursion);
* ``K = D_θ f (D_θ f)^*`` on ``S`` (the parameter kernel);
* ``P = (I − D_h f T↓)^{-1}`` on ``S`` (the causal propagator, :mod:`sntkit.ntk.propagator`);
* ``J = D_θ h = P D_θ f`` (the parameter-to-state Jacobian) and ``NTK_S = J J^* = P K P^*``;
* the state-space Fisher ``F = J^* J`` on ``R^P``, with the same nonzero spectrum as ``NTK_S``.

Everything is matrix-free: operators are applied to batches of probes. The model is never
touched: all work uses detached copies of its parameters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from sntkit.models.cell import Cell, detached_params, rollout
from sntkit.models.torch_adapter import as_cell
from sntkit.ntk import core as _core
from sntkit.ntk.linearization import CellLinearization
from sntkit.ntk.parameters import ParameterSpace, Trainable
from sntkit.ntk.trajectory import Trajectory, unroll
from sntkit.ntk.views import STATE_AXES, GlobalStateViews
from sntkit.operators import FunctionOperator, Jacobian, Operator

Kernel = Callable[[torch.Tensor], torch.Tensor]

#: Default memory for one batched pass of probes: the matrix-free kernels keep about
#: ``PROBE_FOOTPRINT`` state-sized tensors per probe alive (measured on the GRU: 15 probes of
#: N=256, B=500, T=90 peaked at 15 GiB), so probe blocks are split to stay under this budget.
PROBE_MEMORY_BUDGET = 4 * 2**30
PROBE_FOOTPRINT = 24


class StateNTK(GlobalStateViews):
    """Global-state NTK of one model at one parameter point (see module docstring).

    Build it with :func:`state_ntk`. Operators act on states ``(B, T, N)`` (axis names
    ``("batch", "time", "unit")``) and on flattened trained parameters ``(P,)``.
    """

    def __init__(
        self,
        cell: Cell,
        space: ParameterSpace,
        traj: Trajectory,
        h0: torch.Tensor,
        path: str,
        max_probes: int | None = None,
    ) -> None:
        self.cell = cell
        self.space = space
        self.traj = traj
        self.h0 = h0
        self.path = path
        if max_probes is None:
            state_bytes = math.prod(traj.shape) * traj.states.element_size()
            max_probes = max(1, PROBE_MEMORY_BUDGET // (PROBE_FOOTPRINT * state_bytes))
        self.max_probes = max_probes

    # ------------------------------------------------------------------ data
    @property
    def states(self) -> torch.Tensor:
        """The global state ``h`` of shape ``(B, T, N)`` (``h_1..h_T``)."""
        return self.traj.states

    @property
    def inputs(self) -> torch.Tensor | None:
        return self.traj.inputs

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Detached copies of all model parameters (trained and frozen)."""
        return self.space.params

    @property
    def trainable(self) -> tuple[str, ...]:
        return self.space.names

    @property
    def num_params(self) -> int:
        """``P``, the number of trained scalar parameters."""
        return self.space.size

    @property
    def state_shape(self) -> tuple[int, int, int]:
        return self.traj.shape

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Dict of per-parameter tensors -> ``(P,)`` vector (trained names only)."""
        return self.space.flatten(tensors)

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(P,)`` vector -> dict of per-parameter tensors."""
        return self.space.unflatten(vector)

    # ------------------------------------------------------------------ operators
    @functools.cached_property
    def linearization(self) -> CellLinearization:
        """The kernels every operator below is built from (``P`` matrix-free for "unrolled")."""
        path = "matrix_free" if self.path == "unrolled" else self.path
        return CellLinearization(self.cell, self.space, self.traj, path)

    def _op(
        self,
        fwd: Kernel,
        adj: Kernel | None,
        shape_in: tuple[int, ...],
        shape_out: tuple[int, ...],
        name: str,
    ) -> Operator:
        names = {3: STATE_AXES}
        return FunctionOperator(
            _chunked(fwd, self.max_probes),
            None if adj is None else _chunked(adj, self.max_probes),
            shape_in,
            shape_out,
            dtype=self.states.dtype,
            device=self.states.device,
            batched=True,
            names_in=names.get(len(shape_in)),
            names_out=names.get(len(shape_out)),
            name=name,
        )

    @functools.cached_property
    def P(self) -> Operator:
        """The causal propagator ``P`` on ``(B, T, N)``; ``ntk.P.T`` is ``P^*``."""
        lin, S = self.linearization, self.state_shape
        return self._op(lin.prop.forward, lin.prop.adjoint, S, S, f"P[{self.path}]")

    @functools.cached_property
    def Dtheta_f(self) -> Operator:
        """``D_θ f``: ``(P,) -> (B, T, N)``, all pairs in one batched step."""
        lin = self.linearization
        return self._op(lin.theta_fwd, lin.theta_adj, (self.num_params,), self.state_shape, "D_θf")

    @functools.cached_property
    def K(self) -> Operator:
        """``K = D_θ f (D_θ f)^*`` on ``(B, T, N)`` (time-parallel, no recursion)."""
        lin, S = self.linearization, self.state_shape
        return self._op(lambda E: lin.theta_fwd(lin.theta_adj(E)), None, S, S, "K")

    @functools.cached_property
    def jacobian(self) -> Operator:
        """``J = D_θ h = P D_θ f``: trained parameters ``(P,)`` -> states ``(B, T, N)``."""
        if self.path == "unrolled":
            cell, space, traj, h0 = self.cell, self.space, self.traj, self.h0
            T = self.state_shape[1]

            def states(theta: torch.Tensor) -> torch.Tensor:
                x = traj.inputs
                return rollout(cell, space.merged(theta), h0, x, None if x is not None else T)

            return Jacobian(states, space.vector(), names_out=STATE_AXES, name="J[unrolled]")
        lin = self.linearization
        return self._op(
            lin.jacobian_fwd, lin.jacobian_adj, (self.num_params,), self.state_shape, "J"
        )

    @functools.cached_property
    def operator(self) -> Operator:
        """``NTK_S = J J^* = P K P^*`` on ``(B, T, N)``."""
        if self.path == "unrolled":
            return self.jacobian.gram()
        S = self.state_shape
        return self._op(self.linearization.ntk, None, S, S, "NTK_S")

    @functools.cached_property
    def fisher(self) -> Operator:
        """The state-space Fisher ``F = J^* J`` on ``(P,)`` (same nonzero spectrum as NTK_S)."""
        if self.path == "unrolled":
            return self.jacobian.T @ self.jacobian
        P = (self.num_params,)
        return self._op(self.linearization.fisher, None, P, P, "Fisher")

    @property
    def spectral_operator(self) -> Operator:
        """Whichever of ``NTK_S`` and ``F`` acts on the smaller space (same nonzero spectrum)."""
        return self.fisher if self.num_params <= math.prod(self.state_shape) else self.operator

    # ------------------------------------------------------------------ Kronecker core
    @functools.cached_property
    def sites(self) -> _core.WeightSites:
        """Weight sites per pre-activation group (Theorem 1); see :mod:`sntkit.ntk.core`."""
        lin = self.linearization
        if lin.weight_based:
            return lin.ws
        return _core.weight_sites(self.cell, self.params, self.trainable, self.traj)

    @property
    def weight_sites(self) -> torch.Tensor:
        """``V`` (B·T, m): the sites of all trained weights, e.g. ``cat(H_-, X, 1)``."""
        V = self.sites.joint
        return V.reshape(-1, V.shape[-1])

    @functools.cached_property
    def core(self) -> Operator:
        """The Gram ``V V^T`` on ``(B, T)`` (the paper's Kronecker core, factored)."""
        return _core.gram_operator(self.sites.joint)

    @functools.cached_property
    def core_kernel(self) -> Operator:
        """``K_core = ⊕_g V_g V_g^T ⊗ I_{n_g}`` on the lifted space ``(B, T, Σ n_g)``."""
        return _core.kronecker_core(self.sites)

    @functools.cached_property
    def P_core(self) -> Operator:
        """``P_core = P D_δ f``: lifted ``(B, T, Σ n_g)`` -> states.

        ``NTK_S = P_core K_core P_core^*`` exactly (Theorem 1 in lifted form).
        """
        lin = self.linearization
        if not lin.weight_based:
            self.sites  # raises the explanatory error  # noqa: B018
        B, T, _ = self.state_shape
        return self._op(
            lambda U: lin.prop.forward(lin.offset_fwd(U)),
            lambda E: lin.offset_adj(lin.prop.adjoint(E)),
            (B, T, lin.lifted_size),
            self.state_shape,
            "P_core",
        )

    # ------------------------------------------------------------------ alignment
    def adjoint_state(self, error: torch.Tensor) -> torch.Tensor:
        """The global adjoint state ``adj = P^* err`` (paper 004 Cor. 2), shape ``(B, T, N)``."""
        return self.P.rmatvec(self._check_state(error, "error"))

    def __repr__(self) -> str:
        B, T, N = self.state_shape
        return (
            f"StateNTK({type(self.cell).__name__}, B={B}, T={T}, N={N}, P={self.num_params}, "
            f"trainable={list(self.trainable)}, path={self.path!r})"
        )


def state_ntk(
    model: Cell | torch.nn.Module,
    h0: torch.Tensor,
    inputs: torch.Tensor | None = None,
    steps: int | None = None,
    trainable: Trainable = None,
    *,
    path: str = "auto",
    dtype: torch.dtype | None = None,
    max_probes: int | None = None,
) -> StateNTK:
    """Build the global-state NTK of ``model`` along the trajectory from ``h0``.

    Parameters
    ----------
    model:
        An sntkit cell (:class:`sntkit.models.RNN`, ``GRU``, ``LSTM``, ``FunctionalCell``) or a
        ``torch.nn.RNN``/``GRU``/``LSTM`` module (adapted, never modified).
    h0:
        Initial states ``(B, N)``.
    inputs:
        ``(B, T, n_in)``, or ``None`` for autonomous models (then give ``steps=T``).
    trainable:
        Which parameters are trained: ``None`` (all), names, or a predicate on names.
    path:
        ``"structured"`` (store per-step Jacobians, fastest for many probes), ``"matrix_free"``
        (nothing of size ``B·T·N²``), ``"unrolled"`` (``J``, ``NTK_S`` and ``F`` by plain
        ``torch.func`` JVP/VJP through the unrolled trajectory: no set-up, cheapest for one or
        two probes, e.g. inside an optimizer), or ``"auto"`` (matrix-free: the structured path's
        set-up, ``N`` VJPs of the batched step, pays off only after about a hundred probes).
    dtype:
        Compute dtype; the detached parameter copies, ``h0`` and ``inputs`` are converted to it.
        Default: ``h0.dtype``.
    max_probes:
        Most probes pushed through the kernels in one batched pass; larger probe blocks are
        split. Default: as many as keep the pass under :data:`PROBE_MEMORY_BUDGET` (4 GiB).
    """
    cell = as_cell(model)
    if dtype is not None:
        h0 = h0.to(dtype)
        inputs = None if inputs is None else inputs.to(dtype)
    params = detached_params(cell, dtype=h0.dtype if isinstance(h0, torch.Tensor) else None)
    space = ParameterSpace(params, trainable)
    traj = unroll(cell, params, h0, inputs, steps)
    if path == "auto":
        # measured (benchmarks/RESULTS.md): the structured path's set-up (N VJPs of the batched
        # step) only pays off after ~100 probes (GRU) or never (post-form RNN), so the
        # matrix-free recursion is the default; ask for "structured" for long analyses
        path = "matrix_free"
    elif path not in ("structured", "matrix_free", "unrolled"):
        raise ValueError(
            f"path must be 'auto', 'structured', 'matrix_free' or 'unrolled', got {path!r}"
        )
    if max_probes is not None and (not isinstance(max_probes, int) or max_probes < 1):
        raise ValueError(f"max_probes must be a positive int or None, got {max_probes!r}")
    return StateNTK(cell, space, traj, h0, path, max_probes)


def _chunked(kernel: Kernel, max_probes: int) -> Kernel:
    """``kernel`` on a probe block ``(k, ...)``, split into passes of at most ``max_probes``."""

    def apply(E: torch.Tensor) -> torch.Tensor:
        if E.shape[0] <= max_probes:
            return kernel(E)
        return torch.cat([kernel(part) for part in E.split(max_probes)])

    return apply
