"""The causal propagator ``P = (I − D_h f · T↓)^{-1}`` of a recurrent model (paper 004, Cor. 1).

On the global state space ``S = R^{B×T×N}`` (states ``h_1..h_T``), ``T↓`` shifts time back by one
step and ``D_h f`` is block-diagonal with the per-step Jacobians ``A_t = ∂h_t/∂h_{t-1}``
evaluated at the pairs ``(h_{t-1}, x_t)``. Inverting the lower-triangular ``I − D_h f T↓`` is a
forward recursion, and the adjoint a backward one::

    (P q)_1 = q_1,           (P q)_t = q_t + A_t (P q)_{t-1}
    (P* e)_T = e_T,          (P* e)_t = e_t + A_{t+1}^T (P* e)_{t+1}

``h_0`` is an input, not a state, so ``(P q)_1 = q_1`` exactly; the first step's parameter
Jacobian (at ``h_0``) still enters ``K`` (kpflow drops it).

Probe layout. The public :meth:`PropagatorKernel.forward`/:meth:`~PropagatorKernel.adjoint` take
probes ``(k, B, T, N)``. Internally every kernel of :mod:`sntkit.ntk.linearization` works on the
*time-major* layout ``(T, B, k, N)`` (:func:`to_time_major`): each step of the recursion then reads
and writes one contiguous ``(B, k, N)`` block in place, and the weight-site maps are single GEMMs
over all ``B·T`` pairs and probes. Two ways to apply ``A_t``:

* ``"structured"``: all ``A_t`` are formed once as a ``(T, B, N, N)`` tensor (``N``
  vector-Jacobian products of one batched step) and each step is one in-place batched GEMM
  (``baddbmm``) on the ``(B, k, N)`` block;
* ``"matrix_free"``: Jacobian-vector products of the cell's step (``torch.func.jvp``, vmapped
  over probes) forward and cached ``torch.func.vjp`` closures backward; nothing of size
  ``B·T·N²`` is stored.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jvp, vjp, vmap

from sntkit.models.cell import Cell, Params


def to_time_major(X: torch.Tensor) -> torch.Tensor:
    """``(k, B, T, d)`` -> ``(T, B, k, d)`` in fresh storage (kernels update it in place)."""
    return X.permute(2, 1, 0, 3).clone(memory_format=torch.contiguous_format)


def from_time_major(Y: torch.Tensor) -> torch.Tensor:
    """Contiguous ``(T, B, k, d)`` -> contiguous ``(k, B, T, d)``."""
    return Y.permute(2, 1, 0, 3).contiguous()


class PropagatorKernel:
    """Applies ``P`` and ``P^*`` to probes (see module docstring for the layouts).

    ``prev`` is ``(B, T, N)`` with ``prev[:, t]`` the state the ``t``-th step starts from
    (``prev[:, 0] = h_0``), and ``inputs`` ``(B, T, n_in)`` or ``None``.
    """

    def __init__(
        self,
        cell: Cell,
        params: Params,
        prev: torch.Tensor,
        inputs: torch.Tensor | None,
        path: str,
    ) -> None:
        if path not in ("structured", "matrix_free"):
            raise ValueError(f"path must be 'structured' or 'matrix_free', got {path!r}")
        self.cell, self.params, self.path = cell, params, path
        # one tensor with its own storage per step: forward-mode AD at a primal that is a view
        # into a larger tensor materializes a tangent for the whole base (~10x slower)
        self.prev_steps = [prev[:, t].clone() for t in range(prev.shape[1])]
        self.input_steps = (
            None if inputs is None else [inputs[:, t].clone() for t in range(inputs.shape[1])]
        )
        self.A = step_jacobians(cell, params, prev, inputs) if path == "structured" else None
        self._vjps: list[Callable] | None = None

    def _step(self, t: int) -> Callable[[torch.Tensor], torch.Tensor]:
        x = None if self.input_steps is None else self.input_steps[t]
        return lambda h: self.cell.step(self.params, h, x)

    def _jvp(self, t: int, Y: torch.Tensor) -> torch.Tensor:
        """``A_t`` applied to the ``(B, k, N)`` block ``Y`` by forward-mode AD."""
        f, h = self._step(t), self.prev_steps[t]
        if Y.shape[1] == 1:  # a single probe: skip vmap's per-call overhead
            return jvp(f, (h,), (Y[:, 0],))[1][:, None]
        return vmap(lambda v: jvp(f, (h,), (v,))[1], in_dims=1, out_dims=1)(Y)

    def _vjp(self, t: int, Z: torch.Tensor) -> torch.Tensor:
        """``A_t^T`` applied to the ``(B, k, N)`` block ``Z`` by cached pullbacks."""
        if self._vjps is None:
            self._vjps = [vjp(self._step(s), h)[1] for s, h in enumerate(self.prev_steps)]
        g = self._vjps[t]
        if Z.shape[1] == 1:
            return g(Z[:, 0])[0][:, None]
        return vmap(lambda u: g(u)[0], in_dims=1, out_dims=1)(Z)

    def forward_(self, Y: torch.Tensor) -> torch.Tensor:
        """``P`` in place on time-major probes ``Y`` of shape ``(T, B, k, N)``; returns ``Y``."""
        for t in range(1, Y.shape[0]):
            if self.A is not None:
                Y[t].baddbmm_(Y[t - 1], self.A[t].transpose(1, 2))
            else:
                Y[t].add_(self._jvp(t, Y[t - 1]))
        return Y

    def adjoint_(self, Z: torch.Tensor) -> torch.Tensor:
        """``P^*`` in place on time-major probes ``Z`` of shape ``(T, B, k, N)``; returns ``Z``."""
        for t in range(Z.shape[0] - 2, -1, -1):
            if self.A is not None:
                Z[t].baddbmm_(Z[t + 1], self.A[t + 1])
            else:
                Z[t].add_(self._vjp(t + 1, Z[t + 1]))
        return Z

    def forward(self, Q: torch.Tensor) -> torch.Tensor:
        """``P Q`` for ``Q`` of shape ``(k, B, T, N)``."""
        return from_time_major(self.forward_(to_time_major(Q)))

    def adjoint(self, E: torch.Tensor) -> torch.Tensor:
        """``P^* E`` for ``E`` of shape ``(k, B, T, N)``."""
        return from_time_major(self.adjoint_(to_time_major(E)))


def step_jacobians(
    cell: Cell, params: Params, prev: torch.Tensor, inputs: torch.Tensor | None
) -> torch.Tensor:
    """``A_t = ∂f/∂h (h_{t-1}, x_t)`` for every pair, as a ``(T, B, N, N)`` tensor.

    Row ``i`` of every ``A_t`` at once is one vector-Jacobian product of the batched step with
    the cotangent ``e_i`` at every pair, so ``N`` VJPs (vmapped) give all ``B·T`` Jacobians.
    """
    N = prev.shape[-1]
    _, pullback = vjp(lambda h: cell.step(params, h, inputs), prev)
    basis = torch.eye(N, dtype=prev.dtype, device=prev.device)[:, None, None, :]
    rows = vmap(lambda u: pullback(u)[0])(basis.expand(N, *prev.shape))  # (N_i, B, T, N_j)
    return rows.permute(2, 1, 0, 3).contiguous()
