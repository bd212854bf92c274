"""Batched Lanczos and stochastic Lanczos quadrature (SLQ) for ``tr f(A)``.

For a symmetric ``A`` and probes ``z_i``, ``m`` Lanczos steps started at ``z_i/‖z_i‖`` give a
tridiagonal ``T_i = U_i Θ_i U_i^T``, and ``z_i^T f(A) z_i ≈ ‖z_i‖² Σ_j (U_i)_{0j}² f(θ_{ij})``
(Gauss quadrature; Ubaru, Chen & Saad 2017). All probes run together — each step is one
``op.matmat`` — with full reorthogonalization per probe.
"""

from __future__ import annotations

import torch

from sntkit.operators.base import Operator


def lanczos_quadrature(
    op: Operator, Z: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``θ`` and weights ``‖z‖² u_0²`` of ``(k, m)`` for probes ``Z`` of shape ``(k, n)``."""
    k, n = Z.shape
    m = min(steps, n)
    norms = torch.linalg.vector_norm(Z, dim=1, keepdim=True)
    V = torch.zeros(m, k, n, dtype=Z.dtype, device=Z.device)
    V[0] = Z / norms
    alpha = torch.zeros(k, m, dtype=Z.dtype, device=Z.device)
    beta = torch.zeros(k, m, dtype=Z.dtype, device=Z.device)
    tiny = 1e3 * torch.finfo(Z.dtype).eps
    for j in range(m):
        w = op.matmat(V[j].reshape(k, *op.shape_in)).reshape(k, n)
        alpha[:, j] = (w * V[j]).sum(1)
        if j + 1 == m:
            break
        # full reorthogonalization against every previous Lanczos vector of the same probe
        for _ in range(2):
            w = w - torch.einsum(
                "jk,jkn->kn", torch.einsum("kn,jkn->jk", w, V[: j + 1]), V[: j + 1]
            )
        b = torch.linalg.vector_norm(w, dim=1)
        alive = b > tiny * alpha[:, : j + 1].abs().amax(1).clamp_min(1e-300)
        beta[:, j] = torch.where(alive, b, torch.zeros_like(b))
        V[j + 1] = torch.where(
            alive[:, None], w / b.clamp_min(1e-300)[:, None], torch.zeros_like(w)
        )
    T = (
        torch.diag_embed(alpha)
        + torch.diag_embed(beta[:, :-1], 1)
        + torch.diag_embed(beta[:, :-1], -1)
    )
    theta, U = torch.linalg.eigh(T.double())
    weights = U[:, 0, :].square() * norms.double().square()
    return theta, weights
