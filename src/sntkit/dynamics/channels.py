"""The bifurcation channel of the sNTK (paper 000 §3, App. A.1).

**Bifurcation direction.** Near a codimension-one bifurcation let ``λ_c`` be the critical
eigenvalue of ``A = D_h F(h*, θ)`` at the critical fixed point ``h*`` (``F(h*, θ) = h*``), with
right/left eigenvectors ``v``, ``u`` (``u^T v = 1``). First-order perturbation theory gives

    dλ_c = u^T (dA) v / (u^T v),
    dA = D²_{hθ}F [dθ] + D²_{hh}F [dh*],     dh* = (I − A)^{-1} D_θF dθ,

the second term of ``dA`` being the motion of the fixed point itself (implicit function
theorem). ``∇_θ λ_c`` is computed exactly by reverse-mode autodiff of
``θ ↦ u^T D_hF(h* + (I − A)^{-1}(F(h*, θ) − F(h*, θ_0)), θ) v`` at ``θ_0``, whose derivative is
the formula above. For a real ``λ_c`` the gradient is real; for a complex pair ``|λ_c|`` is
differentiated (``d|λ| = Re(λ̄ dλ)/|λ|``), the quantity that crosses 1 at Neimark–Sacker. The
*bifurcation direction* is ``e_g = ∇_θ λ_c / ‖∇_θ λ_c‖`` over the trained parameters.

**Decomposition** (App. A.1, with the local isometry ``θ ↦ (g, R)``, ``g`` along ``e_g``): with
``J = D_θ h`` the parameter-to-state Jacobian of :func:`sntkit.ntk.state_ntk`,

    sNTK = J J^T = sNTK_g + sNTK_R,   sNTK_g = (J e_g)(J e_g)^T (rank one),
    sNTK_R = J (I − e_g e_g^T) J^T,

and the *dominance ratio* ``‖sNTK_g‖₂ / ‖sNTK‖₂ = ‖J e_g‖² / λ_max(sNTK)`` (``λ_max`` by the block
Krylov :func:`sntkit.linalg.eigsh`) measures how much of the kernel the bifurcation channel
carries; it tends to 1 as ``θ`` approaches the bifurcation (§3). The cosine between ``e_g`` and
the top eigenvector of the state-space Fisher ``J^T J`` says whether gradient descent's stiffest
direction is the bifurcation direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import jacfwd, jacrev

from sntkit.dynamics.fixed_points import constant_input
from sntkit.dynamics.tolerances import IMAG_TOL
from sntkit.linalg import eigsh
from sntkit.ntk.state_ntk import StateNTK
from sntkit.operators import FunctionOperator, Operator


def eigenvalue_gradient(
    ntk: StateNTK,
    point: torch.Tensor,
    target: complex = 1.0,
    *,
    x: torch.Tensor | None = None,
    newton_steps: int = 20,
) -> tuple[torch.Tensor, complex]:
    """``∇_θ λ_c`` over the NTK's trained parameters, ``(P,)`` float64, and ``λ_c`` (module).

    ``point`` ``(N,)`` is (near) the critical fixed point at the NTK's parameters; it is
    polished by ``newton_steps`` Newton steps. ``λ_c`` is the eigenvalue of ``D_h F`` there
    closest to ``target``; for a complex ``λ_c`` the gradient is that of ``|λ_c|``. ``x`` is the
    constant input of the fixed point (default none / zero).
    """
    cell = ntk.cell
    N = cell.n_state
    if not isinstance(point, torch.Tensor) or point.shape != (N,):
        raise ValueError(
            f"point must be one state of shape ({N},), got {getattr(point, 'shape', point)}"
        )
    base = {k: v.detach().to(torch.float64) for k, v in ntk.params.items()}
    theta0 = ntk.flatten(base)
    xi = constant_input(cell, x, theta0.device)

    def F(h: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return cell.step(base | ntk.unflatten(theta), h, xi)

    h = point.detach().to(torch.float64).clone()
    eye = torch.eye(N, dtype=torch.float64, device=h.device)
    for _ in range(newton_steps):
        A = jacfwd(F)(h, theta0)
        h = h - torch.linalg.solve(A - eye, F(h, theta0) - h)
    A = jacfwd(F)(h, theta0)
    evals, right = torch.linalg.eig(A)
    c = int((evals - complex(target)).abs().argmin())
    lam = complex(evals[c])
    v = right[:, c]
    u = torch.linalg.inv(right)[c]  # the left eigenvector with u^T v = 1
    M = torch.linalg.inv(eye - A)
    is_complex = abs(lam.imag) > IMAG_TOL

    def lam_of(theta: torch.Tensor) -> torch.Tensor:
        h_theta = h + M @ (F(h, theta) - F(h, theta0))  # dh*/dθ = (I − A)^{-1} D_θF at θ_0
        val = u @ jacfwd(F)(h_theta, theta).to(torch.complex128) @ v
        return val.abs() if is_complex else val.real

    return jacrev(lam_of)(theta0), lam


@dataclass(frozen=True)
class ChannelDecomposition:
    """``sNTK = sNTK_g + sNTK_R`` at a bifurcation (module docstring).

    ``channel = J e_g`` (states ``(B, T, N)``) defines the rank-one ``sNTK_g``
    (:attr:`sntk_g`); ``residual`` is the operator ``sNTK_R``; ``top_fisher_vector`` the unit
    top eigenvector of ``J^T J`` (``(P,)``, sign arbitrary).
    """

    e_g: torch.Tensor
    critical_eigenvalue: complex
    channel: torch.Tensor
    sntk_g_norm: float
    sntk_norm: float
    dominance_ratio: float
    fisher_cosine: float
    top_fisher_vector: torch.Tensor
    residual: Operator

    @property
    def sntk_g(self) -> Operator:
        """``sNTK_g = (J e_g)(J e_g)^T`` as a (self-adjoint, rank-one) operator on states."""
        w = self.channel

        def apply(Y: torch.Tensor) -> torch.Tensor:
            coef = (Y * w).flatten(1).sum(1)
            return coef.reshape(-1, *[1] * w.ndim) * w

        return FunctionOperator(
            apply, None, w.shape, w.shape, dtype=w.dtype, device=w.device, batched=True,
            name="sNTK_g",
        )  # fmt: skip

    def to_dict(self) -> dict:
        """Return the decomposition's numbers as a JSON-ready dict."""
        return {
            "critical_eigenvalue": [self.critical_eigenvalue.real, self.critical_eigenvalue.imag],
            "sntk_g_norm": self.sntk_g_norm,
            "sntk_norm": self.sntk_norm,
            "dominance_ratio": self.dominance_ratio,
            "fisher_cosine": self.fisher_cosine,
        }


