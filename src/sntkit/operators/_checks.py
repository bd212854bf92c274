"""Input and output validation shared by every operator.

Errors name the argument, what was expected and how to fix it. The NaN/inf checks cost one
reduction per call; they can be switched off for a block of code with
``with sntkit.operators.unchecked(): ...`` once a pipeline is known to be finite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

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
    """Validate one tensor argument and raise a ValueError that names it."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{where}: {name} must be a torch.Tensor, got {type(x).__name__}")
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
        raise ValueError(f"{where}: {name} must be a torch.Tensor, got {type(x).__name__}")
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
        hint = f"; reshape it with {name}.reshape{shape}" if x.numel() == _prod(shape) else ""
        raise ValueError(f"{where}: {name} has shape {got}, expected {shape}{hint}")
    check_tensor(x, name=name, where=where, dtype=dtype, device=device)


def check_result(y: torch.Tensor, where: str, op: object) -> None:
    """Raise if an operator produced NaN/inf (a diverged model, usually)."""
    if _STATE["finite"] and y.is_floating_point() and not bool(torch.isfinite(y).all()):
        raise ValueError(
            f"{where}: {op!r} produced NaN or inf; the operator is ill-defined at this point "
            "(e.g. an exploding trajectory) or its inputs overflowed in this dtype — try float64"
        )


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out
