"""Validated unrolling of a cell: the global state and the one-step pairs it is built from."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sntkit.models.cell import Cell, Params, rollout


@dataclass(frozen=True)
class Trajectory:
    """States ``h_1..h_T`` and the pairs ``(h_{t-1}, x_t)`` each was computed from.

    ``states`` and ``prev`` are ``(B, T, N)``; ``prev[:, 0] = h_0``. ``inputs`` is
    ``(B, T, n_in)`` or ``None`` (autonomous). Every quantity of Corollary 1 (paper 004) is
    evaluated on these ``B·T`` pairs, including the first step from ``h_0``.
    """

    states: torch.Tensor
    prev: torch.Tensor
    inputs: torch.Tensor | None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return ``(B, T, N)``."""
        B, T, N = self.states.shape
        return B, T, N


def unroll(
    cell: Cell,
    params: Params,
    h0: torch.Tensor,
    inputs: torch.Tensor | None,
    steps: int | None,
) -> Trajectory:
    """Check shapes, dtypes and devices, unroll, and check that every state is finite."""
    check_rollout_args(cell, params, h0, inputs, steps)
    with torch.no_grad():
        states = rollout(cell, params, h0, inputs, steps)
    # one reduction decides: a sum is finite iff every state is, barring overflow of huge finite
    # states, which the exact per-step test then clears
    if not bool(torch.isfinite(states.sum())):
        finite = torch.isfinite(states).flatten(2).all(-1).all(0)  # (T,)
        if not bool(finite.all()):
            t = int((~finite).nonzero()[0]) + 1
            raise ValueError(
                f"the trajectory is not finite from step t={t} on (state h_{t} has NaN/inf): "
                "the dynamics explode; use fewer steps, a smaller gain or initial state, or float64"
            )
    prev = torch.cat([h0[:, None], states[:, :-1]], dim=1)
    return Trajectory(states=states, prev=prev, inputs=inputs)


def check_rollout_args(
    cell: Cell,
    params: Params,
    h0: torch.Tensor,
    inputs: torch.Tensor | None,
    steps: int | None,
) -> None:
    """Raise ValueErrors that name the offending argument (h0, inputs, steps, model)."""
    if not isinstance(h0, torch.Tensor):
        raise ValueError(
            f"h0 must be a tensor of shape (B, {cell.n_state}), got {type(h0).__name__}"
        )
    if h0.ndim != 2 or h0.shape[1] != cell.n_state:
        raise ValueError(
            f"h0 has shape {tuple(h0.shape)}, expected (B, {cell.n_state}) for this "
            f"{type(cell).__name__} (batch of initial states)"
        )
    if not h0.is_floating_point():
        raise ValueError(f"h0 must be a floating-point tensor, got {h0.dtype}")
    if not bool(torch.isfinite(h0).all()):
        raise ValueError("h0 contains NaN or inf")
    for name, p in params.items():
        if p.dtype != h0.dtype or p.device != h0.device:
            raise ValueError(
                f"model parameter {name!r} is {p.dtype} on {p.device} but h0 is {h0.dtype} on "
                f"{h0.device}; pass h0 (and inputs) in the model's dtype/device or pass dtype="
            )
    if cell.n_input == 0:
        if inputs is not None:
            raise ValueError(
                f"inputs were given but this {type(cell).__name__} is autonomous (n_input = 0); "
                "pass inputs=None and steps=T"
            )
        if steps is None or int(steps) < 1:
            raise ValueError(f"an autonomous model needs steps=T >= 1, got steps={steps}")
        return
    if inputs is None:
        raise ValueError(
            f"this {type(cell).__name__} takes inputs of size {cell.n_input}: pass inputs of shape "
            f"(B, T, {cell.n_input})"
        )
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 3:
        raise ValueError(f"inputs must be a (B, T, {cell.n_input}) tensor")
    if inputs.shape[0] != h0.shape[0] or inputs.shape[2] != cell.n_input:
        raise ValueError(
            f"inputs have shape {tuple(inputs.shape)} but h0 has batch {h0.shape[0]} and the model "
            f"takes {cell.n_input} input channels: expected ({h0.shape[0]}, T, {cell.n_input})"
        )
    if inputs.dtype != h0.dtype or inputs.device != h0.device:
        raise ValueError(
            f"inputs are {inputs.dtype} on {inputs.device} but h0 is {h0.dtype} on {h0.device}; "
            "convert one of them"
        )
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs contain NaN or inf")
    if steps is not None and steps != inputs.shape[1]:
        raise ValueError(f"steps={steps} disagrees with inputs.shape[1]={inputs.shape[1]}")
