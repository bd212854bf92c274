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
import numbers
from collections.abc import Callable

import torch

from sntkit.models.cell import Cell, detached_params, rollout
from sntkit.models.resolve import ResolvedModel, initial_state, resolve_model
from sntkit.ntk import core as _core
from sntkit.ntk.linearization import CellLinearization
from sntkit.ntk.output import OutputNTK, Readout, ReadoutSpec, feature_slice
from sntkit.ntk.parameters import ParameterSpace, Trainable
from sntkit.ntk.path_choice import choose_path
from sntkit.ntk.trajectory import Trajectory, unroll
from sntkit.ntk.views import STATE_AXES, GlobalStateViews
from sntkit.operators import FunctionOperator, Gram, Jacobian, Operator

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

    #: qualified name of the recurrent module in the user's model + "." ("" for a bare cell)
    param_prefix: str = ""
    #: the readout that defines :attr:`output` (None: no output NTK)
    readout: Readout | None = None
    #: most probes per batched pass (always set: the default comes from the memory budget)
    max_probes: int

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
        self._max_probes_given = max_probes is not None
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
        """Return the inputs ``(B, T, n_in)`` of the trajectory (None: autonomous)."""
        return self.traj.inputs

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Detached copies of all model parameters (trained and frozen)."""
        return self.space.params

    @property
    def trainable(self) -> tuple[str, ...]:
        """Return the names of the trained parameters, in the order of ``θ``."""
        return self.space.names

    @property
    def num_params(self) -> int:
        """``P``, the number of trained scalar parameters."""
        return self.space.size

    @property
    def state_shape(self) -> tuple[int, int, int]:
        """Return ``(B, T, N)``."""
        return self.traj.shape

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return dict of per-parameter tensors -> ``(P,)`` vector (trained names only)."""
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
        max_probes: int | None = None,
    ) -> Operator:
        names = {3: STATE_AXES}
        limit = self.max_probes if max_probes is None else max_probes
        return FunctionOperator(
            _chunked(fwd, limit),
            None if adj is None else _chunked(adj, limit),
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
    def operator(self) -> Gram:
        """``NTK_S = J J^* = P K P^*`` on ``(B, T, N)``.

        A :class:`~sntkit.operators.Gram` of ``J``: ``eigsh``, ``svds``, ``trace``,
        ``effective_rank``, ``frobenius_norm`` and ``cosine_similarity`` run on the smaller of
        ``NTK_S`` and the Fisher automatically (:mod:`sntkit.linalg.gram_side`).
        """
        if self.path == "unrolled":
            return Gram(self.jacobian)
        S, P = self.state_shape, (self.num_params,)
        ntk = self._op(self.linearization.ntk, None, S, S, "NTK_S")
        fisher = self._op(
            self.linearization.fisher, None, P, P, "Fisher", self._fisher_max_probes()
        )
        return Gram(self.jacobian, direct=ntk, dual_direct=fisher)

    def _fisher_max_probes(self) -> int:
        """Probes per pass of the Fisher product: the fused kernel's footprint sets the budget.

        Its memory does not grow with ``B`` (:meth:`~sntkit.ntk.linearization.CellLinearization.
        fisher_probe_bytes`), so the state-sized default would split a 10-probe block at
        ``T = 400`` into passes of 6 and 4 and halve every GEMM. An explicit ``max_probes`` wins.
        """
        per_probe = self.linearization.fisher_probe_bytes()
        if self._max_probes_given or per_probe is None:
            return self.max_probes
        return max(self.max_probes, PROBE_MEMORY_BUDGET // per_probe)

    @functools.cached_property
    def fisher(self) -> Gram:
        """The state-space Fisher ``F = J^* J`` on ``(P,)`` (same nonzero spectrum as NTK_S)."""
        return self.operator.dual

    @property
    def spectral_operator(self) -> Operator:
        """Whichever of ``NTK_S`` and ``F`` acts on the smaller space (same nonzero spectrum)."""
        return self.fisher if self.num_params <= math.prod(self.state_shape) else self.operator

    @functools.cached_property
    def output(self) -> OutputNTK:
        """The NTK on the model's outputs through its readout (:mod:`sntkit.ntk.output`)."""
        if self.readout is None:
            raise ValueError(
                "this NTK has no readout: pass readout=nn.Linear(...), a module or a function of "
                "the states to state_ntk (a wrapper module's own readout is found with "
                "readout='auto' when it is its only other child with parameters)"
            )
        return OutputNTK(self, self.readout)

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
        """Return the global adjoint state ``adj = P^* err`` (paper 004 Cor. 2), ``(B, T, N)``."""
        return self.P.rmatvec(self._check_state(error, "error"))

    def __repr__(self) -> str:
        B, T, N = self.state_shape
        return (
            f"StateNTK({type(self.cell).__name__}, B={B}, T={T}, N={N}, P={self.num_params}, "
            f"trainable={list(self.trainable)}, path={self.path!r})"
        )


def state_ntk(
    model: Cell | torch.nn.Module,
    h0: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
    inputs: torch.Tensor | None = None,
    steps: int | None = None,
    trainable: Trainable = None,
    *,
    recurrent: str | None = None,
    readout: ReadoutSpec | str | None = "auto",
    path: str = "auto",
    dtype: torch.dtype | None = None,
    max_probes: int | None = None,
) -> StateNTK:
    """Build the global-state NTK of ``model`` along the trajectory from ``h0``.

    Parameters
    ----------
    model:
        An sntkit cell (:class:`sntkit.models.RNN`, ``GRU``, ``LSTM``, ``FunctionalCell``), a
        ``torch.nn.RNN``/``GRU``/``LSTM`` module (adapted, never modified), or any ``nn.Module``
        that holds one of those (found by :func:`sntkit.models.resolve_model`).
    h0:
        Initial states ``(B, N)``; torch's ``(num_layers, B, hidden)`` (``(h0, c0)`` for an
        LSTM); or ``None`` for zeros (torch's default; the batch size comes from ``inputs``).
    inputs:
        ``(B, T, n_in)`` (whatever the module's ``batch_first``), or ``None`` for autonomous
        models (then give ``steps=T``).
    steps:
        Number of steps ``T >= 1`` for autonomous models (an int).
    trainable:
        Which parameters are trained: ``None`` (all), names, or a predicate on names. Names are
        those of ``model.named_parameters()`` (for a wrapper, qualified: ``"rnn.weight_hh_l0"``,
        ``"fc.weight"``; an explicit readout module's are ``"readout.<name>"``).
    recurrent:
        Qualified name of the recurrent submodule when a wrapper holds several.
    readout:
        The map from states to outputs that defines :attr:`StateNTK.output`: ``"auto"`` (the
        wrapper's own readout, its only other child with parameters), ``None``, an
        ``nn.Module`` (its parameters enter the output NTK when trained) or a function of the
        features ``(B, T, n) -> (B, T, n_out)``. Features are the top layer's hidden state for
        torch modules and the state for sntkit cells.
    path:
        ``"structured"`` (store per-step Jacobians, fastest for many probes), ``"matrix_free"``
        (nothing of size ``B·T·N²``), ``"unrolled"`` (``J``, ``NTK_S`` and ``F`` by plain
        ``torch.func`` JVP/VJP through the unrolled trajectory: no set-up, cheapest for one or
        two probes, e.g. inside an optimizer), or ``"auto"`` (structured or matrix-free by the
        measured rule of :mod:`sntkit.ntk.path_choice`). Cells with a closed-form
        ``step_jacobian`` (the RNN) apply it directly on both of the first two paths and store
        no per-step Jacobians.
    dtype:
        Compute dtype; the detached parameter copies, ``h0`` and ``inputs`` are converted to it.
        Default: ``h0.dtype`` (``inputs.dtype`` or the parameters' dtype when ``h0`` is None).
    max_probes:
        Most probes pushed through the kernels in one batched pass; larger probe blocks are
        split. Default: as many as keep the pass under :data:`PROBE_MEMORY_BUDGET` (4 GiB).
    """
    resolved = resolve_model(model, recurrent)
    check_sizes(inputs, steps)
    h0, inputs, dtype = _start(resolved.cell, h0, inputs, dtype)
    return _assemble(resolved, h0, inputs, steps, trainable, readout, path, dtype, max_probes)


def _start(
    cell: Cell,
    h0: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None,
    inputs: torch.Tensor | None,
    dtype: torch.dtype | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.dtype]:
    """``h0`` as ``(B, N)`` and ``inputs``, both in the compute dtype, and that dtype."""
    convert = dtype is not None
    dtype = dtype or _default_dtype(h0, inputs, cell)
    batch = inputs.shape[0] if isinstance(inputs, torch.Tensor) and inputs.ndim == 3 else None
    h0 = initial_state(cell, h0, batch, dtype, _default_device(h0, inputs, cell))
    if isinstance(h0, torch.Tensor) and h0.ndim == 2 and h0.shape[0] == 0:
        raise ValueError("h0 has an empty batch (B = 0); pass at least one initial state")
    if convert:
        h0 = h0.to(dtype) if isinstance(h0, torch.Tensor) else h0
        inputs = None if inputs is None else inputs.to(dtype)
    return h0, inputs, dtype


def _assemble(
    resolved: ResolvedModel,
    h0: torch.Tensor,
    inputs: torch.Tensor | None,
    steps: int | None,
    trainable: Trainable,
    readout: ReadoutSpec | str | None,
    path: str,
    dtype: torch.dtype,
    max_probes: int | None,
) -> StateNTK:
    """Return the trajectory, the parameter space, the path and the readout of :func:`state_ntk`."""
    cell = resolved.cell
    params = detached_params(cell, dtype=dtype)
    if isinstance(readout, str) and readout != "auto":
        raise ValueError(f"readout must be 'auto', None, a module or a function, got {readout!r}")
    ro_spec = resolved.readout if isinstance(readout, str) else readout
    ro_prefix = resolved.readout_prefix if ro_spec is resolved.readout else "readout."
    cell_trainable, ro_trainable = split_trainable(
        trainable, resolved.prefix, list(params), ro_prefix, _param_names(ro_spec)
    )
    space = ParameterSpace(params, cell_trainable)
    traj = unroll(cell, params, h0, inputs, steps)
    if path == "auto":
        path = choose_path(cell, params, traj, PROBE_MEMORY_BUDGET, resolved.recurrent)
    elif path not in ("structured", "matrix_free", "unrolled"):
        raise ValueError(
            f"path must be 'auto', 'structured', 'matrix_free' or 'unrolled', got {path!r}"
        )
    if max_probes is not None and (not isinstance(max_probes, int) or max_probes < 1):
        raise ValueError(f"max_probes must be a positive int or None, got {max_probes!r}")
    ntk = StateNTK(cell, space, traj, h0, path, max_probes)
    ntk.param_prefix = resolved.prefix
    if ro_spec is not None:
        ntk.readout = Readout(ro_spec, feature_slice(cell), ro_prefix, ro_trainable, dtype)
    return ntk


def check_sizes(inputs: torch.Tensor | None, steps: object) -> None:
    """Reject non-integer ``steps``, empty batches and zero-length inputs, naming the fix."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral)):
        raise TypeError(f"steps must be an int (the number of time steps T), got {steps!r}")
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 3:
        if inputs.shape[0] == 0:
            raise ValueError("inputs has an empty batch (B = 0); pass at least one sequence")
        if inputs.shape[1] == 0:
            raise ValueError("inputs has no time steps (T = 0); pass sequences of length T >= 1")


def split_trainable(
    trainable: Trainable,
    prefix: str,
    cell_names: list[str],
    ro_prefix: str,
    ro_names: list[str],
) -> tuple[Trainable, list[str] | None]:
    """Map the user's ``trainable`` (qualified names) to the cell's and the readout's names."""
    if trainable is None:
        return None, None
    if callable(trainable):
        return (
            lambda n: bool(trainable(prefix + n)),
            [n for n in ro_names if trainable(ro_prefix + n)],
        )
    if isinstance(trainable, str):
        raise TypeError(f"trainable must be a list of names, e.g. [{trainable!r}]")
    names = list(trainable)
    cell_q = {prefix + n: n for n in cell_names}
    ro_q = {ro_prefix + n: n for n in ro_names}
    unknown = [n for n in names if n not in cell_q and n not in ro_q]
    if unknown:
        raise ValueError(
            f"trainable names {unknown} are not parameters of the model; available: "
            f"{list(cell_q) + list(ro_q)}"
        )
    cell_sel = [cell_q[n] for n in names if n in cell_q]
    if not cell_sel:
        raise ValueError(
            "trainable must include at least one parameter of the recurrent module; available: "
            f"{list(cell_q)}"
        )
    return cell_sel, [ro_q[n] for n in names if n in ro_q]


def _param_names(readout: object) -> list[str]:
    if isinstance(readout, torch.nn.Module):
        return [n for n, _ in readout.named_parameters()]
    return []


def _first(h0: object) -> object:
    """``h0``, or the ``h`` of an LSTM's ``(h0, c0)``."""
    return h0[0] if isinstance(h0, tuple | list) and h0 else h0


def _default_dtype(h0: object, inputs: torch.Tensor | None, cell: Cell) -> torch.dtype:
    for t in (_first(h0), inputs):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return t.dtype
    first = next(cell.parameters(), None)
    return torch.get_default_dtype() if first is None else first.dtype


def _default_device(h0: object, inputs: torch.Tensor | None, cell: Cell) -> torch.device:
    for t in (_first(h0), inputs):
        if isinstance(t, torch.Tensor):
            return t.device
    first = next(cell.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def _chunked(kernel: Kernel, max_probes: int) -> Kernel:
    """``kernel`` on a probe block ``(k, ...)``, split into passes of at most ``max_probes``."""

    def apply(E: torch.Tensor) -> torch.Tensor:
        if E.shape[0] <= max_probes:
            return kernel(E)
        return torch.cat([kernel(part) for part in E.split(max_probes)])

    return apply
