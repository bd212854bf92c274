"""True partial trace of a square operator over some of its tensor axes.

For a square operator ``X`` on ``R^{R} ⊗ R^{A}`` (kept axes ``R``, traced axes ``A``, in any
order), the partial trace is the operator on ``R^{R}``

    tr_A(X) = Σ_j (I_R ⊗ e_j)^* X (I_R ⊗ e_j),      j over a basis of R^{A}.

Written as a 6-tensor for ``(B, T, N)`` and tracing the unit axis:
``tr_N(X)[b,t; b',t'] = Σ_n X[b,t,n; b',t',n]`` (``torch.einsum('btnBTn->btBT', X6)``).
This is not the block sum ``(I ⊗ 1)^* X (I ⊗ 1)`` that kpflow computes under this name
(which adds the off-diagonal blocks ``X[.., n; .., n']`` as well).

Two methods:

* ``"exact"``: ``|A|`` operator probes per input probe, batched in chunks over ``j``.
* ``"hutchinson"``: ``tr_A(X) ≈ (1/s) Σ_s (I ⊗ z_s)^* X (I ⊗ z_s)`` with fixed Rademacher
  ``z_s`` over ``A``; unbiased because ``E[z z^T] = I``, ``s`` probes per input probe. Useful
  for the spatial view of the NTK, which traces over ``B·T`` (thousands of) axes entries. For a
  fixed draw it is still a linear operator, and its adjoint is the same estimator of ``X^*``.
"""

from __future__ import annotations

import math

import torch

from sntkit.operators.base import Axes, Operator

_DEFAULT_CHUNK_ELEMENTS = 1 << 24


class PartialTrace(Operator):
    """``tr_A(X)`` over input axes ``axes`` (indices or names) of a square operator."""

    def __init__(
        self,
        op: Operator,
        axes: Axes,
        *,
        method: str = "exact",
        num_samples: int = 64,
        seed: int | None = 0,
        chunk_size: int | None = None,
    ) -> None:
        op.require_square("partial_trace")
        traced = op.resolve_axes(axes)
        kept = tuple(i for i in range(len(op.shape_in)) if i not in traced)
        if not kept:
            raise ValueError(
                "partial_trace over every axis is the full trace; use sntkit.linalg.trace(op)"
            )
        if method not in ("exact", "hutchinson"):
            raise ValueError(
                f"partial_trace: method must be 'exact' or 'hutchinson', got {method!r}"
            )
        if method == "hutchinson" and num_samples < 1:
            raise ValueError(f"partial_trace: num_samples must be >= 1, got {num_samples}")
        names = None if op.names_in is None else tuple(op.names_in[i] for i in kept)
        super().__init__(
            tuple(op.shape_in[i] for i in kept),
            tuple(op.shape_in[i] for i in kept),
            dtype=op.dtype,
            device=op.device,
            names_in=names,
        )
        self.op = op
        self.traced_axes = traced
        self.kept_axes = kept
        self.traced_shape = tuple(op.shape_in[i] for i in traced)
        self.traced_size = math.prod(self.traced_shape)
        self.method = method
        self.chunk_size = chunk_size
        # permutation taking (kept..., traced...) back to the operator's axis order
        order = kept + traced
        self._to_op = tuple(order.index(i) for i in range(len(order)))
        self._from_op = order
        if method == "hutchinson":
            gen = torch.Generator(device="cpu")
            gen.manual_seed(0 if seed is None else seed)
            z = torch.randint(0, 2, (num_samples, self.traced_size), generator=gen)
            self.samples: torch.Tensor | None = (2.0 * z - 1.0).to(dtype=op.dtype, device=op.device)
        else:
            self.samples = None

    # The embedded probes y ⊗ u_j (u_j a basis vector or Rademacher sample) and the contraction
    # of the outputs with u_j are the same for both methods, so both share _apply.
    def _apply(self, Y: torch.Tensor, adjoint: bool) -> torch.Tensor:
        k = Y.shape[0]
        U = self.samples
        d = self.traced_size if U is None else U.shape[0]
        chunk = self.chunk_size or max(1, _DEFAULT_CHUNK_ELEMENTS // max(1, k * self.op.size_in))
        apply = self.op._rmatmat if adjoint else self.op._matmat
        out = torch.zeros_like(Y)
        for start in range(0, d, chunk):
            stop = min(d, start + chunk)
            if U is None:
                Uc = torch.eye(self.traced_size, dtype=Y.dtype, device=Y.device)[start:stop]
            else:
                Uc = U[start:stop]
            c = stop - start
            # X[k, c, kept..., traced] = Y[k, kept...] * Uc[c, traced]
            X = Y[:, None, ..., None] * Uc.reshape(1, c, *([1] * len(self.kept_axes)), -1)
            X = X.reshape(k * c, *self.shape_in, *self.traced_shape)
            X = X.permute(0, *(1 + i for i in self._to_op))
            Z = apply(X.contiguous())  # (k*c, *op.shape)
            Z = Z.permute(0, *(1 + i for i in self._from_op))
            Z = Z.reshape(k, c, *self.shape_in, self.traced_size)
            out = out + torch.einsum("kc...a,ca->k...", Z, Uc)
        return out if U is None else out / d

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        return self._apply(X, adjoint=False)

    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        return self._apply(Y, adjoint=True)

    def __repr__(self) -> str:
        return f"tr_{self.traced_axes}[{self.method}]({self.op!r})"
