"""Argument and result validation shared by the estimators (ValueErrors that name the argument)."""

from __future__ import annotations

import math

import torch

from sntkit.operators.base import Operator


def require_operator(op: object, name: str, where: str) -> Operator:
    """Raise a TypeError unless ``op`` is an :class:`Operator`."""
    if not isinstance(op, Operator):
        raise TypeError(
            f"{where}: {name} must be an sntkit Operator, got {type(op).__name__}; wrap a matrix "
            f"with sntkit.operators.Dense"
        )
    return op


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
