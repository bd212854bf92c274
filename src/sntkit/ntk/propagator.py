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

On either path, a cell that exposes its per-step Jacobian in closed form
(:meth:`sntkit.models.cell.Cell.step_jacobian`, ``A_t = c I + diag(l_t) M diag(r_t)``, e.g. the
RNN's ``W diag(φ'(h_{t-1}))``) is applied without autograd and without any per-pair matrix: one
step is an elementwise scaling and one ``(B·k, N) × (N, N)`` GEMM on the block, forward
``Y_t += l_t ⊙ ((r_t ⊙ Y_{t-1}) M^T) + c Y_{t-1}`` and backward
``Z_t += r_{t+1} ⊙ ((l_{t+1} ⊙ Z_{t+1}) M) + c Z_{t+1}``. Only ``l``, ``r`` (``(T, B, N)``) are
stored, so the set-up is one elementwise pass over the trajectory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jvp, vjp, vmap

from sntkit.models.cell import Cell, Params, StepJacobian


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
        closed_form: bool = True,
    ) -> None:
        if path not in ("structured", "matrix_free"):
            raise ValueError(f"path must be 'structured' or 'matrix_free', got {path!r}")
        self.cell, self.params, self.path = cell, params, path
        self.A: torch.Tensor | None = None
        self._vjps: list[Callable] | None = None
        #: the closed-form step Jacobians, time-major ``(T, B, N)`` scalings (None: autograd)
        self.jac: StepJacobian | None = None
        if closed_form:
            x = None if inputs is None else inputs.transpose(0, 1).contiguous()
            self.jac = cell.step_jacobian(params, prev.transpose(0, 1).contiguous(), x)
        if self.jac is not None:
            return
        # one tensor with its own storage per step: forward-mode AD at a primal that is a view
        # into a larger tensor materializes a tangent for the whole base (~10x slower)
        self.prev_steps = [prev[:, t].clone() for t in range(prev.shape[1])]
        self.input_steps = (
            None if inputs is None else [inputs[:, t].clone() for t in range(inputs.shape[1])]
        )
        if path == "structured":
            self.A = step_jacobians(cell, params, prev, inputs)

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

    def closed_jvp_(
        self, t: int, src: torch.Tensor, dst: torch.Tensor, buf: torch.Tensor, rows: slice
    ) -> None:
        """``dst += A_t src`` on ``(b, k, N)`` blocks of the batch rows ``rows``, closed form.

        ``buf`` is a workspace of at least ``b·k·N`` elements reused across steps: a fresh
        temporary of this size per step is a page-faulting allocation as costly as the GEMM.
        """
        j = self.jac
        assert j is not None
        N = src.shape[-1]
        buf = buf[: src.numel() // N]
        if j.left is None:
            X = (
                src
                if j.right is None
                else torch.mul(src, j.right[t, rows, None], out=buf.view_as(src))
            )
            dst.view(-1, N).addmm_(X.view(-1, N), j.matrix.T)
        else:
            X = src if j.right is None else src * j.right[t, rows, None]
            torch.mm(X.view(-1, N), j.matrix.T, out=buf)
            dst.addcmul_(buf.view_as(dst), j.left[t, rows, None])
        if j.identity:
            dst.add_(src, alpha=j.identity)

    def closed_vjp_(
        self, t: int, src: torch.Tensor, dst: torch.Tensor, buf: torch.Tensor, rows: slice
    ) -> None:
        """``dst += A_t^T src`` on ``(b, k, N)`` blocks (see :meth:`closed_jvp_`)."""
        j = self.jac
        assert j is not None
        N = src.shape[-1]
        buf = buf[: src.numel() // N]
        if j.right is None:
            X = (
                src
                if j.left is None
                else torch.mul(src, j.left[t, rows, None], out=buf.view_as(src))
            )
            dst.view(-1, N).addmm_(X.view(-1, N), j.matrix)
        else:
            X = src if j.left is None else src * j.left[t, rows, None]
            torch.mm(X.view(-1, N), j.matrix, out=buf)
            dst.addcmul_(buf.view_as(dst), j.right[t, rows, None])
        if j.identity:
            dst.add_(src, alpha=j.identity)

    def forward_(self, Y: torch.Tensor) -> torch.Tensor:
        """``P`` in place on time-major probes ``Y`` of shape ``(T, B, k, N)``; returns ``Y``."""
        buf = Y.new_empty(Y[0].numel() // Y.shape[-1], Y.shape[-1])
        for t in range(1, Y.shape[0]):
            if self.jac is not None:
                self.closed_jvp_(t, Y[t - 1], Y[t], buf, slice(None))
            elif self.A is not None:
                Y[t].baddbmm_(Y[t - 1], self.A[t].transpose(1, 2))
            else:
                Y[t].add_(self._jvp(t, Y[t - 1]))
        return Y

    def adjoint_(self, Z: torch.Tensor) -> torch.Tensor:
        """``P^*`` in place on time-major probes ``Z`` of shape ``(T, B, k, N)``; returns ``Z``."""
        buf = Z.new_empty(Z[0].numel() // Z.shape[-1], Z.shape[-1])
        for t in range(Z.shape[0] - 2, -1, -1):
            if self.jac is not None:
                self.closed_vjp_(t + 1, Z[t + 1], Z[t], buf, slice(None))
            elif self.A is not None:
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
    # torch.func.vjp is typed as returning a 2- or 3-tuple (no overload on has_aux)
    _, pullback = vjp(lambda h: cell.step(params, h, inputs), prev)  # type: ignore[misc]
    basis = torch.eye(N, dtype=prev.dtype, device=prev.device)[:, None, None, :]
    rows = vmap(lambda u: pullback(u)[0])(basis.expand(N, *prev.shape))  # (N_i, B, T, N_j)
    return rows.permute(2, 1, 0, 3).contiguous()
