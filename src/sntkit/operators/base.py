"""The matrix-free linear operator on tensor-shaped spaces.

An :class:`Operator` is a linear map ``A : R^{shape_in} -> R^{shape_out}`` between spaces of
tensors (for the global-state NTK, ``shape_in = shape_out = (B, T, N)``: batch x time x
units). It is known only through its action: a batch of ``k`` probes of shape
``(k, *shape_in)`` is mapped to ``(k, *shape_out)`` by :meth:`Operator.matmat`, and the adjoint
``A^*`` acts through :meth:`Operator.rmatmat`. This is the design of paper 004, App. A.1
(kpflow), with three differences that matter numerically: the probe axis is part of the
contract (every concrete operator acts on all probes at once), partial traces are true partial
traces (not block sums), and inputs and outputs are validated (shape, dtype, device, NaN/inf).

Subclasses implement ``_matmat`` and ``_rmatmat`` on already validated ``(k, *shape)`` tensors.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

import torch

from sntkit.operators import validation

if TYPE_CHECKING:
    import scipy.sparse.linalg

Shape = tuple[int, ...]
Axes = int | str | Sequence[int | str]


def _as_shape(shape: int | Sequence[int], name: str) -> Shape:
    if isinstance(shape, int):
        shape = (shape,)
    out = tuple(int(s) for s in shape)
    if any(s <= 0 for s in out):
        raise ValueError(f"{name} must contain positive sizes, got {out}")
    return out


class Operator(ABC):
    """A linear operator between tensor spaces ``R^{shape_in} -> R^{shape_out}``.

    Parameters
    ----------
    shape_in, shape_out:
        Tensor shapes of the domain and codomain (e.g. ``(B, T, N)``).
    dtype, device:
        Probes must have this dtype and live on this device.
    names_in, names_out:
        Optional axis names (e.g. ``("batch", "time", "unit")``) so that partial traces can be
        taken by name. ``names_out`` defaults to ``names_in`` for square operators.
    """

    def __init__(
        self,
        shape_in: int | Sequence[int],
        shape_out: int | Sequence[int],
        *,
        dtype: torch.dtype,
        device: torch.device | str,
        names_in: Sequence[str] | None = None,
        names_out: Sequence[str] | None = None,
    ) -> None:
        self.shape_in: Shape = _as_shape(shape_in, "shape_in")
        self.shape_out: Shape = _as_shape(shape_out, "shape_out")
        self.dtype = dtype
        self.device = torch.device(device)
        self.names_in = _check_names(names_in, self.shape_in, "names_in")
        if names_out is None and self.shape_out == self.shape_in:
            names_out = self.names_in
        self.names_out = _check_names(names_out, self.shape_out, "names_out")

    # ------------------------------------------------------------------ primitives
    @abstractmethod
    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        """Apply ``A`` to validated probes ``X`` of shape ``(k, *shape_in)``."""

    @abstractmethod
    def _rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        """Apply ``A^*`` to validated probes ``Y`` of shape ``(k, *shape_out)``."""

    # ------------------------------------------------------------------ sizes
    @property
    def size_in(self) -> int:
        """Dimension of the domain, ``prod(shape_in)``."""
        return math.prod(self.shape_in)

    @property
    def size_out(self) -> int:
        """Dimension of the codomain, ``prod(shape_out)``."""
        return math.prod(self.shape_out)

    @property
    def shape(self) -> tuple[int, int]:
        """``(size_out, size_in)``: the matrix shape on flattened vectors (scipy, curvlinops)."""
        return (self.size_out, self.size_in)

    @property
    def is_square(self) -> bool:
        """True when domain and codomain are the same tensor space."""
        return self.shape_in == self.shape_out

    def require_square(self, what: str) -> None:
        """Raise a ValueError naming ``what`` if the operator is not square."""
        if not self.is_square:
            raise ValueError(
                f"{what} needs a square operator (shape_in == shape_out), but this {self!r} maps "
                f"{self.shape_in} -> {self.shape_out}; apply it to op.gram() or op.T @ op instead"
            )

    # ------------------------------------------------------------------ application
    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``A x`` for one tensor ``x`` of shape ``shape_in`` (a tensor of ``shape_out``)."""
        validation.check_probe(
            x, self.shape_in, self.dtype, self.device, "x", "matvec", batched=False
        )
        y = self._matmat(x.unsqueeze(0))[0]
        validation.check_result(y, "matvec", self)
        return y

    def rmatvec(self, y: torch.Tensor) -> torch.Tensor:
        """Return ``A^* y`` for one tensor ``y`` of shape ``shape_out`` (one of ``shape_in``)."""
        validation.check_probe(
            y, self.shape_out, self.dtype, self.device, "y", "rmatvec", batched=False
        )
        x = self._rmatmat(y.unsqueeze(0))[0]
        validation.check_result(x, "rmatvec", self)
        return x

    def matmat(self, X: torch.Tensor) -> torch.Tensor:
        """Return ``A`` applied to ``k`` probes at once: ``(k, *shape_in) -> (k, *shape_out)``."""
        validation.check_probe(
            X, self.shape_in, self.dtype, self.device, "X", "matmat", batched=True
        )
        if X.shape[0] == 0:  # no probes: several primitives reshape with -1, undefined for 0
            return X.new_zeros((0, *self.shape_out))
        Y = self._matmat(X)
        validation.check_result(Y, "matmat", self)
        return Y

    def rmatmat(self, Y: torch.Tensor) -> torch.Tensor:
        """Return ``A^*`` applied to ``k`` probes at once: ``(k, *shape_out) -> (k, *shape_in)``."""
        validation.check_probe(
            Y, self.shape_out, self.dtype, self.device, "Y", "rmatmat", batched=True
        )
        if Y.shape[0] == 0:
            return Y.new_zeros((0, *self.shape_in))
        X = self._rmatmat(Y)
        validation.check_result(X, "rmatmat", self)
        return X

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``self @ x`` (``A x`` for a tensor of ``shape_in``)."""
        return self @ x

    # ------------------------------------------------------------------ algebra
    @property
    def T(self) -> Operator:
        """The adjoint ``A^*`` (transpose; all operators here are real)."""
        from sntkit.operators.adjoint import Adjoint

        return Adjoint(self)

    def adjoint(self) -> Operator:
        """Return the adjoint ``A^*``; same as :attr:`T`."""
        return self.T

    @overload
    def __matmul__(self, other: Operator) -> Operator: ...

    @overload
    def __matmul__(self, other: torch.Tensor) -> torch.Tensor: ...

    def __matmul__(self, other: Operator | torch.Tensor) -> Operator | torch.Tensor:
        if isinstance(other, Operator):
            from sntkit.operators.composition import Composition

            return Composition(self, other)
        if isinstance(other, torch.Tensor):
            # ``A @ x``: x of shape shape_in -> A x; a probe block (k, *shape_in) -> (k,
            # *shape_out) (see matmat); else a flat vector (size_in,) -> flat A x, or a matrix
            # (size_in, k) of columns -> (size_out, k), as scipy and curvlinops pass them
            if tuple(other.shape) == self.shape_in:
                return self.matvec(other)
            if tuple(other.shape[1:]) == self.shape_in:
                return self.matmat(other)
            if other.ndim in (1, 2) and other.shape[0] == self.size_in:
                cols = other.reshape(self.size_in, -1).T.reshape(-1, *self.shape_in)
                out = self.matmat(cols).reshape(cols.shape[0], self.size_out).T
                return out.reshape(self.size_out) if other.ndim == 1 else out
            return self.matmat(other)
        return NotImplemented

    def __add__(self, other: Operator) -> Operator:
        if not isinstance(other, Operator):
            return NotImplemented
        from sntkit.operators.sum import Sum

        return Sum([self, other])

    def __sub__(self, other: Operator) -> Operator:
        if not isinstance(other, Operator):
            return NotImplemented
        from sntkit.operators.sum import Sum

        return Sum([self, other], weights=[1.0, -1.0])

    def __neg__(self) -> Operator:
        return (-1.0) * self

    def __mul__(self, c: float) -> Operator:
        if isinstance(c, Operator) or not _is_scalar(c):
            return NotImplemented
        from sntkit.operators.sum import Sum

        return Sum([self], weights=[float(c)])

    __rmul__ = __mul__

    def __truediv__(self, c: float) -> Operator:
        if not _is_scalar(c):
            return NotImplemented
        return self * (1.0 / float(c))

    def kron(self, other: Operator) -> Operator:
        """Tensor product ``A ⊗ B``: acts on ``shape_in = A.shape_in + B.shape_in``."""
        from sntkit.operators.kronecker import Kronecker

        return Kronecker(self, other)

    def reshape(self, shape_in: int | Sequence[int], shape_out: int | Sequence[int]) -> Operator:
        """Return the same linear map with its domain/codomain re-viewed as other tensor shapes."""
        from sntkit.operators.reshaped import Reshaped

        return Reshaped(self, shape_in, shape_out)

    def gram(self) -> Operator:
        """Return ``A A^*`` on the codomain (for a Jacobian ``J``, the NTK ``J J^*``).

        A :class:`~sntkit.operators.gram.Gram`, so spectra are computed on the smaller of
        ``A A^*`` and ``A^* A`` (:mod:`sntkit.linalg.gram_side`).
        """
        from sntkit.operators.gram import Gram

        return Gram(self)

    def partial_trace(
        self,
        axes: Axes,
        *,
        method: str = "exact",
        num_samples: int = 64,
        seed: int | None = 0,
        chunk_size: int | None = None,
    ) -> Operator:
        """Return True partial trace ``tr_A(X) = Σ_j (I ⊗ e_j)^* X (I ⊗ e_j)`` over ``axes``.

        See :class:`sntkit.operators.partial_trace.PartialTrace`.
        """
        from sntkit.operators.partial_trace import PartialTrace

        return PartialTrace(
            self, axes, method=method, num_samples=num_samples, seed=seed, chunk_size=chunk_size
        )

    def partial_mean(self, axes: Axes, **kwargs: Any) -> Operator:
        """Partial trace divided by the size of the traced axes (paper 004 eq. 15)."""
        from sntkit.operators.partial_trace import PartialTrace

        pt = PartialTrace(self, axes, **kwargs)
        return pt / pt.traced_size

    def resolve_axes(self, axes: Axes) -> tuple[int, ...]:
        """Turn axis indices or names into sorted, unique non-negative input-axis indices."""
        if isinstance(axes, numbers.Integral | str):
            axes = [axes]
        if not isinstance(axes, Sequence) or not all(
            isinstance(a, numbers.Integral | str) and not isinstance(a, bool) for a in axes
        ):
            raise TypeError(
                f"axes must be an axis index or name, or a sequence of them, got {axes!r}"
            )
        ndim = len(self.shape_in)
        out = []
        for a in axes:
            if isinstance(a, str):
                if self.names_in is None or a not in self.names_in:
                    raise ValueError(
                        f"axis name {a!r} is not one of this operator's axis names "
                        f"{self.names_in}; pass integer axes or build the operator with names_in"
                    )
                out.append(self.names_in.index(a))
            else:
                if not -ndim <= a < ndim:
                    raise ValueError(f"axis {a} is out of range for shape_in {self.shape_in}")
                out.append(int(a) % ndim)
        if len(set(out)) != len(out):
            raise ValueError(f"axes {axes} name the same axis twice")
        return tuple(sorted(out))

    # ------------------------------------------------------------------ dense & scipy
    def to_dense(self, chunk_size: int = 1024) -> torch.Tensor:
        """Return the matrix of this operator, shape ``(size_out, size_in)`` (row-major vec)."""
        cols = []
        eye = torch.eye(self.size_in, dtype=self.dtype, device=self.device)
        for start in range(0, self.size_in, chunk_size):
            E = eye[start : start + chunk_size].reshape(-1, *self.shape_in)
            cols.append(self._matmat(E).reshape(E.shape[0], -1))
        M = torch.cat(cols, 0).T.contiguous()
        validation.check_result(M, "to_dense", self)
        return M

    def to_scipy(self) -> scipy.sparse.linalg.LinearOperator:
        """Return a ``scipy.sparse.linalg.LinearOperator`` on flattened (row-major) vectors."""
        from sntkit.operators.scipy_export import to_scipy

        return to_scipy(self)

    # ------------------------------------------------------------------ helpers
    def _check_compatible(self, other: Operator, what: str) -> None:
        if other.dtype != self.dtype:
            raise ValueError(
                f"{what}: operators have different dtypes ({self.dtype} vs {other.dtype}); "
                "build both in the same dtype"
            )
        if other.device != self.device:
            raise ValueError(
                f"{what}: operators live on different devices ({self.device} vs {other.device}); "
                "move them to one device"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.shape_in} -> {self.shape_out})"


def _is_scalar(c: object) -> bool:
    if isinstance(c, int | float):
        return True
    return isinstance(c, torch.Tensor) and c.ndim == 0


def _check_names(names: Sequence[str] | None, shape: Shape, what: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    names = tuple(names)
    if len(names) != len(shape):
        raise ValueError(f"{what} {names} must name each of the {len(shape)} axes of {shape}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} {names} must be unique")
    return names
