"""Dense float64 references built with torch.func.jacrev on the unrolled trajectory."""

import torch
from torch.func import jacrev

from sntkit.models.cell import rollout


def dense_jacobian(ntk):
    """``J = d vec(h_1..h_T) / d θ`` of shape ``(B·T·N, P)`` by reverse-mode AD."""
    sp = ntk.space
    h0, x = ntk.h0, ntk.inputs
    T = ntk.state_shape[1]

    def traj(theta):
        return rollout(ntk.cell, sp.merged(theta), h0, x, None if x is not None else T)

    return jacrev(traj)(sp.vector()).reshape(-1, sp.size)


def dense_step_jacobians(ntk):
    """``A_t = ∂f/∂h`` at every pair as ``(B, T, N, N)``."""
    prev, x = ntk.traj.prev, ntk.inputs
    B, T, N = prev.shape
    out = torch.zeros(B, T, N, N, dtype=prev.dtype)
    for b in range(B):
        for t in range(T):
            xi = None if x is None else x[b, t]
            out[b, t] = jacrev(lambda h, xi=xi: ntk.cell.step(ntk.params, h, xi))(prev[b, t])
    return out


def dense_propagator(ntk):
    """``P = (I − D_h f T↓)^{-1}`` as a dense ``(BTN, BTN)`` matrix."""
    A = dense_step_jacobians(ntk)
    B, T, N, _ = A.shape
    M = torch.eye(B * T * N, dtype=A.dtype).reshape(B, T, N, B, T, N)
    for b in range(B):
        for t in range(1, T):
            M[b, t, :, b, t - 1, :] -= A[b, t]
    return torch.linalg.inv(M.reshape(B * T * N, -1))


def dense_parameter_jacobian(ntk):
    """``D_θ f`` at all pairs as ``(B·T·N, P)``."""
    sp = ntk.space
    return jacrev(lambda th: ntk.cell.step(sp.merged(th), ntk.traj.prev, ntk.inputs))(
        sp.vector()
    ).reshape(-1, sp.size)
