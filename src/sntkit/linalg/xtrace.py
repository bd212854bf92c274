"""XTrace (Epperly, Tropp & Webber 2024, SIMAX): exchangeable trace estimation.

With ``k`` test vectors ``Ω = [ω_1..ω_k]`` (``2k`` operator applications), Hutch++ would spend
some vectors on the sketch and the others on the residual. XTrace uses every vector for both:
it averages the ``k`` leave-one-out Hutch++ estimators

    t_i = tr(Q_i^T A Q_i) + ω_i^T (I − Q_i Q_i^T) A (I − Q_i Q_i^T) ω_i,
    Q_i = orth(A Ω_{−i}),

each unbiased, and the spread of the ``t_i`` is its built-in error estimate
``std(t_i)/√k`` (paper, Sec. 2–3). All ``k`` leave-one-out bases come from one QR factorization
``A Ω = Q R`` and one product ``Z = A Q``: with ``s_i`` the ``i``-th column of ``R^{−T}``,
normalized, ``Q_i Q_i^T = Q (I − s_i s_i^T) Q^T`` (paper, Lemma/Sec. 2.2). Writing
``W = Q^T Ω``, ``H = Q^T Z``, ``T = Z^T Ω``, ``c_i = s_i^T w_i`` and ``u_i = w_i − c_i s_i``
(so that ``(I − Q_i Q_i^T) ω_i = ω_i − Q u_i``, and ``ω_i^T A ω_i = w_i^T r_i`` since
``A ω_i = Q r_i``),

    t_i = tr H − s_i^T H s_i + γ_i (w_i^T r_i − t_i^T u_i − u_i^T r_i + u_i^T H u_i),

``O(n k²)`` work after the applications. Test vectors are uniform on the sphere of radius
``√n`` and ``γ_i = (n − k + 1)/‖(I − Q_i Q_i^T) ω_i‖²`` rescales the projected vector to the
norm ``√(n − k + 1)`` of a uniform vector on the ``(n − k + 1)``-dimensional complement of
``Q_i``, which keeps ``t_i`` unbiased and removes the norm fluctuation from the variance (the
paper's "improved" test vectors, its default); ``‖(I − Q_i Q_i^T) ω_i‖² = n − ‖w_i‖² + c_i²``.

The built-in error estimate treats the ``t_i`` as independent; they are positively correlated
(any two share ``k − 2`` sketch vectors), so it is optimistic: in our trials on decaying and
low-rank-plus-noise spectra ``value ± 1.96·stderr`` covered the truth 80–89 % of the time, and
about half the time when ``k`` is below the number of dominant eigenvalues. (A jackknife over
the test vectors, from leave-two-out bases of the same factorization, erred the other way, by
2–3×.) The estimate itself is unbiased; treat its error bar as a lower bound.

Rounds add test vectors: ``Q`` and ``R`` are extended by block Gram–Schmidt (twice), so the
old columns of ``Q`` and of ``Z = A Q`` stay valid (as in the reference ``xtrace_tol``). If
``A Ω`` is numerically rank deficient (``A`` has rank below ``k``), the leave-one-out bases
are not unique; then ``Q`` already spans the range of ``A`` to working precision and the
estimate is ``tr(Q^T A Q)`` plus the (negligible) Hutch++ remainder on the test vectors.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sntkit.linalg.orthogonal import drop_tolerance, orth_against
from sntkit.linalg.probes import flat, sphere
from sntkit.operators.base import Operator


class XTrace:
    """The XTrace state ``(Ω, Q, R, Z = A Q)``, growable by rounds (float64 internally)."""

    def __init__(self, op: Operator, gen: torch.Generator) -> None:
        self.op, self.gen = op, gen
        n = op.size_in
        kw: dict[str, Any] = {"dtype": torch.float64, "device": op.device}
        self.Om = torch.zeros(0, n, **kw)  # test vectors, rows
        self.Q = torch.zeros(0, n, **kw)  # orthonormal rows, A Ω = R^T Q in row form
        self.R = torch.zeros(0, 0, **kw)
        self.Z = torch.zeros(0, n, **kw)  # A Q, rows
        self.rank_deficient = False
        self.num_matvecs = 0
        self.min_round = 4

    def _apply(self, X: torch.Tensor) -> torch.Tensor:
        self.num_matvecs += X.shape[0]
        probes = X.to(self.op.dtype).reshape(X.shape[0], *self.op.shape_in)
        return flat(self.op.matmat(probes)).double()

    def add(self, budget: int) -> None:
        """Add ``budget // 2`` test vectors (two matvecs each: ``A ω`` and ``A q``)."""
        j = budget // 2
        if j == 0:
            return
        Om = sphere(j, self.op.size_in, self.gen).to(self.op.device)
        Y0 = self._apply(Om)
        Y, C = Y0, torch.zeros(j, self.Q.shape[0], dtype=torch.float64, device=Y0.device)
        for _ in range(2):
            D = Y @ self.Q.T
            Y, C = Y - D @ self.Q, C + D
        Qn, Rn = torch.linalg.qr(Y.T)  # Y^T = Qn Rn with Qn (n, min(n, j))
        scale = float(torch.linalg.vector_norm(Y0, dim=1).max())
        tol = drop_tolerance(self.op.dtype) * max(scale, torch.finfo(torch.float64).tiny)
        if self.rank_deficient or Qn.shape[1] < j or bool((Rn.diagonal().abs() <= tol).any()):
            # R is no longer invertible: keep only the new directions that are really there
            self.rank_deficient = True
            Qn = orth_against(Y0, self.Q).T
        else:
            q, k = self.R.shape
            R = torch.zeros(q + j, k + j, dtype=torch.float64, device=Y0.device)
            R[:q, :k], R[:q, k:], R[q:, k:] = self.R, C.T, Rn
            self.R = R
        self.Om = torch.cat([self.Om, Om])
        if Qn.shape[1]:
            self.Q = torch.cat([self.Q, Qn.T])
            self.Z = torch.cat([self.Z, self._apply(Qn.T)])

    def estimate(self) -> tuple[float, float]:
        """Return the exchangeable trace estimate and its standard error."""
        n, k = self.op.size_in, self.Om.shape[0]
        W = self.Q @ self.Om.T  # column i: Q^T ω_i
        H = self.Q @ self.Z.T  # Q^T A Q
        T = self.Z @ self.Om.T  # column i: (A Q)^T ω_i
        if self.rank_deficient:
            ests = torch.trace(H) + _dp(W, H @ W) - _dp(T, W)
        else:
            eye = torch.eye(k, dtype=torch.float64, device=W.device)
            S = torch.linalg.solve_triangular(self.R, eye, upper=True).T  # R^{-T}
            S = S / torch.linalg.vector_norm(S, dim=0, keepdim=True)
            c = _dp(S, W)
            U = W - S * c
            gamma = (n - k + 1) / (n - _dp(W, W) + c.square())
            resid = _dp(W, self.R) - _dp(T, U) - _dp(U, self.R) + _dp(U, H @ U)
            ests = torch.trace(H) - _dp(S, H @ S) + gamma * resid
        return float(ests.mean()), float(ests.std()) / math.sqrt(k)


def _dp(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Column-wise dot products ``(a_i^T b_i)_i``."""
    return (A * B).sum(0)
