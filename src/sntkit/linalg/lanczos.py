"""Batched Lanczos and stochastic Lanczos quadrature (SLQ) for ``z^T f(A) z``.

For a symmetric ``A`` and a probe ``z``, ``m`` Lanczos steps from ``z/‖z‖`` give a tridiagonal
``T = U Θ U^T`` and the ``m``-point Gauss quadrature
``z^T f(A) z ≈ ‖z‖² Σ_j U_{0j}² f(θ_j)``, exact for polynomials of degree ``< 2m`` (Golub &
Meurant; Ubaru, Chen & Saad 2017). Averaged over random-sign probes this estimates
``tr f(A)``. All probes run together — each step is one ``op.matmat`` on the whole block — with
full reorthogonalization of every probe's Lanczos vectors (two classical Gram–Schmidt passes),
so no ghost Ritz values distort the quadrature in float32.
"""

from __future__ import annotations

import torch

from sntkit.operators.base import Operator
from sntkit.operators.validation import require_symmetric


def lanczos_quadrature(
    op: Operator, Z: torch.Tensor, steps: int, where: str = "lanczos_quadrature"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``θ`` and weights ``‖z‖² U_{0j}²``, each ``(k, m)`` float64, for probes ``Z``.

    ``Z`` is ``(k, n)`` (flattened probes); ``m = min(steps, n)``. A probe whose Krylov space
    is exhausted early (an invariant subspace) gets zero weights for its remaining nodes. The
    symmetry of ``op`` is checked on the first block at no extra cost.
    """
    k, n = Z.shape
    m = min(steps, n)
    norms = torch.linalg.vector_norm(Z, dim=1, keepdim=True)
    V = torch.zeros(m, k, n, dtype=Z.dtype, device=Z.device)
    V[0] = Z / norms.clamp_min(torch.finfo(Z.dtype).tiny)
    alpha = torch.zeros(k, m, dtype=Z.dtype, device=Z.device)
    beta = torch.zeros(k, m, dtype=Z.dtype, device=Z.device)
    tiny = 1e3 * torch.finfo(Z.dtype).eps
    for j in range(m):
        w = op.matmat(V[j].reshape(k, *op.shape_in)).reshape(k, n)
        if j == 0:
            require_symmetric(V[0] @ w.T, op.dtype, "op", where)
        alpha[:, j] = (w * V[j]).sum(1)
        if j + 1 == m:
            break
        for _ in range(2):  # full reorthogonalization against this probe's Lanczos vectors
            coef = torch.einsum("kn,jkn->jk", w, V[: j + 1])
            w = w - torch.einsum("jk,jkn->kn", coef, V[: j + 1])
        b = torch.linalg.vector_norm(w, dim=1)
        alive = b > tiny * alpha[:, : j + 1].abs().amax(1).clamp_min(torch.finfo(Z.dtype).tiny)
        beta[:, j] = torch.where(alive, b, torch.zeros_like(b))
        V[j + 1] = torch.where(
            alive[:, None], w / b.clamp_min(torch.finfo(Z.dtype).tiny)[:, None], 0
        )
    T = (
        torch.diag_embed(alpha)
        + torch.diag_embed(beta[:, :-1], 1)
        + torch.diag_embed(beta[:, :-1], -1)
    )
    theta, U = torch.linalg.eigh(T.double())
    weights = U[:, 0, :].square() * norms.double().square()
    return theta, weights
