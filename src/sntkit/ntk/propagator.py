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
            self._matrix_t = self.jac.matrix.T
            self._tile_views: dict[tuple[int | None, int | None], tuple] = {}
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

    def _scalings(self, rows: slice) -> tuple[list[torch.Tensor] | None, list[torch.Tensor] | None]:
        """Per step, ``left``, ``right`` of the batch rows ``rows`` as ``(rows, 1, N)`` views.

        Made once per tile instead of three view ops per step (the steps are tiny GEMMs, so
        per-op dispatch is a visible share of a product).
        """
        key = (rows.start, rows.stop)
        views = self._tile_views.get(key)
        if views is None:
            j = self.jac
            assert j is not None
            views = tuple(
                None if s is None else list(s[:, rows, None].unbind(0)) for s in (j.left, j.right)
            )
            self._tile_views[key] = views
        return views

    def closed_forward_(self, Y: torch.Tensor, rows: slice, buf: torch.Tensor) -> None:
        """``Y ← P Y`` in place on the time-major block ``(T, rows, k, N)`` of the rows ``rows``.

        Closed form, ``Y_t += l_t ⊙ ((r_t ⊙ Y_{t-1}) M^T) + c Y_{t-1}``. ``buf`` is a workspace
        of at least ``rows·k·N`` elements (a fresh temporary of this size per step is a
        page-faulting allocation as costly as the GEMM).
        """
        self._closed_recursion_(Y, rows, buf, backward=False)

    def closed_adjoint_(self, Z: torch.Tensor, rows: slice, buf: torch.Tensor) -> None:
        """``Z ← P^* Z`` in place on ``(T, rows, k, N)`` (see :meth:`closed_forward_`).

        ``Z_t += r_{t+1} ⊙ ((l_{t+1} ⊙ Z_{t+1}) M) + c Z_{t+1}``, backward in time.
        """
        self._closed_recursion_(Z, rows, buf, backward=True)

    def _closed_recursion_(
        self, Y: torch.Tensor, rows: slice, buf: torch.Tensor, backward: bool
    ) -> None:
        """Apply the recursion of ``P`` (or of ``P^*`` when ``backward``) in place.

        Step ``t`` gains ``A_a`` (``A_a^T``) applied to its neighbour ``s`` (``t − 1``, or
        ``t + 1`` backward) with ``a = t`` (``t + 1``): the scalings before and after the GEMM
        swap and ``M`` is transposed for the adjoint.
        """
        j = self.jac
        assert j is not None
        left, right = self._scalings(rows)
        pre, post, M = (left, right, j.matrix) if backward else (right, left, self._matrix_t)
        steps, flat, work = _step_views(Y, buf)
        T = len(steps)
        # (step updated, step it reads, index of the step Jacobian)
        order = (
            [(t, t + 1, t + 1) for t in range(T - 2, -1, -1)]
            if backward
            else [(t, t - 1, t) for t in range(1, T)]
        )
        for t, s, a in order:
            src = flat[s]
            if pre is not None:
                src = torch.mul(steps[s], pre[a], out=work).view(-1, src.shape[-1])
            if post is None:
                flat[t].addmm_(src, M)
            else:
                steps[t].addcmul_((src @ M).view_as(steps[t]), post[a])
            if j.identity:
                flat[t].add_(flat[s], alpha=j.identity)

    def forward_(self, Y: torch.Tensor) -> torch.Tensor:
        """``P`` in place on time-major probes ``Y`` of shape ``(T, B, k, N)``; returns ``Y``."""
        if self.jac is not None:
            self.closed_forward_(Y, slice(None), Y.new_empty(Y[0].numel()))
            return Y
        for t in range(1, Y.shape[0]):
            if self.A is not None:
                Y[t].baddbmm_(Y[t - 1], self.A[t].transpose(1, 2))
            else:
                Y[t].add_(self._jvp(t, Y[t - 1]))
        return Y

    def adjoint_(self, Z: torch.Tensor) -> torch.Tensor:
        """``P^*`` in place on time-major probes ``Z`` of shape ``(T, B, k, N)``; returns ``Z``."""
        if self.jac is not None:
            self.closed_adjoint_(Z, slice(None), Z.new_empty(Z[0].numel()))
            return Z
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


def _step_views(
    Y: torch.Tensor, buf: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Return per-step views of ``Y`` ``(T, b, k, N)`` and a workspace block, made once.

    The blocks ``(b, k, N)``, the same as ``(b·k, N)`` matrices, and ``buf``'s first ``b·k·N``
    elements shaped as one block.
    """
    T, N = Y.shape[0], Y.shape[-1]
    block = Y[0]
    work = buf.view(-1)[: block.numel()].view_as(block)
    return list(Y.unbind(0)), list(Y.view(T, -1, N).unbind(0)), work


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
