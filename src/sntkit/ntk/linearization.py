"""Kernels of the linearized recurrent model, acting on batches of probes.

A :class:`CellLinearization` holds one trajectory (its ``B·T`` pairs) and applies, to probes
``(k, B, T, ·)`` on the state side and ``(k, P)`` on the parameter side:

* ``P``, ``P^*`` (:class:`~sntkit.ntk.propagator.PropagatorKernel`);
* ``D_θ f`` and its adjoint, time-parallel over all pairs. For weight-based cells whose trained
  parameters all enter as weights, ``D_θ f = D_δ f · S`` where the *site map*
  ``S δθ = (Σ_{uses in g} site_u δW_u[rows]^T)_g`` is a handful of GEMMs over the ``B·T`` pairs
  (paper 004 Theorem 1: ``S S^* = ⊕_g V_g V_g^T ⊗ I_{n_g}``) and ``D_δ f`` is the elementwise /
  gate part of the step (a cheap JVP). Otherwise a JVP/VJP of the batched step in ``θ``.
* ``D_δ f`` and its adjoint (the Jacobian of the step in its pre-activation offsets).
"""

from __future__ import annotations

import torch
from torch.func import jvp, vjp, vmap

from sntkit.models.cell import Cell
from sntkit.ntk.core import weight_sites
from sntkit.ntk.parameters import ParameterSpace
from sntkit.ntk.propagator import PropagatorKernel
from sntkit.ntk.trajectory import Trajectory


class CellLinearization:
    """Probe-axis-last kernels of ``P``, ``D_θ f``, ``D_δ f`` and the site map (see module)."""

    def __init__(self, cell: Cell, space: ParameterSpace, traj: Trajectory, path: str) -> None:
        self.cell, self.space = cell, space
        self.params = space.params
        self.prev = traj.prev  # (B, T, N)
        self.inputs = traj.inputs
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
        self.site_mats = {g: V.reshape(-1, V.shape[-1]) for g, V in ws.groups.items()}

    def site_fwd(self, V: torch.Tensor) -> torch.Tensor:
        """``S``: ``(k, P)`` -> lifted ``(k, B, T, Σ n_g)``: one GEMM ``V_g W_g^T`` per group."""
        B, T = self.prev.shape[:2]
        k = V.shape[0]
        d = self.space.unflatten(V)  # name -> (k, *shape)
        parts = []
        for g in self.groups:
            blocks = [d[u.param][:, u.rows] for u in self.ws.uses[g]]
            Wg = torch.cat([w if w.ndim == 3 else w[..., None] for w in blocks], dim=-1)
            parts.append(torch.matmul(self.site_mats[g], Wg.transpose(1, 2)))  # (k, BT, n_g)
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return out.reshape(k, B, T, self.lifted_size)

    def site_adj(self, U: torch.Tensor) -> torch.Tensor:
        """``S^*``: lifted ``(k, B, T, Σ n_g)`` -> ``(k, P)``: one GEMM ``U_g^T V_g`` per group."""
        k, B, T, _ = U.shape
        U = U.reshape(k, B * T, self.lifted_size)
        grads = {n: U.new_zeros(k, *self.space.shapes[n]) for n in self.space.names}
        for g, Ug in zip(self.groups, U.split(self.group_sizes, dim=-1), strict=True):
            G = torch.matmul(Ug.transpose(1, 2), self.site_mats[g])  # (k, n_g, m_g)
            for u, Gu in zip(self.ws.uses[g], G.split(self.ws.widths[g], dim=-1), strict=True):
                grads[u.param][:, u.rows] += Gu if grads[u.param].ndim == 3 else Gu[..., 0]
        return self.space.flatten_batch(grads)

    # ------------------------------------------------------------------ D_δ f
    def _offset_step(self, offsets: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(self.groups, offsets.split(self.group_sizes, dim=-1), strict=True))
        return self.cell.step_lifted(self.params, self.prev, self.inputs, parts)[0]

    def offset_fwd(self, U: torch.Tensor) -> torch.Tensor:
        """``D_δ f``: lifted ``(k, B, T, Σ n_g)`` -> ``(k, B, T, N)``."""
        if self.cell.offset_scale is not None:
            return U if self.cell.offset_scale == 1.0 else self.cell.offset_scale * U
        zero = self.prev.new_zeros(*self.prev.shape[:2], self.lifted_size)
        return vmap(lambda u: jvp(self._offset_step, (zero,), (u,))[1])(U)

    def offset_adj(self, E: torch.Tensor) -> torch.Tensor:
        """``D_δ f^*``: ``(k, B, T, N)`` -> lifted ``(k, B, T, Σ n_g)``."""
        if self.cell.offset_scale is not None:
            return self.offset_fwd(E)
        if self._offset_vjp is None:
            zero = self.prev.new_zeros(*self.prev.shape[:2], self.lifted_size)
            self._offset_vjp = vjp(self._offset_step, zero)[1]
        g = self._offset_vjp
        return vmap(lambda e: g(e)[0])(E)

    # ------------------------------------------------------------------ D_θ f
    def _theta_step(self, theta: torch.Tensor) -> torch.Tensor:
        return self.cell.step(self.space.merged(theta), self.prev, self.inputs)

    def theta_fwd(self, V: torch.Tensor) -> torch.Tensor:
        """``D_θ f``: ``(k, P)`` -> ``(k, B, T, N)``."""
        if self.weight_based:
            return self.offset_fwd(self.site_fwd(V))
        theta = self.space.vector()
        return vmap(lambda v: jvp(self._theta_step, (theta,), (v,))[1])(V)

    def theta_adj(self, E: torch.Tensor) -> torch.Tensor:
        """``D_θ f^*``: ``(k, B, T, N)`` -> ``(k, P)``."""
        if self.weight_based:
            return self.site_adj(self.offset_adj(E))
        if self._theta_vjp is None:
            self._theta_vjp = vjp(self._theta_step, self.space.vector())[1]
        g = self._theta_vjp
        return vmap(lambda e: g(e)[0])(E)

    # ------------------------------------------------------------------ compositions
    def jacobian_fwd(self, V: torch.Tensor) -> torch.Tensor:
        """``J = P D_θ f``."""
        return self.prop.forward(self.theta_fwd(V))

    def jacobian_adj(self, E: torch.Tensor) -> torch.Tensor:
        """``J^* = D_θ f^* P^*``."""
        return self.theta_adj(self.prop.adjoint(E))

    def ntk(self, E: torch.Tensor) -> torch.Tensor:
        """``NTK_S = J J^*`` (self-adjoint)."""
        return self.jacobian_fwd(self.jacobian_adj(E))

    def fisher(self, V: torch.Tensor) -> torch.Tensor:
        """``F = J^* J`` (self-adjoint)."""
        return self.jacobian_adj(self.jacobian_fwd(V))
