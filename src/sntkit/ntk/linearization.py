"""Kernels of the linearized recurrent model, acting on batches of probes.

A :class:`CellLinearization` holds one trajectory (its ``B·T`` pairs) and applies, to probes
``(k, B, T, ·)`` on the state side and ``(k, P)`` on the parameter side:

* ``P``, ``P^*`` (:class:`~sntkit.ntk.propagator.PropagatorKernel`);
* ``D_θ f`` and its adjoint, time-parallel over all pairs. For weight-based cells whose trained
  parameters all enter as weights, ``D_θ f = D_δ f · S`` where the *site map*
  ``S δθ = (Σ_{uses in g} site_u δW_u[rows]^T)_g`` is one GEMM per pre-activation group over
  all ``B·T`` pairs and all probes (paper 004 Theorem 1: ``S S^* = ⊕_g V_g V_g^T ⊗ I_{n_g}``) and
  ``D_δ f`` is the elementwise / gate part of the step (a cheap JVP). Otherwise a JVP/VJP of
  the batched step in ``θ``.
* ``D_δ f`` and its adjoint (the Jacobian of the step in its pre-activation offsets).
* For a cell with one pre-activation group and a closed-form step Jacobian
  (:meth:`~sntkit.models.cell.Cell.step_jacobian`, e.g. the RNN), ``J`` and ``J^*`` run fused
  with no autograd, tile by tile in the batch (the recursion never mixes sequences): the site
  GEMM of all ``T`` steps of the tile at once, ``D_δ f`` (a diagonal scaling), then the
  closed-form steps of ``P`` while the tile is in cache (backward: the steps of ``P^*``, then
  ``D_δ f^*`` and one site GEMM accumulated into ``(k·N, m)``). A Fisher product is then four
  ``2·B·T·N²``-flop GEMM passes per probe, and per step only the recursion's GEMM and scaling.

The compositions ``J``, ``J^*``, ``NTK_S = J J^*`` and ``F = J^* J`` chain time-major kernels
(``(T, B, k, ·)``, see :mod:`sntkit.ntk.propagator`) that update fresh buffers in place, so the
only layout changes are at the state-side boundary (``(k, B, T, N)`` in and out) and the
parameter side needs none: ``F`` never transposes a state-sized tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import jvp, vjp, vmap

from sntkit.models.cell import Cell
from sntkit.ntk.core import weight_sites
from sntkit.ntk.parameters import ParameterSpace
from sntkit.ntk.propagator import PropagatorKernel, from_time_major, to_time_major
from sntkit.ntk.trajectory import Trajectory

Lifted = list[torch.Tensor]  # time-major (T, B, k, n_g) per pre-activation group

#: Bytes of one step's batch tile ``(rows, k, N)`` in the fused ``J``/``J^*`` kernels: the
#: recursion is independent across sequences, so each tile runs through all T steps with its
#: current and previous step blocks and the workspace (3 tiles) inside a core's L2 cache.
TILE_BYTES = 2**20
#: ... but never fewer rows than this: the step GEMM ``(rows·k, N) × (N, N)`` loses more to
#: small tiles than the cache gains (measured at N = 256: 13 % slower with 51-row tiles)
TILE_MIN_ROWS = 256
#: a Fisher product's tile ``(T, rows, k, N)`` goes forward and back within this many bytes
#: (the two cores' L2), with at least ``FISHER_TILE_MIN_ROWS`` rows so each GEMM stays efficient
FISHER_TILE_BYTES = 4 * 2**20
FISHER_TILE_MIN_ROWS = 64


class CellLinearization:
    """Kernels of ``P``, ``D_θ f``, ``D_δ f`` and the site map (see module docstring)."""

    def __init__(
        self,
        cell: Cell,
        space: ParameterSpace,
        traj: Trajectory,
        path: str,
        closed_form: bool = True,
    ) -> None:
        self.cell, self.space = cell, space
        self.params = space.params
        self.prev = traj.prev  # (B, T, N)
        self.inputs = traj.inputs
        # time-major primal copies with their own storage (see PropagatorKernel)
        self.prev_tm = traj.prev.transpose(0, 1).contiguous()
        self.inputs_tm = None if traj.inputs is None else traj.inputs.transpose(0, 1).contiguous()
        self.prop = PropagatorKernel(cell, self.params, self.prev, self.inputs, path, closed_form)
        self._theta_vjp: Callable[..., Any] | None = None
        self._offset_vjp: Callable[..., Any] | None = None
        self.weight_based = cell.site_uses is not None and set(space.names) <= {
            u.param for u in cell.site_uses
        }
        if self.weight_based:
            self._init_sites(traj)
        # one group whose D_δ f and A_t are closed-form: J and J^* run batch-tiled, no autograd
        self.fused = (
            self.weight_based and self.group_sizes == [cell.n_state] and self.prop.jac is not None
        )

    # ------------------------------------------------------------------ site map
    def _init_sites(self, traj: Trajectory) -> None:
        ws = weight_sites(self.cell, self.params, self.space.names, traj)
        self.ws = ws
        self.groups = list(ws.groups)
        self.group_sizes = [ws.sizes[g] for g in self.groups]
        self.lifted_size = sum(self.group_sizes)
        # V_g time-major, (T·B, m_g): row t·B + b is the site of pair (b, t)
        self.site_mats = {
            g: V.transpose(0, 1).reshape(-1, V.shape[-1]).contiguous() for g, V in ws.groups.items()
        }
        offsets, start = {}, 0
        for n in self.space.names:
            offsets[n] = (start, start + self.space.numels[n])
            start += self.space.numels[n]
        self._param_slices = offsets

    def _site_weights(self, V: torch.Tensor) -> list[torch.Tensor]:
        """``(k, P)`` -> per group the stacked weight blocks ``[δW_g]`` as ``(k·n_g, m_g)``."""
        k = V.shape[0]
        d = self.space.unflatten(V)  # name -> (k, *shape)
        out = []
        for g, n in zip(self.groups, self.group_sizes, strict=True):
            blocks = [d[u.param][:, u.rows] for u in self.ws.uses[g]]
            Wg = torch.cat([w if w.ndim == 3 else w[..., None] for w in blocks], dim=-1)
            out.append(Wg.reshape(k * n, -1))
        return out

    def _site_grads(self, G: list[torch.Tensor]) -> torch.Tensor:
        """Per group ``(k, n_g, m_g)`` products ``[U_g]^T V_g`` -> ``(k, P)`` by weight block."""
        k = G[0].shape[0]
        out = G[0].new_zeros(k, self.space.size)
        grads = {
            name: out[:, a:b].view(k, *self.space.shapes[name])
            for name, (a, b) in self._param_slices.items()
        }
        for g, Gg in zip(self.groups, G, strict=True):
            for u, Gu in zip(self.ws.uses[g], Gg.split(self.ws.widths[g], dim=-1), strict=True):
                target = grads[u.param][:, u.rows]
                target += Gu if target.ndim == 3 else Gu[..., 0]
        return out

    def site_fwd_tm(self, V: torch.Tensor) -> Lifted:
        """``S``: ``(k, P)`` -> lifted, one GEMM ``V_g [δW_g]^T`` per group over pairs × probes."""
        T, B = self.prev_tm.shape[:2]
        k = V.shape[0]
        # (T·B, m) @ (m, k·n): rows are pairs, columns probe-major then unit
        return [
            (self.site_mats[g] @ Wg.T).view(T, B, k, n)
            for g, n, Wg in zip(self.groups, self.group_sizes, self._site_weights(V), strict=True)
        ]

    def site_adj_tm(self, U: Lifted) -> torch.Tensor:
        """``S^*``: lifted -> ``(k, P)``, one GEMM ``[U_g]^T V_g`` per group."""
        T, B, k, _ = U[0].shape
        return self._site_grads(
            [
                (Ug.reshape(T * B, k * n).T @ self.site_mats[g]).view(k, n, -1)
                for g, Ug, n in zip(self.groups, U, self.group_sizes, strict=True)
            ]
        )

    # ------------------------------------------------------------------ D_δ f
    def _offset_step(self, *offsets: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(self.groups, offsets, strict=True))
        return self.cell.step_lifted(self.params, self.prev_tm, self.inputs_tm, parts)[0]

    def _zero_offsets(self) -> tuple[torch.Tensor, ...]:
        T, B = self.prev_tm.shape[:2]
        return tuple(self.prev_tm.new_zeros(T, B, n) for n in self.group_sizes)

    def _fused_offset(self) -> torch.Tensor | None:
        """``diag(∂f/∂δ)`` time-major ``(T, B, N)`` when fused with a closed-form step Jacobian."""
        jac = self.prop.jac
        if self.fused and jac is not None and isinstance(jac.offset, torch.Tensor):
            return jac.offset
        return None

    def offset_fwd_tm(self, U: Lifted) -> torch.Tensor:
        """``D_δ f``: lifted -> time-major ``(T, B, k, N)`` (may return ``U[0]`` itself)."""
        scale = self.cell.offset_scale
        if scale is not None:
            return U[0] if scale == 1.0 else U[0].mul_(scale)
        diag = self._fused_offset()
        if diag is not None:
            return U[0].mul_(diag[:, :, None])
        zero = self._zero_offsets()
        return vmap(lambda *u: jvp(self._offset_step, zero, u)[1], in_dims=2, out_dims=2)(
            *U
        ).contiguous()

    def offset_adj_tm(self, E: torch.Tensor) -> Lifted:
        """``D_δ f^*``: time-major ``(T, B, k, N)`` -> lifted (may scale ``E`` in place)."""
        scale = self.cell.offset_scale
        if scale is not None:
            return [E if scale == 1.0 else E.mul_(scale)]
        diag = self._fused_offset()
        if diag is not None:
            return [E.mul_(diag[:, :, None])]
        if self._offset_vjp is None:
            self._offset_vjp = vjp(self._offset_step, *self._zero_offsets())[1]
        g = self._offset_vjp
        return list(vmap(g, in_dims=2, out_dims=2)(E))

    def _lifted_tm(self, U: torch.Tensor) -> Lifted:
        """Lifted ``(k, B, T, Σ n_g)`` -> time-major list per group (fresh storage)."""
        return [to_time_major(u) for u in U.split(self.group_sizes, dim=-1)]

    def offset_fwd(self, U: torch.Tensor) -> torch.Tensor:
        """``D_δ f``: lifted ``(k, B, T, Σ n_g)`` -> ``(k, B, T, N)``."""
        return from_time_major(self.offset_fwd_tm(self._lifted_tm(U)))

    def offset_adj(self, E: torch.Tensor) -> torch.Tensor:
        """``D_δ f^*``: ``(k, B, T, N)`` -> lifted ``(k, B, T, Σ n_g)``."""
        parts = self.offset_adj_tm(to_time_major(E))
        return torch.cat([from_time_major(p) for p in parts], dim=-1)

    # ------------------------------------------------------------------ D_θ f
    def _theta_step(self, theta: torch.Tensor) -> torch.Tensor:
        return self.cell.step(self.space.merged(theta), self.prev_tm, self.inputs_tm)

    def theta_fwd_tm(self, V: torch.Tensor) -> torch.Tensor:
        """``D_θ f``: ``(k, P)`` -> time-major ``(T, B, k, N)`` in fresh storage."""
        if self.weight_based:
            return self.offset_fwd_tm(self.site_fwd_tm(V))
        theta = self.space.vector()
        return vmap(lambda v: jvp(self._theta_step, (theta,), (v,))[1], out_dims=2)(V).contiguous()

    def theta_adj_tm(self, E: torch.Tensor) -> torch.Tensor:
        """``D_θ f^*``: time-major ``(T, B, k, N)`` -> ``(k, P)`` (may overwrite ``E``)."""
        if self.weight_based:
            return self.site_adj_tm(self.offset_adj_tm(E))
        if self._theta_vjp is None:
            self._theta_vjp = vjp(self._theta_step, self.space.vector())[1]
        g = self._theta_vjp
        return vmap(lambda e: g(e)[0], in_dims=2)(E)

    def theta_fwd(self, V: torch.Tensor) -> torch.Tensor:
        """``D_θ f``: ``(k, P)`` -> ``(k, B, T, N)``."""
        return from_time_major(self.theta_fwd_tm(V))

    def theta_adj(self, E: torch.Tensor) -> torch.Tensor:
        """``D_θ f^*``: ``(k, B, T, N)`` -> ``(k, P)``."""
        return self.theta_adj_tm(to_time_major(E))

    # ------------------------------------------------------------------ compositions
    def _batch_tile(
        self, k: int, steps: int = 1, budget: int = TILE_BYTES, min_rows: int = TILE_MIN_ROWS
    ) -> int:
        """Batch rows per tile so that a tile's ``(steps, rows, k, N)`` block fits ``budget``.

        Never fewer than ``min_rows`` (nor more than ``B``): smaller GEMMs lose more than the
        cache gains. The step kernels keep one step's block (``steps=1``); the fused Fisher
        product keeps a tile's whole ``T`` steps.
        """
        _, B, N = self.prev_tm.shape
        rows = budget // (steps * k * N * self.prev_tm.element_size())
        return max(1, min(B, max(rows, min_rows)))

    def _fused_jacobian_fwd(self, V: torch.Tensor) -> torch.Tensor:
        """Apply ``J`` tile by tile in the batch (:meth:`_fwd_tile` on each tile of ``Y``)."""
        T, B, N = self.prev_tm.shape
        k = V.shape[0]
        Wg = self._site_weights(V)[0]
        Y = Wg.new_empty(T, B, k, N)
        tile = self._batch_tile(k)
        buf = Wg.new_empty(tile * k, N)
        for b0 in range(0, B, tile):
            rows = slice(b0, min(B, b0 + tile))
            self._fwd_tile(Wg, rows, Y[:, rows], buf)
        return Y

    def _fused_jacobian_adj(self, E: torch.Tensor) -> torch.Tensor:
        """Apply ``J^*`` tile by tile, backward in time (:meth:`_adj_tile`; overwrites ``E``)."""
        _, B, k, N = E.shape
        G = E.new_zeros(k * N, self.site_mats[self.groups[0]].shape[1])
        tile = self._batch_tile(k)
        buf = E.new_empty(tile * k, N)
        for b0 in range(0, B, tile):
            rows = slice(b0, min(B, b0 + tile))
            self._adj_tile(E[:, rows], rows, G, buf)
        return self._site_grads([self._offset_scaled(G).view(k, N, -1)])

    def _fused_fisher(self, V: torch.Tensor) -> torch.Tensor:
        """Apply ``J^* J`` tile by tile, each tile forward through all T steps and straight back.

        The tile's ``(T, rows, k, N)`` block is then read back from cache instead of from memory
        (the whole ``(T, B, k, N)`` block of two separate passes outgrows the caches as ``T·B``
        grows).
        """
        T, B, N = self.prev_tm.shape
        k = V.shape[0]
        Wg = self._site_weights(V)[0]
        G = Wg.new_zeros(k * N, self.site_mats[self.groups[0]].shape[1])
        tile = self._batch_tile(k, T, FISHER_TILE_BYTES, FISHER_TILE_MIN_ROWS)
        Y = Wg.new_empty(T * tile * k * N)
        buf = Wg.new_empty(tile * k, N)
        for b0 in range(0, B, tile):
            rows = slice(b0, min(B, b0 + tile))
            # a contiguous prefix of the buffer, so the all-steps GEMMs need no copies
            Yt = Y[: T * (rows.stop - rows.start) * k * N].view(T, -1, k, N)
            self._fwd_tile(Wg, rows, Yt, buf)
            self._adj_tile(Yt, rows, G, buf)
        return self._site_grads([self._offset_scaled(G).view(k, N, -1)])

    def fisher_probe_bytes(self) -> int | None:
        """Bytes one probe keeps alive in :meth:`fisher` (``None``: not fused, state-sized).

        The fused product holds one tile's ``(T, rows, N)`` block and its ``(N, m)`` gradient
        per probe, independent of the batch size ``B``: probe blocks need not be split by the
        state-sized budget of the other kernels (splitting only shrinks the GEMMs).
        """
        if not self.fused:
            return None
        T, B, N = self.prev_tm.shape
        m = self.site_mats[self.groups[0]].shape[1]
        rows = min(B, FISHER_TILE_MIN_ROWS)
        return (T * rows * N + 3 * N * m) * self.prev_tm.element_size()

    def _fwd_tile(self, Wg: torch.Tensor, rows: slice, Y: torch.Tensor, buf: torch.Tensor) -> None:
        """Apply ``J`` on the batch rows ``rows`` into ``Y`` ``(T, rows, k, N)``.

        The site GEMM of all ``T`` steps at once (one large GEMM instead of ``T`` small ones),
        ``D_δ f``, then the steps of ``P`` while the tile is in cache.
        """
        S, jac = self.site_mats[self.groups[0]], self.prop.jac
        assert jac is not None
        T, r, k, N = Y.shape
        B = self.prev_tm.shape[1]
        torch.matmul(S.view(T, B, -1)[:, rows], Wg.T, out=Y.view(T, r, k * N))
        if isinstance(jac.offset, torch.Tensor):
            Y.mul_(jac.offset[:, rows, None])
        elif jac.offset != 1.0:
            Y.mul_(jac.offset)
        self.prop.closed_forward_(Y, rows, buf)

    def _adj_tile(self, E: torch.Tensor, rows: slice, G: torch.Tensor, buf: torch.Tensor) -> None:
        """Apply ``J^*`` to the rows ``rows`` of ``E`` ``(T, rows, k, N)``, backward in time.

        The steps of ``P^*``, then ``D_δ f^*`` on all steps at once (in place: no step feeds
        another any more) and the site GEMM of all steps accumulated into ``G`` ``(k·N, m)``
        (overwrites ``E``; a scalar offset is applied to ``G`` afterwards).
        """
        S, jac = self.site_mats[self.groups[0]], self.prop.jac
        assert jac is not None
        T, r, k, N = E.shape
        B = self.prev_tm.shape[1]
        self.prop.closed_adjoint_(E, rows, buf)
        if isinstance(jac.offset, torch.Tensor):
            E.mul_(jac.offset[:, rows, None])
        G.addmm_(E.reshape(T * r, k * N).T, S.view(T, B, -1)[:, rows].reshape(T * r, -1))

    def _offset_scaled(self, G: torch.Tensor) -> torch.Tensor:
        offset = self.prop.jac.offset if self.prop.jac is not None else 1.0
        if not isinstance(offset, torch.Tensor) and offset != 1.0:
            G.mul_(offset)
        return G

    def jacobian_fwd_tm(self, V: torch.Tensor) -> torch.Tensor:
        """``J = P D_θ f``: ``(k, P)`` -> time-major ``(T, B, k, N)``."""
        if self.fused:
            return self._fused_jacobian_fwd(V)
        return self.prop.forward_(self.theta_fwd_tm(V))

    def jacobian_adj_tm(self, E: torch.Tensor) -> torch.Tensor:
        """``J^* = D_θ f^* P^*``: time-major ``(T, B, k, N)`` -> ``(k, P)`` (overwrites ``E``)."""
        if self.fused:
            return self._fused_jacobian_adj(E)
        return self.theta_adj_tm(self.prop.adjoint_(E))

    def jacobian_fwd(self, V: torch.Tensor) -> torch.Tensor:
        """``J = P D_θ f``."""
        return from_time_major(self.jacobian_fwd_tm(V))

    def jacobian_adj(self, E: torch.Tensor) -> torch.Tensor:
        """``J^* = D_θ f^* P^*``."""
        return self.jacobian_adj_tm(to_time_major(E))

    def ntk(self, E: torch.Tensor) -> torch.Tensor:
        """``NTK_S = J J^*`` (self-adjoint)."""
        return self.jacobian_fwd(self.jacobian_adj(E))

    def fisher(self, V: torch.Tensor) -> torch.Tensor:
        """``F = J^* J`` (self-adjoint)."""
        if self.fused:
            return self._fused_fisher(V)
        return self.jacobian_adj_tm(self.jacobian_fwd_tm(V))