def channel_decomposition(
    ntk: StateNTK,
    point: torch.Tensor,
    target: complex = 1.0,
    *,
    x: torch.Tensor | None = None,
    seed: int = 0,
    tol: float = 1e-8,
) -> ChannelDecomposition:
    """Split ``ntk``'s sNTK at a bifurcation with critical fixed point ``point`` (module).

    ``target`` selects the critical eigenvalue (the one nearest it: ``1`` for fold-type,
    ``−1`` for period doubling, a point on the unit circle for Neimark–Sacker). ``λ_max(sNTK)``
    comes from :func:`sntkit.linalg.eigsh` (relative residual ``tol``, seed ``seed``).
    """
    grad, lam = eigenvalue_gradient(ntk, point, target, x=x)
    norm = float(grad.norm())
    if not math.isfinite(norm) or norm == 0:
        raise ValueError(
            "the critical eigenvalue does not depend on the trained parameters (or its gradient "
            "is not finite); train other parameters or pick another critical point"
        )
    J = ntk.jacobian
    e_g = (grad / norm).to(dtype=J.dtype, device=J.device)
    w = J.matvec(e_g)
    g_norm = float(w.double().square().sum())
    values, vectors = eigsh(ntk.spectral_operator, 1, seed=seed, tol=tol)
    if ntk.spectral_operator is ntk.fisher:
        v1 = vectors[0]
    else:  # map the top sNTK eigenvector to parameter space: v = J^T u / ‖J^T u‖
        v1 = J.rmatvec(vectors[0])
        v1 = v1 / v1.norm()
    top = float(values[0])
    return ChannelDecomposition(
        e_g=e_g,
        critical_eigenvalue=lam,
        channel=w,
        sntk_g_norm=g_norm,
        sntk_norm=top,
        dominance_ratio=g_norm / top,
        fisher_cosine=float((e_g.double() @ v1.double()).abs()),
        top_fisher_vector=v1,
        residual=J @ _complement_projector(e_g) @ J.T,
    )


def _complement_projector(e: torch.Tensor) -> Operator:
    """``I − e e^T`` on ``(P,)`` (matrix-free: no ``P × P`` matrix)."""

    def apply(V: torch.Tensor) -> torch.Tensor:
        return V - (V @ e)[:, None] * e

    P = e.shape[0]
    return FunctionOperator(
        apply, None, P, P, dtype=e.dtype, device=e.device, batched=True, name="I − e_g e_g^T"
    )
