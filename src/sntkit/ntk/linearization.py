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

The compositions ``J``, ``J^*``, ``NTK_S = J J^*`` and ``F = J^* J`` chain time-major kernels
(``(T, B, k, ·)``, see :mod:`sntkit.ntk.propagator`) that update fresh buffers in place, so the
only layout changes are at the state-side boundary (``(k, B, T, N)`` in and out) and the
parameter side needs none: ``F`` never transposes a state-sized tensor.
"""

from __future__ import annotations

import torch
from torch.func import jvp, vjp, vmap

from sntkit.models.cell import Cell
from sntkit.ntk.core import weight_sites
from sntkit.ntk.parameters import ParameterSpace
from sntkit.ntk.propagator import PropagatorKernel, from_time_major, to_time_major
from sntkit.ntk.trajectory import Trajectory

Lifted = list[torch.Tensor]  # time-major (T, B, k, n_g) per pre-activation group


class CellLinearization:
    """Kernels of ``P``, ``D_θ f``, ``D_δ f`` and the site map (see module docstring)."""

    def __init__(self, cell: Cell, space: ParameterSpace, traj: Trajectory, path: str) -> None:
        self.cell, self.space = cell, space
        self.params = space.params
        self.prev = traj.prev  # (B, T, N)
        self.inputs = traj.inputs
        # time-major primal copies with their own storage (see PropagatorKernel)
        self.prev_tm = traj.prev.transpose(0, 1).contiguous()
        self.inputs_tm = None if traj.inputs is None else traj.inputs.transpose(0, 1).contiguous()
        self.prop = PropagatorKernel(cell, self.params, self.prev, self.inputs, path)
        self._theta_vjp = None
        self._offset_vjp = None
        self.weight_based = cell.site_uses is not None and set(space.names) <= {
            u.param for u in cell.site_uses
        }
        if self.weight_based:
            self._init_sites(traj)

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

    def site_fwd_tm(self, V: torch.Tensor) -> Lifted:
        """``S``: ``(k, P)`` -> lifted, one GEMM ``V_g [δW_g]^T`` per group over pairs × probes."""
        T, B = self.prev_tm.shape[:2]
        k = V.shape[0]
        d = self.space.unflatten(V)  # name -> (k, *shape)
        out = []
        for g, n in zip(self.groups, self.group_sizes, strict=True):
            blocks = [d[u.param][:, u.rows] for u in self.ws.uses[g]]
            Wg = torch.cat([w if w.ndim == 3 else w[..., None] for w in blocks], dim=-1)
            # (T·B, m) @ (m, k·n): rows are pairs, columns probe-major then unit
            out.append((self.site_mats[g] @ Wg.reshape(k * n, -1).T).view(T, B, k, n))
        return out

    def site_adj_tm(self, U: Lifted) -> torch.Tensor:
        """``S^*``: lifted -> ``(k, P)``, one GEMM ``[U_g]^T V_g`` per group."""
        T, B, k, _ = U[0].shape
        out = U[0].new_zeros(k, self.space.size)
        grads = {
            name: out[:, a:b].view(k, *self.space.shapes[name])
            for name, (a, b) in self._param_slices.items()
        }
        for g, Ug, n in zip(self.groups, U, self.group_sizes, strict=True):
            G = (Ug.reshape(T * B, k * n).T @ self.site_mats[g]).view(k, n, -1)  # (k, n_g, m_g)
            for u, Gu in zip(self.ws.uses[g], G.split(self.ws.widths[g], dim=-1), strict=True):
                target = grads[u.param][:, u.rows]
                target += Gu if target.ndim == 3 else Gu[..., 0]
        return out

    # ------------------------------------------------------------------ D_δ f
    def _offset_step(self, *offsets: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(self.groups, offsets, strict=True))
        return self.cell.step_lifted(self.params, self.prev_tm, self.inputs_tm, parts)[0]

    def _zero_offsets(self) -> tuple[torch.Tensor, ...]:
        T, B = self.prev_tm.shape[:2]
        return tuple(self.prev_tm.new_zeros(T, B, n) for n in self.group_sizes)

    def offset_fwd_tm(self, U: Lifted) -> torch.Tensor:
        """``D_δ f``: lifted -> time-major ``(T, B, k, N)`` (may return ``U[0]`` itself)."""
        scale = self.cell.offset_scale
        if scale is not None:
            return U[0] if scale == 1.0 else U[0].mul_(scale)
        zero = self._zero_offsets()
        return vmap(lambda *u: jvp(self._offset_step, zero, u)[1], in_dims=2, out_dims=2)(
            *U
        ).contiguous()

    def offset_adj_tm(self, E: torch.Tensor) -> Lifted:
        """``D_δ f^*``: time-major ``(T, B, k, N)`` -> lifted (may scale ``E`` in place)."""
        scale = self.cell.offset_scale
        if scale is not None:
            return [E if scale == 1.0 else E.mul_(scale)]
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
    def jacobian_fwd_tm(self, V: torch.Tensor) -> torch.Tensor:
        """``J = P D_θ f``: ``(k, P)`` -> time-major ``(T, B, k, N)``."""
        return self.prop.forward_(self.theta_fwd_tm(V))

    def jacobian_adj_tm(self, E: torch.Tensor) -> torch.Tensor:
        """``J^* = D_θ f^* P^*``: time-major ``(T, B, k, N)`` -> ``(k, P)`` (overwrites ``E``)."""
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
        return self.jacobian_adj_tm(self.jacobian_fwd_tm(V))
