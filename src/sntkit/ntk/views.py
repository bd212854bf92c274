"""Reduced views and alignment shared by every global-state NTK (paper 004 §4.2–4.3).

A subclass provides ``operator`` (``NTK_S`` on ``(B, T, N)``), ``jacobian`` (``(P,)`` -> states),
``states``, ``state_shape``, ``num_params`` and, for weight-based models, ``P_core`` and
``sites``. The mixin adds the partial-trace views (eq. 15), their dense matrices from Jacobian
columns, the Corollary-2 alignment and the kernel–target alignment of temporal modes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from sntkit.linalg.estimate import Estimate, jackknife
from sntkit.linalg.norms import frobenius_norm
from sntkit.ntk.core import WeightSites
from sntkit.operators import Operator
from sntkit.operators.validation import check_tensor

STATE_AXES = ("batch", "time", "unit")


class GlobalStateViews(ABC):
    """Views and alignment on top of ``operator``/``jacobian`` (see module docstring)."""

    #: most probes per batched pass through ``operator`` (None: no limit)
    max_probes: int | None = None

    @property
    @abstractmethod
    def operator(self) -> Operator:
        """``NTK_S = J J^*`` on ``(B, T, N)``."""

    @property
    @abstractmethod
    def jacobian(self) -> Operator:
        """``J``: trained parameters ``(P,)`` -> global state ``(B, T, N)``."""

    @property
    @abstractmethod
    def P_core(self) -> Operator:
        """Lifted ``(B, T, Σ n_g)`` -> states, with ``NTK_S = P_core K_core P_core^*``."""

    @property
    @abstractmethod
    def sites(self) -> WeightSites:
        """Weight sites per pre-activation group (Theorem 1)."""

    @property
    @abstractmethod
    def states(self) -> torch.Tensor:
        """The global state ``(B, T, N)``."""

    @property
    @abstractmethod
    def state_shape(self) -> tuple[int, int, int]:
        """``(B, T, N)``."""

    @property
    @abstractmethod
    def num_params(self) -> int:
        """``P``, the number of trained scalar parameters."""

    def view(
        self,
        keep: Sequence[str],
        *,
        method: str = "exact",
        num_samples: int = 64,
        seed: int = 0,
    ) -> Operator:
        """Return the partial mean of ``NTK_S`` over the axes not in ``keep`` (paper 004 eq. 15).

        ``keep`` names axes among ``("batch", "time", "unit")``. Uses the true partial trace;
        ``method="hutchinson"`` estimates it with ``num_samples`` Rademacher probes per
        application (see :class:`sntkit.operators.PartialTrace`).
        """
        keep = tuple(keep)
        unknown = [a for a in keep if a not in STATE_AXES]
        if unknown or not keep:
            raise ValueError(f"keep must name some of {STATE_AXES}, got {keep}")
        traced = [a for a in STATE_AXES if a not in keep]
        if not traced:
            return self.operator
        return self.operator.partial_mean(traced, method=method, num_samples=num_samples, seed=seed)

    def temporal(self, **kwargs: Any) -> Operator:
        """``NTK_S^temp = tr_N(NTK_S)/N`` on ``(B, T)``."""
        return self.view(("batch", "time"), **kwargs)

    def spatial(self, **kwargs: Any) -> Operator:
        """``NTK_S^space = tr_{B,T}(NTK_S)/(B T)`` on ``(N,)``."""
        return self.view(("unit",), **kwargs)

    def view_participation(
        self, keep: Sequence[str], *, num_samples: int = 64, seed: int = 0
    ) -> Estimate:
        """Participation ratio ``(tr M)² / ‖M‖_F²`` of the view ``M`` of :meth:`view`, matrix-free.

        With Rademacher ``u`` on the kept axes and independent Rademacher ``z, z'`` on the traced
        axes ``A`` (``d_A`` entries), and ``X = NTK_S``::

            E[(u⊗z)^T X (u⊗z)] / d_A = tr M,
            E[⟨(I⊗z^T) X (u⊗z), (I⊗z'^T) X (u⊗z')⟩] / d_A² = E‖M u‖² = ‖M‖_F²,

        since ``(I⊗z^T) X (u⊗z)`` is an unbiased estimate of ``tr_A(X) u``. Each sample costs two
        ``NTK_S`` probes (one batched application for all samples), instead of forming ``M``
        (``O(|K|² |A| P)`` work); the error bar is the jackknife over samples.
        """
        samples = self._view_moments(keep, num_samples, seed)
        zero = torch.zeros(2, dtype=torch.float64)
        return jackknife(zero, samples, lambda x: x[0] ** 2 / x[1], 2 * num_samples)

    def view_frobenius(
        self, keep: Sequence[str], *, num_samples: int = 64, seed: int = 0
    ) -> Estimate:
        """``‖M‖_F`` of the view ``M``, with the estimator of :meth:`view_participation`."""
        samples = self._view_moments(keep, num_samples, seed)
        zero = torch.zeros(2, dtype=torch.float64)
        return jackknife(zero, samples, lambda x: x[1].clamp_min(0).sqrt(), 2 * num_samples)

    def _view_moments(self, keep: Sequence[str], num_samples: int, seed: int) -> torch.Tensor:
        """Per-sample estimates of ``tr M`` and ``‖M‖_F²``, shape ``(2, num_samples)``."""
        keep_idx = [STATE_AXES.index(a) for a in keep]
        traced_idx = [i for i in range(3) if i not in keep_idx]
        if not keep_idx or not traced_idx:
            raise ValueError(f"keep must name one or two of {STATE_AXES}, got {tuple(keep)}")
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {num_samples}")
        shape = self.state_shape
        kshape = tuple(shape[i] for i in keep_idx)
        tshape = tuple(shape[i] for i in traced_idx)
        d_a = math.prod(tshape)
        g = torch.Generator().manual_seed(seed)
        dtype, device = self.states.dtype, self.states.device

        def signs(*sh: int) -> torch.Tensor:
            return (2.0 * torch.randint(0, 2, sh, generator=g) - 1.0).to(dtype=dtype, device=device)

        s = num_samples
        u = signs(s, math.prod(kshape))
        z = signs(2, s, d_a)
        order = [0] + [
            1 + (keep_idx.index(i) if i in keep_idx else len(keep_idx) + traced_idx.index(i))
            for i in range(3)
        ]
        inverse = [0, *(1 + i for i in keep_idx), *(1 + i for i in traced_idx)]
        # samples go through NTK_S in slices that respect the operator's probe budget, so a
        # full-size model never holds all 2s state-sized probes and images at once
        step = s if self.max_probes is None else max(1, self.max_probes // 2)
        chunks = []
        for lo in range(0, s, step):
            uc, zc = u[lo : lo + step], z[:, lo : lo + step]
            c = uc.shape[0]
            probes = (uc[None, :, :, None] * zc[:, :, None, :]).reshape(2 * c, *kshape, *tshape)
            Y = self.operator.matmat(probes.permute(*order).contiguous())
            Y = Y.permute(*inverse).reshape(2, c, -1, d_a)
            chunks.append(torch.einsum("rska,rsa->rsk", Y, zc).double())  # (I⊗zᵀ) X (u⊗z)
        contracted = torch.cat(chunks, dim=1)
        traces = (contracted * u.double()).sum(-1).mean(0) / d_a  # both draws estimate tr M
        frob = (contracted[0] * contracted[1]).sum(-1) / d_a**2
        return torch.stack([traces, frob]).cpu()

    def view_matrix(
        self,
        keep: Sequence[str],
        *,
        method: str = "exact",
        num_probes: int = 256,
        seed: int = 0,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Return the dense matrix of :meth:`view` from columns of ``J``.

        ``tr_A(J J^*) = Σ_p (J e_p)(J e_p)^*`` contracted over the traced axes ``A``, so the view
        is accumulated from Jacobian columns: ``method="exact"`` uses all ``P`` basis vectors
        (``P`` Jacobian probes, in chunks), ``method="sketch"`` an unbiased Gaussian sketch
        ``J Ω`` with ``E[Ω Ω^T] = I`` from ``num_probes`` probes. Cheaper than the operator route
        when ``P`` is moderate and the kept space is small enough to store.
        """
        keep_idx = [STATE_AXES.index(a) for a in keep]
        traced_idx = [i for i in range(3) if i not in keep_idx]
        shape = self.state_shape
        dk = math.prod(shape[i] for i in keep_idx)
        dt = math.prod(shape[i] for i in traced_idx) if traced_idx else 1
        P = self.num_params
        if method == "exact":
            total = P
        elif method == "sketch":
            total = num_probes
            gen = torch.Generator().manual_seed(seed)
        else:
            raise ValueError(f"method must be 'exact' or 'sketch', got {method!r}")
        chunk = chunk_size or max(1, (1 << 24) // math.prod(shape))
        M = self.states.new_zeros(dk, dk)
        perm = [0, *(1 + i for i in keep_idx), *(1 + i for i in traced_idx)]
        for start in range(0, total, chunk):
            c = min(chunk, total - start)
            if method == "exact":
                Om = torch.zeros(c, P, dtype=self.states.dtype, device=self.states.device)
                Om[torch.arange(c), torch.arange(start, start + c)] = 1.0
            else:
                Om = torch.randn(c, P, generator=gen, dtype=self.states.dtype).to(
                    self.states.device
                )
            JX = self.jacobian.matmat(Om).permute(*perm).reshape(c, dk, dt)
            M += torch.einsum("cka,cla->kl", JX, JX)
        return M / (dt * (1 if method == "exact" else total))

    # ------------------------------------------------------------------ alignment
    def alignment(self, error: torch.Tensor, *, method: str = "jacobian") -> torch.Tensor:
        """``⟨NTK_S e, e⟩`` — the first-order loss decrease of one GD step (paper 004 Cor. 2).

        ``method="jacobian"`` computes ``‖J^* e‖²``; ``method="core"`` computes the
        corollary's form ``Σ_g ‖(V_g^* ⊗ I) (P_core^* e)_g‖²`` (needs weight sites). Equal up to
        rounding.
        """
        e = self._check_state(error, "error")
        if method == "jacobian":
            return self.jacobian.rmatvec(e).square().sum()
        if method == "core":
            adj = self.P_core.rmatvec(e)  # (B, T, Σ n_g)
            sizes = [self.sites.sizes[g] for g in self.sites.groups]
            total = adj.new_zeros(())
            for V, a in zip(self.sites.groups.values(), adj.split(sizes, -1), strict=True):
                total = total + torch.einsum("btm,btn->mn", V, a).square().sum()
            return total
        raise ValueError(f"method must be 'jacobian' or 'core', got {method!r}")

    def alignment_cosine(
        self, target: torch.Tensor, *, num_matvecs: int = 64, seed: int = 0
    ) -> Estimate:
        """Kernel–target alignment ``cos(NTK, y yᵀ) = ‖J^* y‖² / (‖NTK‖_F ‖y‖²)`` (in [0, 1]).

        ``target`` has the operator's space shape (e.g. the targets ``(B, T, n_out)`` for the
        output NTK). ``‖J^* y‖²`` is exact; ``‖NTK‖_F`` is a Hutch++ estimate on the cheaper side
        of the Gram (``num_matvecs`` probes), whose relative error bar is the result's.
        """
        y = self._check_state(target, "target")
        num = float(self.jacobian.rmatvec(y).double().square().sum())
        fro = frobenius_norm(self.operator, num_matvecs=num_matvecs, seed=seed)
        scale = float(y.double().square().sum()) * fro.value
        if scale == 0:
            raise ValueError("alignment_cosine: the target or the NTK is zero")
        value = num / scale
        return Estimate(value, value * fro.stderr / fro.value, fro.num_matvecs + 1)

    def target_alignment(
        self, modes: torch.Tensor, *, method: str = "exact", num_samples: int = 64, seed: int = 0
    ) -> torch.Tensor:
        """Kernel–target alignment of temporal modes with ``NTK_S`` (paper 004 Fig. 4F).

        For each mode ``u`` (shape ``(B, T)``, e.g. a left singular vector of the ``B·T × n_out``
        target), the cosine between the temporal view and ``u u^T``::

            cos(NTK^temp, u u^T) = u^T NTK^temp u / (‖NTK^temp‖_F ‖u‖²),

        with ``u^T NTK^temp u = (1/N) Σ_n ‖J^*(u ⊗ e_n)‖²`` computed exactly. ``‖NTK^temp‖_F`` comes
        from the exact temporal view matrix (``method="exact"``, small models) or from the
        matrix-free estimator of :meth:`view_frobenius` (``method="estimate"``, ``num_samples``
        pairs of probes; relative error about its standard error). Returns shape ``(r,)``.
        """
        B, T, N = self.state_shape
        if modes.ndim == 2:
            modes = modes[None]
        check_tensor(
            modes[0],
            name="modes[i]",
            where="target_alignment",
            shape=(B, T),
            dtype=self.states.dtype,
            device=self.states.device,
        )
        r = modes.shape[0]
        probes = modes[:, :, :, None, None] * torch.eye(N, dtype=modes.dtype, device=modes.device)
        probes = probes.reshape(r, B, T, N, N).permute(0, 4, 1, 2, 3).reshape(r * N, B, T, N)
        g = self.jacobian.rmatmat(probes).reshape(r, N, -1)
        num = g.square().sum((1, 2)) / N
        if method == "exact":
            norm = torch.linalg.matrix_norm(self.view_matrix(("batch", "time")))
        elif method == "estimate":
            est = self.view_frobenius(("batch", "time"), num_samples=num_samples, seed=seed)
            norm = torch.tensor(est.value, dtype=num.dtype, device=num.device)
        else:
            raise ValueError(f"method must be 'exact' or 'estimate', got {method!r}")
        return num / (norm * modes.flatten(1).square().sum(1))

    def _check_state(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return check_tensor(
            x,
            name=name,
            where=type(self).__name__,
            shape=self.state_shape,
            dtype=self.states.dtype,
            device=self.states.device,
        )
