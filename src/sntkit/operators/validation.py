"""Validation of arguments and results, shared by every layer (the bottom of the stack).

Errors name the argument, what was expected and how to fix it: ``TypeError`` for a value of
the wrong type, ``ValueError`` for a wrong value (shape, dtype, device, NaN/inf, range). The
NaN/inf checks cost one reduction per call; they can be switched off for a block of code with
``with sntkit.operators.unchecked(): ...`` once a pipeline is known to be finite.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import torch

if TYPE_CHECKING:
    from sntkit.operators.base import Operator

#: what :func:`require_operator` looks for
_OPERATOR_API = ("shape_in", "shape_out", "dtype", "device", "matmat", "rmatmat")

_STATE = {"finite": True}


@contextlib.contextmanager
def unchecked() -> Iterator[None]:
    """Skip the NaN/inf checks on operator inputs and outputs inside this block."""
    old = _STATE["finite"]
    _STATE["finite"] = False
    try:
        yield
    finally:
        _STATE["finite"] = old


def check_tensor(
    x: Any,
    *,
    name: str,
    where: str,
    shape: tuple[int, ...] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Validate one tensor argument; the error names it (TypeError for a non-tensor)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"{where}: {name} has shape {tuple(x.shape)}, expected {tuple(shape)}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(
            f"{where}: {name} has dtype {x.dtype}, expected {dtype}; convert it with "
            f"{name}.to({dtype})"
        )
    if device is not None and x.device != device:
        raise ValueError(
            f"{where}: {name} is on {x.device}, expected {device}; move it with "
            f"{name}.to('{device}')"
        )
    if finite and _STATE["finite"] and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{where}: {name} contains NaN or inf; check how it was produced")
    return x


def check_probe(
    x: Any,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    name: str,
    where: str,
    *,
    batched: bool,
) -> None:
    """Validate probes for ``matvec`` (``shape``) or ``matmat`` (``(k, *shape)``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(x).__name__}")
    got = tuple(x.shape)
    if batched:
        if got[1:] != shape or len(got) != len(shape) + 1:
            hint = (
                f"; for a single probe use matvec, or add a probe axis with {name}[None]"
                if got == shape
                else ""
            )
            raise ValueError(
                f"{where}: {name} has shape {got}, expected (k, *{shape}) with a leading "
                f"probe axis{hint}"
            )
    elif got != shape:
        hint = f"; reshape it with {name}.reshape{shape}" if x.numel() == math.prod(shape) else ""
        raise ValueError(f"{where}: {name} has shape {got}, expected {shape}{hint}")
    check_tensor(x, name=name, where=where, dtype=dtype, device=device)


def check_result(y: torch.Tensor, where: str, op: object) -> None:
    """Raise if an operator produced NaN/inf (a diverged model, usually)."""
    if _STATE["finite"] and y.is_floating_point() and not bool(torch.isfinite(y).all()):
        raise ValueError(
            f"{where}: {op!r} produced NaN or inf; the operator is ill-defined at this point "
            "(e.g. an exploding trajectory) or its inputs overflowed in this dtype — try float64"
        )


def require_operator(op: object, name: str, where: str) -> Operator:
    """Raise a TypeError unless ``op`` has the :class:`~sntkit.operators.Operator` interface.

    Checked by its attributes, so that this module, imported by the operators themselves,
    needs nothing from them.
    """
    if not all(hasattr(op, a) for a in _OPERATOR_API):
        raise TypeError(
            f"{where}: {name} must be an sntkit Operator, got {type(op).__name__}; wrap a matrix "
            f"with sntkit.operators.Dense"
        )
    return cast("Operator", op)


def require_square(op: object, name: str, where: str) -> Operator:
    """Raise unless ``op`` is a square operator (``shape_in == shape_out``)."""
    op = require_operator(op, name, where)
    if not op.is_square:
        raise ValueError(
            f"{where}: {name} must be square (shape_in == shape_out), but it maps "
            f"{op.shape_in} -> {op.shape_out}; use {name}.gram() or {name}.T @ {name} for a "
            f"square operator built from it"
        )
    return op


def require_same_space(op1: Operator, op2: Operator, where: str) -> None:
    """Raise unless the two operators have equal shapes, dtype and device."""
    if op1.shape_in != op2.shape_in or op1.shape_out != op2.shape_out:
        raise ValueError(
            f"{where}: op1 and op2 must have the same shapes, got {op1.shape_in} -> "
            f"{op1.shape_out} and {op2.shape_in} -> {op2.shape_out}; reshape one with "
            f"op.reshape(...)"
        )
    op1._check_compatible(op2, f"{where}(op1, op2)")


def positive_int(value: object, name: str, where: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an int ``>= minimum``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return value


def choice(value: object, name: str, where: str, options: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``options``, else raise naming ``name``."""
    if value not in options:
        raise ValueError(f"{where}: {name} must be one of {options}, got {value!r}")
    return str(value)


def symmetric_defect(H: torch.Tensor) -> float:
    """``‖H − H^T‖_F / ‖H‖_F`` for a small projected matrix ``H = Q^T A Q``."""
    scale = float(torch.linalg.matrix_norm(H))
    return float(torch.linalg.matrix_norm(H - H.T)) / scale if scale > 0 else 0.0


def require_symmetric(H: torch.Tensor, dtype: torch.dtype, name: str, where: str) -> None:
    """Raise if the projection ``H = Q^T A Q`` on random directions shows ``A`` is not symmetric.

    For a symmetric ``A`` the defect is rounding (``~ eps``); for a non-symmetric one it is of
    order one, so the threshold ``sqrt(eps)`` of the operator's dtype separates the two at no
    extra operator applications.
    """
    defect = symmetric_defect(H)
    if defect > math.sqrt(torch.finfo(dtype).eps):
        raise ValueError(
            f"{where}: {name} must be symmetric (self-adjoint), but Q^T {name} Q on random "
            f"directions has relative asymmetry {defect:.2e}; for a general operator use "
            f"{name}.gram() or svds({name})"
        )


def finite(value: float, what: str, where: str) -> float:
    """Raise if a computed estimate is NaN or infinite."""
    if not math.isfinite(value):
        raise ValueError(
            f"{where}: {what} is {value}; the operator's values overflow in its dtype or it is "
            f"ill-defined — try float64 or rescale it"
        )
    return value
